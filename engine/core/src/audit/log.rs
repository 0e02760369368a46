//! The server's audit log: operator actions that are not events of an instance (definition
//! deploys, token creation), recorded with the acting user and hash-chained exactly like a
//! history (`hash = sha256(prev_hash ‖ canonical JSON of {seq, type, at, actor, data})`).
//! Checkpoints commit to its head, so a removed or edited record is detectable.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::history::chain_hash;

/// `type` of the record of a definition deploy: `data` is `{definition, version, created}`.
pub const DEFINITION_DEPLOYED: &str = "definition_deployed";
/// `type` of the record of a token creation: `data` is `{user, role, groups}`; the token
/// itself never enters the log.
pub const TOKEN_CREATED: &str = "token_created";
/// `type` of the record of a token revocation: `data` is `{id, user, role}`.
pub const TOKEN_REVOKED: &str = "token_revoked";

/// One record of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the log, from 1.
    pub seq: u64,
    /// What happened, such as `definition_deployed`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When (UTC).
    pub at: DateTime<Utc>,
    /// The acting user.
    pub actor: String,
    /// Record-specific data.
    pub data: Value,
    /// Hash of the previous record (64 zeros for the first).
    pub prev_hash: String,
    /// `sha256(prev_hash ‖ canonical JSON)`, lowercase hex.
    pub hash: String,
}

impl AuditRecord {
    /// Records an action as number `seq` after the record whose hash is `prev_hash`.
    pub fn record(
        seq: u64,
        prev_hash: &str,
        event_type: &str,
        at: DateTime<Utc>,
        actor: &str,
        data: Value,
    ) -> Self {
        let hash = chain_hash(prev_hash, seq, event_type, at, actor, &data);
        Self {
            seq,
            event_type: event_type.to_owned(),
            at,
            actor: actor.to_owned(),
            data,
            prev_hash: prev_hash.to_owned(),
            hash,
        }
    }
}
