//! Rules that every store implementation applies the same way, so that the in-memory store
//! and the SQL store cannot drift apart: batch validation, the precision of instants, and
//! the order in which a batch's parts are applied.
//!
//! A batch is applied in this order, inside one transaction:
//! 1. the new instances (`expected_row_version: None`), then the updates in the order given
//!    (so one batch may insert an instance and then update it), then every history event;
//! 2. `work_added` (an id that is already queued is left as it is);
//! 3. `work_done`;
//! 4. `timers_added` (a timer with the same instance and key is replaced; when one batch adds
//!    the same key twice, the later one wins);
//! 5. `timers_removed`;
//! 6. `approvals` (upserted by id);
//! 7. `signal_waits` (each replaces every row of its instance; the last of an instance wins);
//! 8. `ledger` (in order: deliveries opened once by id, status entries once per origin).
//!
//! So work or a timer that is added and removed in the same batch ends up removed.
//! An update does not change the columns that never change after the insert
//! (`definition_id`, `definition_version`, `input`, `created_at`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use gridflow_core::InstanceId;

use crate::{Batch, Error, InstanceWrite, Result, TimerRecord};

/// Instants are stored as whole microseconds since the Unix epoch (UTC), the precision of
/// the hash chain's timestamps; finer digits are dropped (rounded towards the past).
pub(crate) fn to_micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// The instant of a stored microsecond count, `None` if it is out of chrono's range.
pub(crate) fn from_micros(micros: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
}

/// `at` as it reads back from a store: truncated to whole microseconds.
#[cfg(any(test, feature = "test-util", doc))]
pub(crate) fn stored_instant(at: DateTime<Utc>) -> DateTime<Utc> {
    // Every instant chrono can represent has a microsecond count that converts back.
    from_micros(to_micros(at)).unwrap_or(at)
}

/// The conflict of inserting an instance whose id exists.
pub(crate) fn instance_exists(id: &InstanceId) -> Error {
    Error::Conflict(format!("instance {id} already exists"))
}

/// The conflict of updating an instance whose stored `row_version` is not the expected one.
pub(crate) fn stale_instance(id: &InstanceId, expected: u64, stored: Option<u64>) -> Error {
    match stored {
        Some(stored) => Error::Conflict(format!(
            "instance {id}: expected row_version {expected}, found {stored} (changed concurrently)"
        )),
        None => Error::Conflict(format!(
            "instance {id}: expected row_version {expected}, but the instance does not exist"
        )),
    }
}

/// A token whose hash is stored already (a token of 32 random bytes never repeats, so
/// this is a caller's bug or a replayed request).
pub(crate) fn token_exists(user: &str) -> Error {
    Error::Conflict(format!(
        "token for user {user:?}: a token with the same hash or id exists"
    ))
}

/// No token has this id.
pub(crate) fn token_not_found(id: &str) -> Error {
    Error::NotFound(format!("token {id}"))
}

/// The conflict of appending a history event whose seq is taken.
pub(crate) fn event_exists(id: &InstanceId, seq: u64) -> Error {
    Error::Conflict(format!(
        "instance {id}: history event seq {seq} already exists"
    ))
}

/// Rejects a page request that no store can serve: no rows asked for, or an empty cursor
/// (cursors are the id of the last instance of the previous page, never empty).
pub(crate) fn check_page_request(cursor: Option<&str>, limit: u32) -> Result<()> {
    if limit == 0 {
        return Err(Error::Invalid("page limit must be at least 1".to_owned()));
    }
    if cursor == Some("") {
        return Err(Error::Invalid("cursor is empty".to_owned()));
    }
    Ok(())
}

/// A counter as stored in a signed 64-bit column.
pub(crate) fn to_i64(value: u64, what: impl FnOnce() -> String) -> Result<i64> {
    i64::try_from(value)
        .map_err(|_| Error::Invalid(format!("{} {value} does not fit in 63 bits", what())))
}

/// Checks what no store can write: counters beyond 63 bits, events filed under another
/// instance, row versions that do not follow the contract (1 after insert, +1 per update).
pub(crate) fn validate_batch(batch: &Batch) -> Result<()> {
    for write in &batch.instances {
        validate_write(write)?;
    }
    crate::signal_waits::validate(&batch.signal_waits)?;
    crate::rights::validate(&batch.rights)
}

fn validate_write(write: &InstanceWrite) -> Result<()> {
    let record = &write.record;
    let id = &record.id;
    to_i64(record.row_version, || format!("instance {id}: row_version"))?;
    to_i64(record.last_seq, || format!("instance {id}: last_seq"))?;
    match write.expected_row_version {
        None if record.row_version != 1 => {
            return Err(Error::Invalid(format!(
                "instance {id}: a new instance has row_version 1, not {}",
                record.row_version
            )));
        }
        Some(expected) if expected.checked_add(1) != Some(record.row_version) => {
            return Err(Error::Invalid(format!(
                "instance {id}: an update from row_version {expected} must write row_version {}, not {}",
                expected.saturating_add(1),
                record.row_version
            )));
        }
        None | Some(_) => {}
    }
    if write.expected_row_version.is_none() && !write.snapshot {
        return Err(Error::Invalid(format!(
            "instance {id}: a new instance is written with its state snapshot"
        )));
    }
    if write.snapshot && record.snapshot_seq > record.last_seq {
        return Err(Error::Invalid(format!(
            "instance {id}: snapshot_seq {} is after last_seq {}",
            record.snapshot_seq, record.last_seq
        )));
    }
    for event in &write.events {
        if &event.instance_id != id {
            return Err(Error::Invalid(format!(
                "instance {id}: event seq {} belongs to instance {}",
                event.seq, event.instance_id
            )));
        }
        to_i64(event.seq, || format!("instance {id}: event seq"))?;
    }
    Ok(())
}

/// The timers of `timers_added` with the later of two additions of one `(instance, key)`
/// kept, in their original order otherwise. PostgreSQL refuses to upsert one row twice in
/// a statement, so both stores resolve the duplicates up front.
pub(crate) fn last_timer_per_key(timers: &[TimerRecord]) -> Vec<&TimerRecord> {
    let mut last_index: HashMap<(&str, &str), usize> = HashMap::with_capacity(timers.len());
    for (index, timer) in timers.iter().enumerate() {
        last_index.insert((timer.instance_id.as_str(), timer.key.as_str()), index);
    }
    timers
        .iter()
        .enumerate()
        .filter(|(index, timer)| {
            last_index.get(&(timer.instance_id.as_str(), timer.key.as_str())) == Some(index)
        })
        .map(|(_, timer)| timer)
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn timer(instance: &str, key: &str, payload: u32) -> TimerRecord {
        TimerRecord {
            instance_id: InstanceId::from(instance),
            key: key.to_owned(),
            fire_at: Utc.timestamp_opt(0, 0).unwrap(),
            payload: json!(payload),
        }
    }

    #[test]
    fn later_timer_with_same_key_wins() {
        let timers = [timer("a", "k", 1), timer("b", "k", 2), timer("a", "k", 3)];
        let kept: Vec<_> = last_timer_per_key(&timers)
            .into_iter()
            .map(|timer| timer.payload.clone())
            .collect();
        assert_eq!(kept, vec![json!(2), json!(3)]);
    }

    #[test]
    fn instants_are_truncated_to_microseconds() {
        let at = Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(
            stored_instant(at),
            Utc.timestamp_opt(1_700_000_000, 123_456_000).unwrap()
        );
        let before_epoch = Utc.timestamp_opt(-1, 999_999_999).unwrap();
        assert_eq!(
            stored_instant(before_epoch),
            Utc.timestamp_opt(-1, 999_999_000).unwrap()
        );
    }
}
