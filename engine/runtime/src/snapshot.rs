//! Amortized state snapshots: when a commit writes an instance's whole state, and how a
//! reader brings an older snapshot up to date.
//!
//! A commit always writes the instance's new events; it writes the state snapshot only
//! when one is due ([`Snapshots::due`]): for a new instance, when the instance ends, and
//! once the events written since the last snapshot are as large as that snapshot (at
//! least [`MIN_TAIL_BYTES`]). So what commits write over an instance's life is at most
//! about twice its history, instead of one whole state per commit (which made a long
//! chain's per-step cost grow with the steps run so far). The stored row says which event
//! its snapshot reflects (`snapshot_seq`); [`current_state`] folds the events after it
//! through the same machine that made them, so every reader sees the current state, and
//! after a crash recovery starts from the last snapshot plus its tail.

use gridflow_core::limits::serialized_size;
use gridflow_core::{InstanceState, RecordedEvent};
use gridflow_store::{InstanceRecord, Store};

use crate::definition_cache::DefinitionCache;
use crate::error::{Error, Result};
use crate::view::decode_state;

/// Below this many bytes of events since the last snapshot, no snapshot is due: small
/// instances are not rewritten at every commit either.
pub(crate) const MIN_TAIL_BYTES: u64 = 64 * 1024;

/// Where an instance's stored snapshot stands, kept by the driver with the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Snapshots {
    /// seq of the last event the stored snapshot reflects.
    pub(crate) seq: u64,
    /// Size of the stored snapshot (compact JSON bytes).
    pub(crate) bytes: u64,
    /// Size of the events stored after it.
    pub(crate) tail_bytes: u64,
}

impl Snapshots {
    /// Whether the commit that brings the tail to `tail_bytes` must write the snapshot:
    /// always for a new or a finished instance, else once the tail is as large as the
    /// snapshot (and at least [`MIN_TAIL_BYTES`]).
    pub(crate) fn due(&self, new: bool, finished: bool, tail_bytes: u64) -> bool {
        new || finished || tail_bytes >= self.bytes.max(MIN_TAIL_BYTES)
    }

    /// The size of `events` as the tail counts them.
    pub(crate) fn bytes_of(events: &[RecordedEvent]) -> u64 {
        events
            .iter()
            .map(|event| serialized_size(&event.data))
            .sum()
    }
}

/// The current state of a stored instance: its snapshot with the events after it folded
/// in, and where its snapshot stands.
pub(crate) async fn current_state(
    store: &dyn Store,
    definitions: &DefinitionCache,
    record: &InstanceRecord,
) -> Result<(InstanceState, Snapshots)> {
    let snapshot = decode_state(record)?;
    let mut snapshots = Snapshots {
        seq: record.snapshot_seq,
        bytes: serialized_size(&record.state),
        tail_bytes: 0,
    };
    if record.snapshot_seq >= record.last_seq {
        return Ok((snapshot, snapshots));
    }
    let tail = store.history_after(&record.id, record.snapshot_seq).await?;
    // The tail may cross a migration: the snapshot's version folds the events before it.
    let versions = crate::versions::for_events(
        definitions,
        &record.definition_id,
        &tail,
        record.definition_version,
        Some(snapshot.version),
    )
    .await?;
    let state = gridflow_core::replay_tail(snapshot, &tail, &versions).map_err(|error| {
        Error::Internal(format!(
            "instance {}: the events after its snapshot (seq {}) do not fold: {error}",
            record.id, record.snapshot_seq
        ))
    })?;
    snapshots.tail_bytes = Snapshots::bytes_of(&tail);
    Ok((state, snapshots))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_due_when_new_finished_or_outgrown() {
        let small = Snapshots {
            seq: 3,
            bytes: 1_000,
            tail_bytes: 0,
        };
        assert!(small.due(true, false, 0), "a new instance");
        assert!(small.due(false, true, 10), "a finished one");
        assert!(!small.due(false, false, MIN_TAIL_BYTES - 1));
        assert!(small.due(false, false, MIN_TAIL_BYTES), "the floor");
        let big = Snapshots {
            seq: 3,
            bytes: 10 * MIN_TAIL_BYTES,
            tail_bytes: 0,
        };
        assert!(!big.due(false, false, 10 * MIN_TAIL_BYTES - 1));
        assert!(
            big.due(false, false, 10 * MIN_TAIL_BYTES),
            "as large as the snapshot"
        );
    }
}
