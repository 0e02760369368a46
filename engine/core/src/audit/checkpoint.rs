//! Signed checkpoints: the server's Ed25519 signature over the Merkle root of every
//! instance's chain head, chained to the previous checkpoint.
//!
//! The signed message is the canonical JSON (see ARCHITECTURE.md) of the
//! [`CheckpointBody`]: `{at, audit_log_hash, audit_log_seq, instances, merkle_root,
//! prev_checkpoint_hash, seq}`. Its sha256 is the checkpoint's `hash`, which the next
//! checkpoint names as `prev_checkpoint_hash` (64 zeros for checkpoint 1).

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::history::{canonical_json, format_instant};

/// What a checkpoint commits to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointBody {
    /// Position in the chain of checkpoints, from 1.
    pub seq: u64,
    /// When it was taken (the runtime's clock).
    pub at: DateTime<Utc>,
    /// [`crate::audit::merkle_root`] of the chain heads of every instance at that time.
    pub merkle_root: String,
    /// How many instances (heads) the root covers.
    pub instances: u64,
    /// `hash` of the previous checkpoint (64 zeros for the first).
    pub prev_checkpoint_hash: String,
    /// The last seq of the server's audit log (0 when empty).
    pub audit_log_seq: u64,
    /// The hash of that audit log record (64 zeros when empty).
    pub audit_log_hash: String,
}

impl CheckpointBody {
    /// The canonical JSON that is hashed and signed.
    pub fn canonical(&self) -> String {
        canonical_json(&serde_json::json!({
            "seq": self.seq,
            "at": format_instant(self.at),
            "merkle_root": self.merkle_root,
            "instances": self.instances,
            "prev_checkpoint_hash": self.prev_checkpoint_hash,
            "audit_log_seq": self.audit_log_seq,
            "audit_log_hash": self.audit_log_hash,
        }))
    }

    /// sha256 of [`CheckpointBody::canonical`], lowercase hex.
    pub fn hash(&self) -> String {
        super::sha256_hex(&[self.canonical().as_bytes()])
    }

    /// Signs the body with `key`.
    pub fn sign(self, key: &SigningKey) -> Checkpoint {
        let signature = key.sign(self.canonical().as_bytes());
        Checkpoint {
            hash: self.hash(),
            public_key: PublicKey(key.verifying_key()).to_string(),
            signature: hex::encode(signature.to_bytes()),
            body: self,
        }
    }
}

/// A checkpoint as stored and exported: the body, its hash and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// What it commits to.
    #[serde(flatten)]
    pub body: CheckpointBody,
    /// sha256 of the body's canonical JSON.
    pub hash: String,
    /// The signer's Ed25519 public key, hex.
    pub public_key: String,
    /// Ed25519 signature of the body's canonical JSON, hex.
    pub signature: String,
}

impl Checkpoint {
    /// Checks the hash and the signature against `trusted`, the key the verifier trusts
    /// (not the key the checkpoint names, which whoever wrote it chose).
    pub fn check(&self, trusted: &PublicKey) -> Result<(), String> {
        let seq = self.body.seq;
        if self.body.hash() != self.hash {
            return Err(format!(
                "checkpoint {seq}: hash does not match its content (checkpoint edited)"
            ));
        }
        if self.public_key != trusted.to_string() {
            return Err(format!(
                "checkpoint {seq}: signed by key {} instead of the trusted key {trusted}",
                self.public_key
            ));
        }
        let bytes: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| format!("checkpoint {seq}: the signature is not 64 bytes of hex"))?;
        trusted
            .0
            .verify_strict(
                self.body.canonical().as_bytes(),
                &Signature::from_bytes(&bytes),
            )
            .map_err(|_| format!("checkpoint {seq}: the signature is not valid"))
    }
}

/// An Ed25519 public key, written as 64 lowercase hex characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub VerifyingKey);

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0.to_bytes()))
    }
}

impl std::str::FromStr for PublicKey {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| "a public key is 64 hex characters (32 bytes)".to_owned())?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| "not a valid Ed25519 public key".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::GENESIS_HASH;

    fn body(seq: u64) -> CheckpointBody {
        CheckpointBody {
            seq,
            at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            merkle_root: "ab".repeat(32),
            instances: 3,
            prev_checkpoint_hash: GENESIS_HASH.to_owned(),
            audit_log_seq: 0,
            audit_log_hash: GENESIS_HASH.to_owned(),
        }
    }

    #[test]
    fn canonical_body_has_sorted_keys_and_micros() {
        let text = body(1).canonical();
        assert!(text.starts_with("{\"at\":\"2023-11-14T22:13:20.123456Z\",\"audit_log_hash\""));
        assert!(text.ends_with("\"seq\":1}"), "{text}");
    }

    #[test]
    fn signed_checkpoints_verify_and_edits_do_not() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let trusted = PublicKey(key.verifying_key());
        let checkpoint = body(1).sign(&key);
        assert_eq!(checkpoint.check(&trusted), Ok(()));

        let mut edited = checkpoint.clone();
        edited.body.instances = 4;
        assert!(edited.check(&trusted).unwrap_err().contains("edited"));

        // Re-hashed by someone without the key: the signature gives it away.
        edited.hash = edited.body.hash();
        assert!(edited.check(&trusted).unwrap_err().contains("signature"));

        let other = SigningKey::from_bytes(&[8; 32]);
        let forged = body(1).sign(&other);
        assert!(
            forged
                .check(&trusted)
                .unwrap_err()
                .contains("instead of the trusted key")
        );
    }

    #[test]
    fn public_keys_round_trip_through_hex() {
        let key = PublicKey(SigningKey::from_bytes(&[7; 32]).verifying_key());
        assert_eq!(key.to_string().parse::<PublicKey>(), Ok(key));
        assert!("abc".parse::<PublicKey>().is_err());
    }
}
