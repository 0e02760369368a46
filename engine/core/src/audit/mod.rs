//! Audit: what makes history tamper-evident beyond each instance's hash chain.
//!
//! - [`merkle`]: the Merkle root over every instance's chain head ([`ChainHead`]);
//! - [`checkpoint`]: the signed, chained [`Checkpoint`] that commits to that root;
//! - [`log`]: the server-level audit log ([`AuditRecord`]) of operator actions that are not
//!   instance events (deploys, token creation), hash-chained like a history;
//! - [`verify`]: the checks, which report every [`Problem`] with its [`ProblemKind`],
//!   instance and first bad seq;
//! - [`export`]: the JSON Lines export format and its offline [`ExportVerifier`];
//! - [`diff`]: what changed in a JSON value, for replay step by step;
//! - [`ledger`]: the distribution ledger's chain per delivery, its status precedence and
//!   its checks against the rows and the history.
//!
//! Everything here is pure: the runtime reads the store, holds the signing key and reads
//! the clock; this module only hashes, signs, compares and reports. The formats are
//! specified in ARCHITECTURE.md so that another implementation can verify them.

pub mod checkpoint;
pub mod diff;
pub mod export;
pub mod ledger;
pub mod log;
pub mod merkle;
pub mod verify;

pub use checkpoint::{Checkpoint, CheckpointBody, PublicKey};
pub use diff::{Change, json_diff};
pub use export::{ExportLine, ExportVerifier, LineWriter};
pub use log::AuditRecord;
pub use merkle::{ChainHead, merkle_root};
pub use verify::{Problem, ProblemKind, Report, Verification};

use sha2::{Digest, Sha256};

/// Lowercase hex sha256 of `parts`, concatenated.
pub(crate) fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests;
