//! [`BatchCommitter`] on SQL: the group-commit write path.
//!
//! A batch is one write transaction of few statements: multi-row `INSERT`s, multi-row
//! guarded `UPDATE`s (`… WHERE instance.id = v.id AND instance.row_version = v.expected`,
//! where fewer rows updated than given means a stale `row_version`) and `DELETE … IN (…)`
//! lists, all in chunks (`query::chunk_lengths`). The order of the parts is the one
//! documented in `rules.rs`, which the in-memory store follows too.
//!
//! On the happy path nothing is read. When a statement fails, the transaction is rolled
//! back first and only then is the database asked which instance caused the failure, so
//! that the `Conflict` can name it.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, Value};

use gridflow_core::{InstanceId, RecordedEvent};

use super::SqlStore;
use super::error::{Kind, db_error, kind};
use super::query::{Query, chunk_lengths, value_bytes};
use crate::rules::{
    event_exists, instance_exists, last_timer_per_key, stale_instance, to_i64, to_micros,
    validate_batch,
};
use crate::{Batch, BatchCommitter, Error, InstanceWrite, Result};

const INSERT_INSTANCE: &str = "INSERT INTO instance (id, definition_id, definition_version, \
     status, input, output, error, created_at, updated_at, last_seq, last_hash, \
     row_version) VALUES ";
const INSTANCE_VALUES: usize = 12;

const INSERT_EVENT: &str = "INSERT INTO history_event (instance_id, seq, event_type, at, \
     actor, data, prev_hash, hash) VALUES ";
const EVENT_VALUES: usize = 8;

const INSERT_WORK_ITEM: &str =
    "INSERT INTO work_item (id, instance_id, payload, created_at) VALUES ";
const WORK_ITEM_VALUES: usize = 4;

const INSERT_TIMER: &str = "INSERT INTO timer (instance_id, \"key\", fire_at, payload) VALUES ";
const TIMER_VALUES: usize = 4;

/// Why writing a batch stopped, with what is needed to explain it after the rollback.
pub(super) enum Failure<'b> {
    /// A value could not be written (already the caller's error).
    Store(Error),
    /// An update of one of these instances found another `row_version`, or no row.
    Stale(Vec<&'b InstanceWrite>),
    /// A statement failed.
    Database { error: DbErr, step: Step<'b> },
}

/// The statement that failed.
pub(super) enum Step<'b> {
    InsertInstances(Vec<&'b InstanceId>),
    UpdateInstances(Vec<&'b InstanceId>),
    InsertEvents(Vec<&'b RecordedEvent>),
    AddWork,
    RemoveWork,
    AddTimers,
    RemoveTimers,
}

/// How the snapshots of a batch are written (`snapshots.rs`).
#[derive(Clone, Copy)]
pub(super) enum StateWrite {
    /// New instances: inserted (their rows are inserted just before).
    Insert,
    /// Stored instances whose writes carry a snapshot: replaced (their guarded row updates
    /// ran just before, so a stale write never gets here).
    Update,
}

impl From<Error> for Failure<'_> {
    fn from(error: Error) -> Self {
        Failure::Store(error)
    }
}

fn updating(ids: &[&InstanceId]) -> String {
    match ids {
        [] => "updating instances".to_owned(),
        [id] => format!("updating instance {id}"),
        [first, ..] => format!("updating instance {first} and others"),
    }
}

pub(super) fn json(value: &serde_json::Value, what: impl FnOnce() -> String) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|error| Error::Invalid(format!("{} cannot be written as JSON: {error}", what())))
}

fn json_null(
    value: Option<&serde_json::Value>,
    what: impl FnOnce() -> String,
) -> Result<Option<String>> {
    value.map(|value| json(value, what)).transpose()
}

fn instance_row(write: &InstanceWrite) -> Result<[Value; INSTANCE_VALUES]> {
    let record = &write.record;
    let id = &record.id;
    Ok([
        id.as_str().into(),
        record.definition_id.as_str().into(),
        i64::from(record.definition_version).into(),
        record.status.as_str().into(),
        json(&record.input, || format!("instance {id}: input"))?.into(),
        json_null(record.output.as_ref(), || format!("instance {id}: output"))?.into(),
        json_null(record.error.as_ref(), || format!("instance {id}: error"))?.into(),
        to_micros(record.created_at).into(),
        to_micros(record.updated_at).into(),
        to_i64(record.last_seq, || format!("instance {id}: last_seq"))?.into(),
        record.last_hash.as_str().into(),
        to_i64(record.row_version, || format!("instance {id}: row_version"))?.into(),
    ])
}

fn event_row(event: &RecordedEvent) -> Result<[Value; EVENT_VALUES]> {
    let id = &event.instance_id;
    Ok([
        id.as_str().into(),
        to_i64(event.seq, || format!("instance {id}: event seq"))?.into(),
        event.event_type.as_str().into(),
        to_micros(event.at).into(),
        event.actor.as_str().into(),
        json(&event.data, || {
            format!("instance {id}: event {} data", event.seq)
        })?
        .into(),
        event.prev_hash.as_str().into(),
        event.hash.as_str().into(),
    ])
}

/// `WITH v(…) AS (VALUES …) UPDATE …`: updates many instances in one statement, each only
/// if its `row_version` is the expected one. Both backends plan it as a loop over `v` with
/// a primary-key lookup into `instance`. State snapshots are written apart
/// (`snapshots.rs`), so this row stays small.
/// `definition_version` changes when an instance migrates to another version.
const UPDATE_INSTANCES_HEAD: &str = "WITH v (id, expected, status, output, error, \
     updated_at, last_seq, last_hash, row_version, definition_version) AS (VALUES ";
const UPDATE_INSTANCES_TAIL: &str = ") UPDATE instance SET status = v.status, \
     output = v.output, error = v.error, updated_at = v.updated_at, \
     last_seq = v.last_seq, last_hash = v.last_hash, row_version = v.row_version, \
     definition_version = v.definition_version \
     FROM v WHERE instance.id = v.id AND instance.row_version = v.expected";
const UPDATE_VALUES: usize = 10;

fn update_row(write: &InstanceWrite, expected: u64) -> Result<[Value; UPDATE_VALUES]> {
    let record = &write.record;
    let id = &record.id;
    Ok([
        id.as_str().into(),
        to_i64(expected, || format!("instance {id}: row_version"))?.into(),
        record.status.as_str().into(),
        json_null(record.output.as_ref(), || format!("instance {id}: output"))?.into(),
        json_null(record.error.as_ref(), || format!("instance {id}: error"))?.into(),
        to_micros(record.updated_at).into(),
        to_i64(record.last_seq, || format!("instance {id}: last_seq"))?.into(),
        record.last_hash.as_str().into(),
        to_i64(record.row_version, || format!("instance {id}: row_version"))?.into(),
        i64::from(record.definition_version).into(),
    ])
}

/// The rows of one multi-row statement: `head`, the rows as `(…), (…)`, then `tail`.
pub(super) struct Rows<'s, const N: usize> {
    pub(super) head: &'s str,
    pub(super) tail: &'s str,
    pub(super) rows: Vec<[Value; N]>,
}

impl SqlStore {
    /// Executes `rows` in chunks (`query::chunk_lengths`). After each chunk, `check` gets
    /// the chunk's range in `rows` and the number of rows the statement affected.
    pub(super) async fn execute_rows<'b, const N: usize>(
        &self,
        tx: &DatabaseTransaction,
        rows: Rows<'_, N>,
        step: impl Fn(Range<usize>) -> Step<'b>,
        mut check: impl FnMut(Range<usize>, u64) -> std::result::Result<(), Failure<'b>>,
    ) -> std::result::Result<(), Failure<'b>> {
        let Rows { head, tail, rows } = rows;
        let row_bytes: Vec<usize> = rows
            .iter()
            .map(|row| row.iter().map(value_bytes).sum())
            .collect();
        let lengths = chunk_lengths(self.backend, N, &row_bytes);
        let mut rows = rows.into_iter();
        let mut start = 0;
        for length in lengths {
            let range = start..start + length;
            start += length;
            let mut query = Query::new(self.backend, length * N);
            query.sql(head);
            for (index, row) in rows.by_ref().take(length).enumerate() {
                if index > 0 {
                    query.sql(", ");
                }
                query.bind_row(row);
            }
            query.sql(tail);
            match tx.execute_raw(query.build()).await {
                Ok(result) => check(range, result.rows_affected())?,
                Err(error) => {
                    return Err(Failure::Database {
                        error,
                        step: step(range),
                    });
                }
            }
        }
        Ok(())
    }

    /// Updates one instance if its `row_version` is the expected one: the path for a batch
    /// that updates one instance more than once, where the order of the updates matters.
    async fn update_instance<'b>(
        &self,
        tx: &DatabaseTransaction,
        write: &'b InstanceWrite,
        expected: u64,
    ) -> std::result::Result<(), Failure<'b>> {
        let record = &write.record;
        let id = &record.id;
        let mut query = Query::new(self.backend, 9);
        query
            .sql("UPDATE instance SET status = ")
            .bind(record.status.as_str())
            .sql(", output = ")
            .bind(json_null(record.output.as_ref(), || {
                format!("instance {id}: output")
            })?)
            .sql(", error = ")
            .bind(json_null(record.error.as_ref(), || {
                format!("instance {id}: error")
            })?)
            .sql(", updated_at = ")
            .bind(to_micros(record.updated_at))
            .sql(", last_seq = ")
            .bind(to_i64(record.last_seq, || {
                format!("instance {id}: last_seq")
            })?)
            .sql(", last_hash = ")
            .bind(record.last_hash.as_str())
            .sql(", row_version = ")
            .bind(to_i64(record.row_version, || {
                format!("instance {id}: row_version")
            })?)
            .sql(", definition_version = ")
            .bind(i64::from(record.definition_version))
            .sql(" WHERE id = ")
            .bind(id.as_str())
            .sql(" AND row_version = ")
            .bind(to_i64(expected, || format!("instance {id}: row_version"))?);
        match tx.execute_raw(query.build()).await {
            Ok(result) if result.rows_affected() == 1 => {}
            Ok(_) => return Err(Failure::Stale(vec![write])),
            Err(error) => {
                return Err(Failure::Database {
                    error,
                    step: Step::UpdateInstances(vec![id]),
                });
            }
        }
        if write.snapshot {
            self.write_states(tx, &[write], StateWrite::Update).await?;
        }
        Ok(())
    }

    /// Writes the batch inside `tx`, in the order of `rules.rs`; stops at the first
    /// failure.
    async fn write_batch<'b>(
        &self,
        tx: &DatabaseTransaction,
        batch: &'b Batch,
    ) -> std::result::Result<(), Failure<'b>> {
        self.insert_instances(tx, batch).await?;
        self.update_instances(tx, batch).await?;
        self.insert_events(tx, batch).await?;
        self.add_work(tx, batch).await?;
        self.remove_work(tx, batch).await?;
        self.add_timers(tx, batch).await?;
        self.remove_timers(tx, batch).await?;
        self.add_child_links(tx, batch).await?;
        if !batch.approvals.is_empty() {
            self.write_approvals(tx, batch)
                .await
                .map_err(Failure::Store)?;
        }
        if !batch.signal_waits.is_empty() {
            self.write_signal_waits(tx, batch)
                .await
                .map_err(Failure::Store)?;
        }
        if !batch.rights.is_empty() {
            self.write_rights(tx, batch).await.map_err(Failure::Store)?;
        }
        if !batch.ledger.is_empty() {
            self.write_ledger(tx, &batch.ledger)
                .await
                .map_err(Failure::Store)?;
        }
        Ok(())
    }

    /// Inserts the rows of the batch's new instances.
    async fn insert_instances<'b>(
        &self,
        tx: &DatabaseTransaction,
        batch: &'b Batch,
    ) -> std::result::Result<(), Failure<'b>> {
        let inserts: Vec<&'b InstanceWrite> = batch
            .instances
            .iter()
            .filter(|write| write.expected_row_version.is_none())
            .collect();
        let rows = inserts
            .iter()
            .map(|write| instance_row(write))
            .collect::<Result<Vec<_>>>()?;
        self.execute_rows(
            tx,
            Rows {
                head: INSERT_INSTANCE,
                tail: "",
                rows,
            },
            |range| {
                Step::InsertInstances(
                    inserts[range]
                        .iter()
                        .map(|write| &write.record.id)
                        .collect(),
                )
            },
            |_, _| Ok(()),
        )
        .await?;
        self.write_states(tx, &inserts, StateWrite::Insert).await
    }

    /// Updates the rows of the batch's stored instances, each guarded by its expected
    /// `row_version`: in multi-row statements, or one at a time when the batch updates an
    /// instance more than once.
    async fn update_instances<'b>(
        &self,
        tx: &DatabaseTransaction,
        batch: &'b Batch,
    ) -> std::result::Result<(), Failure<'b>> {
        let updates: Vec<(&'b InstanceWrite, u64)> = batch
            .instances
            .iter()
            .filter_map(|write| write.expected_row_version.map(|expected| (write, expected)))
            .collect();
        let mut updated_ids = HashSet::with_capacity(updates.len());
        let each_once = updates
            .iter()
            .all(|(write, _)| updated_ids.insert(write.record.id.as_str()));
        if each_once {
            let rows = updates
                .iter()
                .map(|&(write, expected)| update_row(write, expected))
                .collect::<Result<Vec<_>>>()?;
            self.execute_rows(
                tx,
                Rows {
                    head: UPDATE_INSTANCES_HEAD,
                    tail: UPDATE_INSTANCES_TAIL,
                    rows,
                },
                |range| {
                    Step::UpdateInstances(
                        updates[range]
                            .iter()
                            .map(|(write, _)| &write.record.id)
                            .collect(),
                    )
                },
                |range, updated| {
                    if updated == range.len() as u64 {
                        Ok(())
                    } else {
                        Err(Failure::Stale(
                            updates[range].iter().map(|&(write, _)| write).collect(),
                        ))
                    }
                },
            )
            .await?;
            let snapshots: Vec<&'b InstanceWrite> = updates
                .iter()
                .filter(|(write, _)| write.snapshot)
                .map(|&(write, _)| write)
                .collect();
            self.write_states(tx, &snapshots, StateWrite::Update)
                .await?;
        } else {
            for &(write, expected) in &updates {
                self.update_instance(tx, write, expected).await?;
            }
        }
        Ok(())
    }

    /// Inserts the history events of every instance of the batch.
    async fn insert_events<'b>(
        &self,
        tx: &DatabaseTransaction,
        batch: &'b Batch,
    ) -> std::result::Result<(), Failure<'b>> {
        let events: Vec<&'b RecordedEvent> = batch
            .instances
            .iter()
            .flat_map(|write| &write.events)
            .collect();
        let rows = events
            .iter()
            .map(|event| event_row(event))
            .collect::<Result<Vec<_>>>()?;
        self.execute_rows(
            tx,
            Rows {
                head: INSERT_EVENT,
                tail: "",
                rows,
            },
            |range| Step::InsertEvents(events[range].to_vec()),
            |_, _| Ok(()),
        )
        .await
    }

    /// Queues the batch's new work items (an item already queued stays as it is).
    async fn add_work<'b>(
        &self,
        tx: &DatabaseTransaction,
        batch: &'b Batch,
    ) -> std::result::Result<(), Failure<'b>> {
        let rows = batch
            .work_added
            .iter()
            .map(|item| {
                Ok([
                    item.id.as_str().into(),
                    item.instance_id.as_str().into(),
                    json(&item.payload, || format!("work item {}: payload", item.id))?.into(),
                    to_micros(item.created_at).into(),
                ])
            })
            .collect::<Result<Vec<[Value; WORK_ITEM_VALUES]>>>()?;
        self.execute_rows(
            tx,
            Rows {
                head: INSERT_WORK_ITEM,
                tail: " ON CONFLICT (id) DO NOTHING",
                rows,
            },
            |_| Step::AddWork,
            |_, _| Ok(()),
        )
        .await
    }

    /// Deletes the work items that the batch settles.
    async fn remove_work<'b>(
        &self,
        tx: &DatabaseTransaction,
        batch: &'b Batch,
    ) -> std::result::Result<(), Failure<'b>> {
        let rows = batch
            .work_done
            .iter()
            .map(|id| [Value::from(id.as_str())])
            .collect();
        self.execute_rows(
            tx,
            Rows {
                head: "DELETE FROM work_item WHERE id IN (",
                tail: ")",
                rows,
            },
            |_| Step::RemoveWork,
            |_, _| Ok(()),
        )
        .await
    }

    /// Inserts or moves the batch's timers (the last one per key wins).
    async fn add_timers<'b>(
        &self,
        tx: &DatabaseTransaction,
        batch: &'b Batch,
    ) -> std::result::Result<(), Failure<'b>> {
        let rows = last_timer_per_key(&batch.timers_added)
            .into_iter()
            .map(|timer| {
                Ok([
                    timer.instance_id.as_str().into(),
                    timer.key.as_str().into(),
                    to_micros(timer.fire_at).into(),
                    json(&timer.payload, || {
                        format!(
                            "instance {}: timer {} payload",
                            timer.instance_id, timer.key
                        )
                    })?
                    .into(),
                ])
            })
            .collect::<Result<Vec<[Value; TIMER_VALUES]>>>()?;
        self.execute_rows(
            tx,
            Rows {
                head: INSERT_TIMER,
                tail: " ON CONFLICT (instance_id, \"key\") DO UPDATE \
                     SET fire_at = excluded.fire_at, payload = excluded.payload",
                rows,
            },
            |_| Step::AddTimers,
            |_, _| Ok(()),
        )
        .await
    }

    /// Deletes the timers that the batch cancels or fires.
    async fn remove_timers<'b>(
        &self,
        tx: &DatabaseTransaction,
        batch: &'b Batch,
    ) -> std::result::Result<(), Failure<'b>> {
        // `(a, b) IN (SELECT …)` rather than `(a, b) IN (VALUES …)`: SQLite scans the whole
        // table for the latter, and looks each pair up in the primary key for the former.
        let rows = batch
            .timers_removed
            .iter()
            .map(|(instance_id, key)| [instance_id.as_str().into(), key.as_str().into()])
            .collect();
        self.execute_rows(
            tx,
            Rows {
                head: "DELETE FROM timer WHERE (instance_id, \"key\") IN \
                       (SELECT column1, column2 FROM (VALUES ",
                tail: ") AS v)",
                rows,
            },
            |_| Step::RemoveTimers,
            |_, _| Ok(()),
        )
        .await
    }

    /// Turns a failure into the error to report, after the transaction was rolled back.
    async fn explain(&self, failure: Failure<'_>, batch: &Batch) -> Error {
        match failure {
            Failure::Store(error) => error,
            Failure::Stale(writes) => self.explain_stale(&writes).await,
            Failure::Database { error, step } if kind(&error) == Kind::Duplicate => match step {
                Step::InsertInstances(ids) => self.explain_duplicate_instance(&ids, batch).await,
                Step::InsertEvents(events) => self.explain_duplicate_event(&events).await,
                Step::UpdateInstances(ids) => db_error(error, updating(&ids)),
                Step::AddWork | Step::RemoveWork | Step::AddTimers | Step::RemoveTimers => {
                    db_error(error, "committing a batch")
                }
            },
            Failure::Database { error, step } => {
                let context = match step {
                    Step::InsertInstances(ids) => match ids.first() {
                        Some(first) => format!("inserting instance {first} and others"),
                        None => "inserting instances".to_owned(),
                    },
                    Step::UpdateInstances(ids) => updating(&ids),
                    Step::InsertEvents(_) => "appending history events".to_owned(),
                    Step::AddWork => "queueing work".to_owned(),
                    Step::RemoveWork => "removing done work".to_owned(),
                    Step::AddTimers => "writing timers".to_owned(),
                    Step::RemoveTimers => "removing timers".to_owned(),
                };
                db_error(error, context)
            }
        }
    }

    /// `(id, row_version)` of those of `ids` that exist.
    async fn stored_row_versions(&self, ids: &[&InstanceId]) -> Result<Vec<(String, u64)>> {
        let mut query = Query::new(self.backend, ids.len());
        query
            .sql("SELECT id, row_version FROM instance WHERE id IN (")
            .bind_list(ids.iter().map(|id| id.as_str()))
            .sql(")");
        let rows = self
            .reader
            .query_all_raw(query.build())
            .await
            .map_err(|error| db_error(error, "reading row versions"))?;
        rows.iter()
            .map(|found| {
                let id: String = found
                    .try_get_by_index(0)
                    .map_err(|error| db_error(error, "reading row versions"))?;
                let version: i64 = found
                    .try_get_by_index(1)
                    .map_err(|error| db_error(error, "reading row versions"))?;
                Ok((id, u64::try_from(version).unwrap_or_default()))
            })
            .collect()
    }

    /// Names the first of `writes` whose stored `row_version` is not the expected one,
    /// now that the batch is rolled back.
    async fn explain_stale(&self, writes: &[&InstanceWrite]) -> Error {
        let ids: Vec<&InstanceId> = writes.iter().map(|write| &write.record.id).collect();
        if let Ok(stored) = self.stored_row_versions(&ids).await {
            let stored: HashMap<&str, u64> = stored
                .iter()
                .map(|(id, version)| (id.as_str(), *version))
                .collect();
            for write in writes {
                let id = &write.record.id;
                let expected = write.expected_row_version.unwrap_or_default();
                let found = stored.get(id.as_str()).copied();
                if found != Some(expected) {
                    return stale_instance(id, expected, found);
                }
            }
        }
        match writes.first() {
            Some(first) => Error::Conflict(format!(
                "instance {} or another instance of the batch was changed concurrently",
                first.record.id
            )),
            None => Error::Conflict("an instance of the batch was changed concurrently".to_owned()),
        }
    }

    async fn explain_duplicate_instance(&self, ids: &[&InstanceId], batch: &Batch) -> Error {
        if let Ok(existing) = self.stored_row_versions(ids).await {
            let existing: HashSet<&str> = existing.iter().map(|(id, _)| id.as_str()).collect();
            if let Some(id) = ids.iter().find(|id| existing.contains(id.as_str())) {
                return instance_exists(id);
            }
        }
        let mut seen = HashSet::new();
        for write in &batch.instances {
            if write.expected_row_version.is_none() && !seen.insert(write.record.id.as_str()) {
                return instance_exists(&write.record.id);
            }
        }
        match ids.first() {
            Some(first) => Error::Conflict(format!(
                "instance {first} or another new instance of the batch already exists"
            )),
            None => Error::Conflict("an instance of the batch already exists".to_owned()),
        }
    }

    async fn explain_duplicate_event(&self, events: &[&RecordedEvent]) -> Error {
        let mut seen = HashSet::new();
        for event in events {
            if !seen.insert((event.instance_id.as_str(), event.seq)) {
                return event_exists(&event.instance_id, event.seq);
            }
        }
        let ids: HashSet<&str> = events
            .iter()
            .map(|event| event.instance_id.as_str())
            .collect();
        let mut query = Query::new(self.backend, ids.len());
        query
            .sql("SELECT instance_id, MAX(seq) FROM history_event WHERE instance_id IN (")
            .bind_list(ids.iter().copied())
            .sql(") GROUP BY instance_id");
        if let Ok(rows) = self.reader.query_all_raw(query.build()).await {
            let mut last_seq = HashMap::new();
            for found in &rows {
                if let (Ok(id), Ok(seq)) = (
                    found.try_get_by_index::<String>(0),
                    found.try_get_by_index::<i64>(1),
                ) {
                    last_seq.insert(id, seq);
                }
            }
            for event in events {
                let taken = last_seq
                    .get(event.instance_id.as_str())
                    .is_some_and(|&last| i64::try_from(event.seq).is_ok_and(|seq| seq <= last));
                if taken {
                    return event_exists(&event.instance_id, event.seq);
                }
            }
        }
        match events.first() {
            Some(first) => Error::Conflict(format!(
                "instance {}: a history event of the batch already exists",
                first.instance_id
            )),
            None => Error::Conflict("a history event of the batch already exists".to_owned()),
        }
    }
}

#[async_trait]
impl BatchCommitter for SqlStore {
    async fn commit(&self, batch: &Batch) -> Result<()> {
        validate_batch(batch)?;
        if batch.is_empty() {
            return Ok(());
        }
        // Whatever fails from here on, the transaction is over for the caller: rolled back,
        // or its connection closed (`hygiene`), so the next batch starts on a connection in
        // a known state and nothing of this one is taken for committed.
        let tx = match self.begin_write().await {
            Ok(tx) => tx,
            Err(error) => {
                self.discard_writer();
                return Err(error);
            }
        };
        match self.write_batch(&tx, batch).await {
            Ok(()) => match tx.commit().await {
                Ok(()) => Ok(()),
                Err(error) => {
                    // The database may or may not have ended the transaction.
                    self.discard_writer();
                    Err(db_error(error, "committing a batch"))
                }
            },
            Err(failure) => {
                if matches!(&failure, Failure::Database { error, .. } if kind(error) == Kind::Other)
                {
                    // A full disk, an I/O error, a lost connection: the database may have
                    // rolled back on its own, and the state of the connection is unknown.
                    self.discard_writer();
                }
                if let Err(error) = tx.rollback().await {
                    tracing::warn!(%error, "rolling back a failed batch failed; its connection is closed");
                    self.discard_writer();
                }
                Err(self.explain(failure, batch).await)
            }
        }
    }
}
