//! [`SignalWaitStore`] on SQL: table `signal_wait`, one row per active wait step (and key),
//! looked up by `(signal_name, key_path, key_value)`; and `signal_key_path`, the payload
//! paths that keyed waits of each signal use. An unkeyed wait has `''` for both key
//! columns (no key path is empty).
//!
//! `signal_wait_unindexed` lists the instances that were unfinished when the index was
//! created (its migration cannot compute their rows): a lookup returns each of them as an
//! unkeyed wait with an empty step, for the machine to decide, until a commit writes the
//! instance's rows and removes it from the list. A database made after that migration
//! never has any.

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DatabaseTransaction, QueryResult, Value};

use super::SqlStore;
use super::error::db_error;
use super::query::Query;
use crate::signal_waits::{
    SignalKey, SignalWaitRecord, SignalWaitStore, SignalWaitsWrite, last_per_instance,
};
use crate::{Batch, Result};

/// Rows per multi-row statement (5 values a row, far below either backend's limit, and
/// small enough for PostgreSQL's statement budget with short keys).
const ROWS_PER_STATEMENT: usize = 128;

const COLUMNS: &str = "instance_id, step, signal_name, key_path, key_value";

impl SqlStore {
    /// Replaces the signal index rows of every instance the batch names, inside `tx`.
    pub(super) async fn write_signal_waits(
        &self,
        tx: &DatabaseTransaction,
        batch: &Batch,
    ) -> Result<()> {
        let writes = last_per_instance(&batch.signal_waits);
        for chunk in writes.chunks(ROWS_PER_STATEMENT) {
            let mut query = Query::new(self.backend, chunk.len());
            query
                .sql("DELETE FROM signal_wait WHERE instance_id IN (")
                .bind_list(chunk.iter().map(|write| write.instance_id.as_str()))
                .sql(")");
            tx.execute_raw(query.build())
                .await
                .map_err(|error| db_error(error, "writing the signal index"))?;
            let mut query = Query::new(self.backend, chunk.len());
            query
                .sql("DELETE FROM signal_wait_unindexed WHERE instance_id IN (")
                .bind_list(chunk.iter().map(|write| write.instance_id.as_str()))
                .sql(")");
            tx.execute_raw(query.build())
                .await
                .map_err(|error| db_error(error, "writing the signal index"))?;
        }
        // One row per primary key: a wait listed twice is one wait.
        let mut waits: Vec<&SignalWaitRecord> = writes
            .iter()
            .flat_map(|write: &&SignalWaitsWrite| write.waits.iter())
            .collect();
        waits.sort_unstable();
        waits.dedup();
        let rows: Vec<[Value; 5]> = waits.into_iter().map(row).collect();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut query = Query::new(self.backend, chunk.len() * 5);
            query
                .sql("INSERT INTO signal_wait (")
                .sql(COLUMNS)
                .sql(") VALUES ");
            for (index, row) in chunk.iter().enumerate() {
                if index > 0 {
                    query.sql(", ");
                }
                query.bind_row(row.clone());
            }
            tx.execute_raw(query.build())
                .await
                .map_err(|error| db_error(error, "writing the signal index"))?;
        }
        let mut paths: Vec<(&str, &str)> = writes
            .iter()
            .flat_map(|write| write.waits.iter())
            .filter_map(|wait| Some((wait.signal.as_str(), wait.key.as_ref()?.path.as_str())))
            .collect();
        paths.sort_unstable();
        paths.dedup();
        for chunk in paths.chunks(ROWS_PER_STATEMENT) {
            let mut query = Query::new(self.backend, chunk.len() * 2);
            query.sql("INSERT INTO signal_key_path (signal_name, key_path) VALUES ");
            for (index, (signal, path)) in chunk.iter().enumerate() {
                if index > 0 {
                    query.sql(", ");
                }
                query.bind_row::<2>([(*signal).into(), (*path).into()]);
            }
            query.sql(" ON CONFLICT (signal_name, key_path) DO NOTHING");
            tx.execute_raw(query.build())
                .await
                .map_err(|error| db_error(error, "writing the signal key paths"))?;
        }
        Ok(())
    }
}

fn row(wait: &SignalWaitRecord) -> [Value; 5] {
    let (path, value) = match &wait.key {
        Some(key) => (key.path.as_str(), key.value.as_str()),
        None => ("", ""),
    };
    [
        wait.instance_id.as_str().into(),
        wait.step.as_str().into(),
        wait.signal.as_str().into(),
        path.into(),
        value.into(),
    ]
}

fn record(row: &QueryResult, context: &str) -> Result<SignalWaitRecord> {
    let text = |index: usize| -> Result<String> {
        row.try_get_by_index::<String>(index)
            .map_err(|error| db_error(error, context))
    };
    let path = text(3)?;
    let value = text(4)?;
    Ok(SignalWaitRecord {
        instance_id: text(0)?.as_str().into(),
        step: text(1)?.as_str().into(),
        signal: text(2)?,
        key: (!path.is_empty()).then_some(SignalKey { path, value }),
    })
}

#[async_trait]
impl SignalWaitStore for SqlStore {
    async fn signal_key_paths(&self, signal: &str) -> Result<Vec<String>> {
        let context = format!("reading the key paths of signal {signal:?}");
        let mut query = Query::new(self.backend, 1);
        query
            .sql("SELECT key_path FROM signal_key_path WHERE signal_name = ")
            .bind(signal)
            .sql(" ORDER BY key_path");
        let rows = self
            .reader
            .query_all_raw(query.build())
            .await
            .map_err(|error| db_error(error, &context))?;
        rows.iter()
            .map(|row| {
                row.try_get_by_index::<String>(0)
                    .map_err(|error| db_error(error, &context))
            })
            .collect()
    }

    async fn signal_waits(
        &self,
        signal: &str,
        keys: &[SignalKey],
    ) -> Result<Vec<SignalWaitRecord>> {
        let context = format!("reading the waits for signal {signal:?}");
        let mut query = Query::new(self.backend, 1 + keys.len() * 3);
        // One index range per key (and one for the unkeyed waits), so the cost is the rows
        // found, whatever else waits for the signal.
        query
            .sql("SELECT ")
            .sql(COLUMNS)
            .sql(" FROM signal_wait WHERE signal_name = ")
            .bind(signal)
            .sql(" AND key_path = ''");
        for key in keys {
            query
                .sql(" UNION ALL SELECT ")
                .sql(COLUMNS)
                .sql(" FROM signal_wait WHERE signal_name = ")
                .bind(signal)
                .sql(" AND key_path = ")
                .bind(key.path.as_str())
                .sql(" AND key_value = ")
                .bind(key.value.as_str());
        }
        query
            .sql(" UNION ALL SELECT instance_id, '', ")
            .bind(signal)
            .sql(", '', '' FROM signal_wait_unindexed")
            .sql(" ORDER BY instance_id, step, signal_name, key_path, key_value");
        let rows = self
            .reader
            .query_all_raw(query.build())
            .await
            .map_err(|error| db_error(error, &context))?;
        rows.iter().map(|row| record(row, &context)).collect()
    }
}
