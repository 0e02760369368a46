//! [`AuditStore`] on SQL: chain heads, events a page at a time in (instance, seq) order,
//! the audit log and the checkpoints.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, QueryResult, Value};
use serde_json::Value as Json;

use gridflow_core::audit::{AuditRecord, ChainHead, Checkpoint, CheckpointBody};
use gridflow_core::history::GENESIS_HASH;
use gridflow_core::{DefinitionId, InstanceId, RecordedEvent};

use super::SqlStore;
use super::error::{corrupt, db_error};
use super::query::{Query, chunk_lengths, value_bytes};
use super::row::{self, EVENT_COLUMNS};
use crate::rules::{from_micros, to_i64, to_micros};
use crate::{AuditFilter, AuditStore, Error, InstanceHead, Result};

const CHECKPOINT_COLUMNS: &str = "seq, at, merkle_root, instances, prev_checkpoint_hash, \
     audit_log_seq, audit_log_hash, hash, public_key, signature";
const AUDIT_LOG_COLUMNS: &str = "seq, event_type, at, actor, data, prev_hash, hash";
const INSERT_HEAD: &str =
    "INSERT INTO checkpoint_head (checkpoint_seq, instance_id, seq, hash) VALUES ";

/// How often an audit log append is tried when another node appended first (PostgreSQL).
const APPEND_ATTEMPTS: usize = 5;

/// Appends ` AND <instance filter>` on the instance table's columns (`id`, …).
fn filter_instances(query: &mut Query, filter: &AuditFilter) {
    if let Some(instance) = &filter.instance {
        query.sql(" AND id = ").bind(instance.as_str());
    }
    if let Some(definition) = &filter.definition {
        query.sql(" AND definition_id = ").bind(definition.as_str());
    }
    if let Some(from) = filter.created_from {
        query.sql(" AND created_at >= ").bind(to_micros(from));
    }
    if let Some(to) = filter.created_to {
        query.sql(" AND created_at < ").bind(to_micros(to));
    }
}

fn get<T: sea_orm::TryGetable>(row: &QueryResult, index: usize, what: &str) -> Result<T> {
    row.try_get_by_index(index)
        .map_err(|error| db_error(error, format_args!("reading {what}")))
}

fn unsigned(row: &QueryResult, index: usize, what: &str) -> Result<u64> {
    let value: i64 = get(row, index, what)?;
    u64::try_from(value).map_err(|_| corrupt(what, format_args!("{value} is negative")))
}

fn instant(row: &QueryResult, index: usize, what: &str) -> Result<DateTime<Utc>> {
    let micros: i64 = get(row, index, what)?;
    from_micros(micros).ok_or_else(|| corrupt(what, format_args!("{micros} is not an instant")))
}

fn checkpoint(row: &QueryResult) -> Result<Checkpoint> {
    let what = "a checkpoint";
    Ok(Checkpoint {
        body: CheckpointBody {
            seq: unsigned(row, 0, what)?,
            at: instant(row, 1, what)?,
            merkle_root: get(row, 2, what)?,
            instances: unsigned(row, 3, what)?,
            prev_checkpoint_hash: get(row, 4, what)?,
            audit_log_seq: unsigned(row, 5, what)?,
            audit_log_hash: get(row, 6, what)?,
        },
        hash: get(row, 7, what)?,
        public_key: get(row, 8, what)?,
        signature: get(row, 9, what)?,
    })
}

fn audit_record(row: &QueryResult) -> Result<AuditRecord> {
    let what = "an audit log record";
    let data: String = get(row, 4, what)?;
    Ok(AuditRecord {
        seq: unsigned(row, 0, what)?,
        event_type: get(row, 1, what)?,
        at: instant(row, 2, what)?,
        actor: get(row, 3, what)?,
        data: serde_json::from_str(&data)
            .map_err(|error| corrupt(what, format_args!("data is not JSON: {error}")))?,
        prev_hash: get(row, 5, what)?,
        hash: get(row, 6, what)?,
    })
}

impl SqlStore {
    async fn try_append(
        &self,
        event_type: &str,
        at: DateTime<Utc>,
        actor: &str,
        data: &Json,
    ) -> Result<AuditRecord> {
        let failed = |error| db_error(error, "appending to the audit log");
        let tx = self.begin_write().await?;
        let last = tx
            .query_one_raw(
                Query::text(
                    self.backend,
                    "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                )
                .build(),
            )
            .await
            .map_err(failed)?;
        let (seq, prev_hash) = match last {
            Some(row) => (
                unsigned(&row, 0, "the audit log")? + 1,
                get::<String>(&row, 1, "the audit log")?,
            ),
            None => (1, GENESIS_HASH.to_owned()),
        };
        let record = AuditRecord::record(seq, &prev_hash, event_type, at, actor, data.clone());
        let mut insert = Query::new(self.backend, 7);
        insert
            .sql("INSERT INTO audit_log (")
            .sql(AUDIT_LOG_COLUMNS)
            .sql(") VALUES ")
            .bind_row([
                Value::from(to_i64(record.seq, || "audit log seq".to_owned())?),
                record.event_type.as_str().into(),
                to_micros(record.at).into(),
                record.actor.as_str().into(),
                record.data.to_string().into(),
                record.prev_hash.as_str().into(),
                record.hash.as_str().into(),
            ]);
        tx.execute_raw(insert.build()).await.map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(record)
    }
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn instance_heads(&self, filter: &AuditFilter) -> Result<Vec<InstanceHead>> {
        let mut query = Query::new(self.backend, 4);
        query.sql(
            "SELECT id, definition_id, definition_version, last_seq, last_hash FROM instance WHERE 1 = 1",
        );
        filter_instances(&mut query, filter);
        query.sql(" ORDER BY id");
        let rows = self
            .reader
            .query_all_raw(query.build())
            .await
            .map_err(|error| db_error(error, "reading the instances' chain heads"))?;
        rows.iter()
            .map(|row| {
                let what = "an instance's chain head";
                let version: i64 = get(row, 2, what)?;
                Ok(InstanceHead {
                    head: ChainHead {
                        instance_id: InstanceId(get(row, 0, what)?),
                        seq: unsigned(row, 3, what)?,
                        hash: get(row, 4, what)?,
                    },
                    definition_id: DefinitionId(get(row, 1, what)?),
                    definition_version: u32::try_from(version)
                        .map_err(|_| corrupt(what, format_args!("version {version}")))?,
                })
            })
            .collect()
    }

    async fn events_after(
        &self,
        filter: &AuditFilter,
        after: Option<(&InstanceId, u64)>,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>> {
        let mut query = Query::new(self.backend, 8);
        query
            .sql("SELECT ")
            .sql(EVENT_COLUMNS)
            .sql(" FROM history_event WHERE 1 = 1");
        if let Some(instance) = &filter.instance {
            query.sql(" AND instance_id = ").bind(instance.as_str());
        }
        if filter.definition.is_some()
            || filter.created_from.is_some()
            || filter.created_to.is_some()
        {
            query.sql(" AND instance_id IN (SELECT id FROM instance WHERE 1 = 1");
            let narrowed = AuditFilter {
                instance: None,
                ..filter.clone()
            };
            filter_instances(&mut query, &narrowed);
            query.sql(")");
        }
        if let Some((instance, seq)) = after {
            let seq = to_i64(seq, || "seq".to_owned())?;
            query
                .sql(" AND (instance_id > ")
                .bind(instance.as_str())
                .sql(" OR (instance_id = ")
                .bind(instance.as_str())
                .sql(" AND seq > ")
                .bind(seq)
                .sql("))");
        }
        query
            .sql(" ORDER BY instance_id, seq LIMIT ")
            .bind(i64::from(limit));
        let rows = self
            .reader
            .query_all_raw(query.build())
            .await
            .map_err(|error| db_error(error, "reading history events"))?;
        rows.iter().map(row::event).collect()
    }

    async fn append_audit_record(
        &self,
        event_type: &str,
        at: DateTime<Utc>,
        actor: &str,
        data: Json,
    ) -> Result<AuditRecord> {
        let mut attempt = 1;
        loop {
            match self.try_append(event_type, at, actor, &data).await {
                // Another node appended the same seq first: read the new head and retry.
                Err(Error::Conflict(_)) if attempt < APPEND_ATTEMPTS => attempt += 1,
                other => return other,
            }
        }
    }

    async fn audit_log(&self) -> Result<Vec<AuditRecord>> {
        let mut query = Query::new(self.backend, 0);
        query
            .sql("SELECT ")
            .sql(AUDIT_LOG_COLUMNS)
            .sql(" FROM audit_log ORDER BY seq");
        let rows = self
            .reader
            .query_all_raw(query.build())
            .await
            .map_err(|error| db_error(error, "reading the audit log"))?;
        rows.iter().map(audit_record).collect()
    }

    async fn add_checkpoint(&self, checkpoint: &Checkpoint, heads: &[ChainHead]) -> Result<()> {
        let body = &checkpoint.body;
        let seq = body.seq;
        let failed = |error| db_error(error, format_args!("storing checkpoint {seq}"));
        let tx = self.begin_write().await?;
        let last = tx
            .query_one_raw(Query::text(self.backend, "SELECT MAX(seq) FROM checkpoint").build())
            .await
            .map_err(failed)?;
        let last: Option<i64> = match last {
            Some(row) => get(&row, 0, "the last checkpoint")?,
            None => None,
        };
        let last = last.and_then(|last| u64::try_from(last).ok()).unwrap_or(0);
        if seq != last + 1 {
            return Err(Error::Conflict(format!(
                "checkpoint {seq}: the last checkpoint is {last}"
            )));
        }
        let number = |value: u64, what: &str| to_i64(value, || format!("checkpoint {seq}: {what}"));
        let mut insert = Query::new(self.backend, 10);
        insert
            .sql("INSERT INTO checkpoint (")
            .sql(CHECKPOINT_COLUMNS)
            .sql(") VALUES ")
            .bind_row([
                Value::from(number(seq, "seq")?),
                to_micros(body.at).into(),
                body.merkle_root.as_str().into(),
                number(body.instances, "instances")?.into(),
                body.prev_checkpoint_hash.as_str().into(),
                number(body.audit_log_seq, "audit_log_seq")?.into(),
                body.audit_log_hash.as_str().into(),
                checkpoint.hash.as_str().into(),
                checkpoint.public_key.as_str().into(),
                checkpoint.signature.as_str().into(),
            ]);
        tx.execute_raw(insert.build()).await.map_err(failed)?;

        let checkpoint_seq = number(seq, "seq")?;
        let rows = heads
            .iter()
            .map(|head| {
                Ok([
                    Value::from(checkpoint_seq),
                    head.instance_id.as_str().into(),
                    number(head.seq, "head seq")?.into(),
                    head.hash.as_str().into(),
                ])
            })
            .collect::<Result<Vec<[Value; 4]>>>()?;
        let row_bytes: Vec<usize> = rows
            .iter()
            .map(|row| row.iter().map(value_bytes).sum())
            .collect();
        let mut rows = rows.into_iter();
        for length in chunk_lengths(self.backend, 4, &row_bytes) {
            let mut query = Query::new(self.backend, length * 4);
            query.sql(INSERT_HEAD);
            for (index, row) in rows.by_ref().take(length).enumerate() {
                if index > 0 {
                    query.sql(", ");
                }
                query.bind_row(row);
            }
            tx.execute_raw(query.build()).await.map_err(failed)?;
        }
        tx.commit().await.map_err(failed)
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let mut query = Query::new(self.backend, 0);
        query
            .sql("SELECT ")
            .sql(CHECKPOINT_COLUMNS)
            .sql(" FROM checkpoint ORDER BY seq");
        let rows = self
            .reader
            .query_all_raw(query.build())
            .await
            .map_err(|error| db_error(error, "reading the checkpoints"))?;
        rows.iter().map(checkpoint).collect()
    }

    async fn checkpoint_heads(&self, seq: u64) -> Result<Vec<ChainHead>> {
        let mut query = Query::new(self.backend, 1);
        query
            .sql("SELECT instance_id, seq, hash FROM checkpoint_head WHERE checkpoint_seq = ")
            .bind(to_i64(seq, || "checkpoint seq".to_owned())?)
            .sql(" ORDER BY instance_id");
        let rows = self
            .reader
            .query_all_raw(query.build())
            .await
            .map_err(|error| {
                db_error(error, format_args!("reading the heads of checkpoint {seq}"))
            })?;
        rows.iter()
            .map(|row| {
                let what = "a checkpoint head";
                Ok(ChainHead {
                    instance_id: InstanceId(get(row, 0, what)?),
                    seq: unsigned(row, 1, what)?,
                    hash: get(row, 2, what)?,
                })
            })
            .collect()
    }
}
