//! The Merkle root over the chain heads of every instance.
//!
//! Leaves are the heads sorted by instance id (UTF-8 bytes):
//! `leaf = sha256(0x00 ‖ canonical JSON of {hash, instance_id, seq})`, and
//! `node = sha256(0x01 ‖ left ‖ right)` over the raw 32-byte digests. A level with an odd
//! number of nodes promotes its last node unchanged. The root of no heads is `sha256("")`.
//! The root is written as lowercase hex.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::id::InstanceId;

/// The last event of one instance's history: where its chain stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// The instance.
    pub instance_id: InstanceId,
    /// Its last seq (0 for a history without events).
    pub seq: u64,
    /// The hash of that event (64 zeros when `seq` is 0).
    pub hash: String,
}

/// The leaf hash of one head.
pub fn leaf_hash(head: &ChainHead) -> [u8; 32] {
    // The canonical JSON of {hash, instance_id, seq}, keys already in byte order.
    let body = format!(
        "{{\"hash\":{},\"instance_id\":{},\"seq\":{}}}",
        serde_json::Value::from(head.hash.as_str()),
        serde_json::Value::from(head.instance_id.as_str()),
        head.seq
    );
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(body.as_bytes());
    hasher.finalize().into()
}

fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The Merkle root of `heads`, which are sorted by instance id here (their order as given
/// does not matter).
pub fn merkle_root(heads: &[ChainHead]) -> String {
    let mut sorted: Vec<&ChainHead> = heads.iter().collect();
    sorted.sort_by(|left, right| {
        left.instance_id
            .as_str()
            .as_bytes()
            .cmp(right.instance_id.as_str().as_bytes())
    });
    let mut level: Vec<[u8; 32]> = sorted.into_iter().map(leaf_hash).collect();
    if level.is_empty() {
        return hex::encode(Sha256::digest(b""));
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => node_hash(left, right),
                [single] => *single,
                _ => unreachable!("chunks(2) yields one or two nodes"),
            })
            .collect();
    }
    hex::encode(level[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(id: &str, seq: u64) -> ChainHead {
        ChainHead {
            instance_id: InstanceId::from(id),
            seq,
            hash: format!("{seq:064x}"),
        }
    }

    #[test]
    fn root_does_not_depend_on_input_order() {
        let heads = vec![head("b", 2), head("a", 1), head("c", 3)];
        let mut reversed = heads.clone();
        reversed.reverse();
        assert_eq!(merkle_root(&heads), merkle_root(&reversed));
    }

    #[test]
    fn root_changes_with_any_head() {
        let heads = vec![head("a", 1), head("b", 2), head("c", 3)];
        let root = merkle_root(&heads);
        let mut changed = heads.clone();
        changed[2].seq = 4;
        assert_ne!(merkle_root(&changed), root);
        assert_ne!(
            merkle_root(&heads[..2]),
            root,
            "a dropped head changes the root"
        );
    }

    #[test]
    fn root_follows_the_specification() {
        // One head: the root is its leaf. Two: sha256(0x01 ‖ leaf a ‖ leaf b).
        let a = head("a", 1);
        let b = head("b", 2);
        assert_eq!(
            merkle_root(std::slice::from_ref(&a)),
            hex::encode(leaf_hash(&a))
        );
        let expected = hex::encode(node_hash(&leaf_hash(&a), &leaf_hash(&b)));
        assert_eq!(merkle_root(&[b, a]), expected);
        assert_eq!(
            merkle_root(&[]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
