//! [`BatchCommitter`] on SQL: the group-commit write path.
//!
//! A batch is one write transaction of few statements: multi-row `INSERT`s in chunks
//! (`query::chunks`), `DELETE … IN (…)` lists, and one guarded `UPDATE` per updated
//! instance (`WHERE id = ? AND row_version = ?`). The order of the parts is the one
//! documented in `rules.rs`, which the in-memory store follows too.
//!
//! On the happy path nothing is read. When a statement fails, the transaction is rolled
//! back first and only then is the database asked which instance caused the failure, so
//! that the `Conflict` can name it.

use std::collections::HashSet;

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, Value};

use gridflow_core::{InstanceId, RecordedEvent};

use super::SqlStore;
use super::error::{Kind, db_error, kind};
use super::query::{Query, chunks};
use crate::rules::{
    event_exists, instance_exists, last_timer_per_key, stale_instance, to_i64, to_micros,
    validate_batch,
};
use crate::{Batch, BatchCommitter, Error, InstanceWrite, Result};

const INSERT_INSTANCE: &str = "INSERT INTO instance (id, definition_id, definition_version, \
     status, state, input, output, error, created_at, updated_at, last_seq, last_hash, \
     row_version) VALUES ";
const INSTANCE_VALUES: usize = 13;

const INSERT_EVENT: &str = "INSERT INTO history_event (instance_id, seq, event_type, at, \
     actor, data, prev_hash, hash) VALUES ";
const EVENT_VALUES: usize = 8;

const INSERT_WORK_ITEM: &str =
    "INSERT INTO work_item (id, instance_id, payload, created_at) VALUES ";
const WORK_ITEM_VALUES: usize = 4;

const INSERT_TIMER: &str = "INSERT INTO timer (instance_id, \"key\", fire_at, payload) VALUES ";
const TIMER_VALUES: usize = 4;

/// Why writing a batch stopped, with what is needed to explain it after the rollback.
enum Failure<'b> {
    /// A value could not be written (already the caller's error).
    Store(Error),
    /// An update found another `row_version`, or no row.
    Stale(&'b InstanceWrite),
    /// A statement failed.
    Database { error: DbErr, step: Step<'b> },
}

/// The statement that failed.
enum Step<'b> {
    InsertInstances(Vec<&'b InstanceId>),
    UpdateInstance(&'b InstanceId),
    InsertEvents(Vec<&'b RecordedEvent>),
    AddWork,
    RemoveWork,
    AddTimers,
    RemoveTimers,
}

impl From<Error> for Failure<'_> {
    fn from(error: Error) -> Self {
        Failure::Store(error)
    }
}

fn json(value: &serde_json::Value, what: impl FnOnce() -> String) -> Result<String> {
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
        json(&record.state, || format!("instance {id}: state"))?.into(),
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

fn query_head(q: &Query) -> String { format!("{:?}", q).chars().skip(0).take(90).collect() }

impl SqlStore {
    async fn execute<'b>(
        &self,
        tx: &DatabaseTransaction,
        query: Query,
        step: impl FnOnce() -> Step<'b>,
    ) -> std::result::Result<u64, Failure<'b>> {
        let t0 = std::time::Instant::now();
        let sql_head: String = query_head(&query);
        let r = tx.execute_raw(query.build()).await;
        if std::env::var("GF_TRACE").is_ok() { eprintln!("{:>8.3} ms {}", t0.elapsed().as_secs_f64()*1000.0, sql_head); }
        match r {
            Ok(result) => Ok(result.rows_affected()),
            Err(error) => Err(Failure::Database {
                error,
                step: step(),
            }),
        }
    }

    /// Writes the batch inside `tx`; stops at the first failure.
    async fn write_batch<'b>(
        &self,
        tx: &DatabaseTransaction,
        batch: &'b Batch,
    ) -> std::result::Result<(), Failure<'b>> {
        let backend = self.backend;

        let inserts: Vec<&InstanceWrite> = batch
            .instances
            .iter()
            .filter(|write| write.expected_row_version.is_none())
            .collect();
        for chunk in chunks(backend, INSTANCE_VALUES, &inserts) {
            let mut query = Query::new(backend, chunk.len() * INSTANCE_VALUES);
            query.sql(INSERT_INSTANCE);
            for (index, write) in chunk.iter().enumerate() {
                if index > 0 {
                    query.sql(", ");
                }
                query.bind_row(instance_row(write)?);
            }
            self.execute(tx, query, || {
                Step::InsertInstances(
                    chunk
                        .iter()
                        .copied()
                        .map(|write| &write.record.id)
                        .collect(),
                )
            })
            .await?;
        }

        for write in &batch.instances {
            let Some(expected) = write.expected_row_version else {
                continue;
            };
            let record = &write.record;
            let id = &record.id;
            let mut query = Query::new(backend, 10);
            query
                .sql("UPDATE instance SET status = ")
                .bind(record.status.as_str())
                .sql(", state = ")
                .bind(json(&record.state, || format!("instance {id}: state"))?)
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
                .sql(" WHERE id = ")
                .bind(id.as_str())
                .sql(" AND row_version = ")
                .bind(to_i64(expected, || format!("instance {id}: row_version"))?);
            let updated = self.execute(tx, query, || Step::UpdateInstance(id)).await?;
            if updated != 1 {
                return Err(Failure::Stale(write));
            }
        }

        let events: Vec<&RecordedEvent> = batch
            .instances
            .iter()
            .flat_map(|write| &write.events)
            .collect();
        for chunk in chunks(backend, EVENT_VALUES, &events) {
            let mut query = Query::new(backend, chunk.len() * EVENT_VALUES);
            query.sql(INSERT_EVENT);
            for (index, event) in chunk.iter().enumerate() {
                if index > 0 {
                    query.sql(", ");
                }
                query.bind_row(event_row(event)?);
            }
            self.execute(tx, query, || Step::InsertEvents(chunk.to_vec()))
                .await?;
        }

        for chunk in chunks(backend, WORK_ITEM_VALUES, &batch.work_added) {
            let mut query = Query::new(backend, chunk.len() * WORK_ITEM_VALUES);
            query.sql(INSERT_WORK_ITEM);
            for (index, item) in chunk.iter().enumerate() {
                if index > 0 {
                    query.sql(", ");
                }
                query.bind_row([
                    item.id.as_str().into(),
                    item.instance_id.as_str().into(),
                    json(&item.payload, || format!("work item {}: payload", item.id))?.into(),
                    to_micros(item.created_at).into(),
                ]);
            }
            query.sql(" ON CONFLICT (id) DO NOTHING");
            self.execute(tx, query, || Step::AddWork).await?;
        }

        for chunk in chunks(backend, 1, &batch.work_done) {
            let mut query = Query::new(backend, chunk.len());
            query
                .sql("DELETE FROM work_item WHERE id IN (")
                .bind_list(chunk.iter().map(String::as_str))
                .sql(")");
            self.execute(tx, query, || Step::RemoveWork).await?;
        }

        let timers = last_timer_per_key(&batch.timers_added);
        for chunk in chunks(backend, TIMER_VALUES, &timers) {
            let mut query = Query::new(backend, chunk.len() * TIMER_VALUES);
            query.sql(INSERT_TIMER);
            for (index, timer) in chunk.iter().enumerate() {
                if index > 0 {
                    query.sql(", ");
                }
                query.bind_row([
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
                ]);
            }
            query.sql(
                " ON CONFLICT (instance_id, \"key\") DO UPDATE \
                 SET fire_at = excluded.fire_at, payload = excluded.payload",
            );
            self.execute(tx, query, || Step::AddTimers).await?;
        }

        for chunk in chunks(backend, 2, &batch.timers_removed) {
            let mut query = Query::new(backend, chunk.len() * 2);
            query.sql("DELETE FROM timer WHERE (instance_id, \"key\") IN (VALUES ");
            for (index, (instance_id, key)) in chunk.iter().enumerate() {
                if index > 0 {
                    query.sql(", ");
                }
                query.bind_row([instance_id.as_str().into(), key.as_str().into()]);
            }
            query.sql(")");
            self.execute(tx, query, || Step::RemoveTimers).await?;
        }
        Ok(())
    }

    /// Turns a failure into the error to report, after the transaction was rolled back.
    async fn explain(&self, failure: Failure<'_>, batch: &Batch) -> Error {
        match failure {
            Failure::Store(error) => error,
            Failure::Stale(write) => {
                let id = &write.record.id;
                let expected = write.expected_row_version.unwrap_or_default();
                match self.stored_row_versions(&[id]).await {
                    Ok(stored) => stale_instance(
                        id,
                        expected,
                        stored.into_iter().next().map(|(_, version)| version),
                    ),
                    Err(_) => Error::Conflict(format!(
                        "instance {id}: expected row_version {expected}, found another"
                    )),
                }
            }
            Failure::Database { error, step } if kind(&error) == Kind::Duplicate => match step {
                Step::InsertInstances(ids) => self.explain_duplicate_instance(&ids, batch).await,
                Step::InsertEvents(events) => self.explain_duplicate_event(&events).await,
                Step::UpdateInstance(id) => db_error(error, format_args!("updating instance {id}")),
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
                    Step::UpdateInstance(id) => format!("updating instance {id}"),
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
            let mut last_seq = std::collections::HashMap::new();
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
        let t0 = std::time::Instant::now();
        let tx = self.begin_write().await?;
        if std::env::var("GF_TRACE").is_ok() { eprintln!("{:>8.3} ms BEGIN", t0.elapsed().as_secs_f64()*1000.0); }
        match self.write_batch(&tx, batch).await {
            Ok(()) => { let t0 = std::time::Instant::now(); let r = tx
                .commit()
                .await
                .map_err(|error| db_error(error, "committing a batch")); if std::env::var("GF_TRACE").is_ok() { eprintln!("{:>8.3} ms COMMIT", t0.elapsed().as_secs_f64()*1000.0); } r },
            Err(failure) => {
                if let Err(error) = tx.rollback().await {
                    tracing::warn!(%error, "rolling back a failed batch failed");
                }
                Err(self.explain(failure, batch).await)
            }
        }
    }
}
