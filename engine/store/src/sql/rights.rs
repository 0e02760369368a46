//! [`RightsStore`] on SQL: `rights_window`, one row per asset, written by an upsert
//! (`INSERT … ON CONFLICT (system, asset_id) DO UPDATE`, whose `updated_at` moves only when
//! a bound changed), and `rights_firing`, whose primary key makes a firing's insert its
//! claim (`ON CONFLICT DO NOTHING`). A due window is one whose end has no firing row of the
//! trigger (`NOT EXISTS`), so a moved end is due again.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, QueryResult, Value};

use gridflow_core::{DefinitionId, InstanceId};

use super::SqlStore;
use super::error::{corrupt, db_error};
use super::query::Query;
use crate::rights::{
    FiringState, ObservedWindow, RightsFiring, RightsStore, RightsWindowRecord, last_per_asset,
    validate,
};
use crate::rules::{from_micros, to_micros};
use crate::{Batch, Result};

/// Rows per multi-row upsert (7 values a row).
const ROWS_PER_STATEMENT: usize = 128;

const WINDOW_COLUMNS: &str =
    "system, asset_id, valid_from, valid_until, first_seen_at, seen_at, updated_at";

const FIRING_COLUMNS: &str = "definition_id, trigger_index, system, asset_id, valid_until, \
     state, instance_id, fired_at, fired_by";

/// The end of the window upsert: the latest observation wins; `updated_at` keeps its
/// value unless a bound changed (NULL equal to NULL).
const UPSERT_TAIL: &str = " ON CONFLICT (system, asset_id) DO UPDATE SET \
     valid_from = excluded.valid_from, valid_until = excluded.valid_until, \
     seen_at = excluded.seen_at, updated_at = CASE WHEN \
     ((rights_window.valid_from IS NULL AND excluded.valid_from IS NULL) \
      OR rights_window.valid_from = excluded.valid_from) \
     AND ((rights_window.valid_until IS NULL AND excluded.valid_until IS NULL) \
      OR rights_window.valid_until = excluded.valid_until) \
     THEN rights_window.updated_at ELSE excluded.updated_at END";

fn instant(micros: i64, table: &str, column: &str) -> Result<DateTime<Utc>> {
    from_micros(micros).ok_or_else(|| {
        corrupt(
            table,
            format_args!("{column} {micros} is not an instant in microseconds"),
        )
    })
}

fn optional_instant(micros: Option<i64>, column: &str) -> Result<Option<DateTime<Utc>>> {
    micros
        .map(|micros| instant(micros, "rights_window", column))
        .transpose()
}

fn window(row: &QueryResult) -> Result<RightsWindowRecord> {
    let context = "reading a rights window";
    let text = |index: usize| -> Result<String> {
        row.try_get_by_index(index)
            .map_err(|error| db_error(error, context))
    };
    let int = |index: usize| -> Result<Option<i64>> {
        row.try_get_by_index(index)
            .map_err(|error| db_error(error, context))
    };
    let required = |index: usize, column: &str| -> Result<DateTime<Utc>> {
        let micros = int(index)?
            .ok_or_else(|| corrupt("rights_window", format_args!("{column} is NULL")))?;
        instant(micros, "rights_window", column)
    };
    Ok(RightsWindowRecord {
        system: text(0)?,
        asset_id: text(1)?,
        valid_from: optional_instant(int(2)?, "valid_from")?,
        valid_until: optional_instant(int(3)?, "valid_until")?,
        first_seen_at: required(4, "first_seen_at")?,
        seen_at: required(5, "seen_at")?,
        updated_at: required(6, "updated_at")?,
    })
}

fn firing(row: &QueryResult) -> Result<RightsFiring> {
    let context = "reading a rights firing";
    let text = |index: usize| -> Result<String> {
        row.try_get_by_index(index)
            .map_err(|error| db_error(error, context))
    };
    let int = |index: usize| -> Result<i64> {
        row.try_get_by_index(index)
            .map_err(|error| db_error(error, context))
    };
    let instance_id: Option<String> = row
        .try_get_by_index(6)
        .map_err(|error| db_error(error, context))?;
    let trigger_index = int(1)?;
    Ok(RightsFiring {
        definition_id: DefinitionId::from(text(0)?),
        trigger_index: u32::try_from(trigger_index).map_err(|_| {
            corrupt(
                "rights_firing",
                format_args!("trigger_index {trigger_index} is out of range"),
            )
        })?,
        system: text(2)?,
        asset_id: text(3)?,
        valid_until: instant(int(4)?, "rights_firing", "valid_until")?,
        state: FiringState::parse(&text(5)?)?,
        instance_id: instance_id.map(InstanceId::from),
        fired_at: instant(int(7)?, "rights_firing", "fired_at")?,
        fired_by: text(8)?,
    })
}

fn window_row(window: &ObservedWindow) -> [Value; 7] {
    let seen_at = to_micros(window.seen_at);
    [
        window.system.as_str().into(),
        window.asset_id.as_str().into(),
        window.valid_from.map(to_micros).into(),
        window.valid_until.map(to_micros).into(),
        seen_at.into(),
        seen_at.into(),
        seen_at.into(),
    ]
}

impl SqlStore {
    /// Writes the rights windows of a batch inside `tx`.
    pub(super) async fn write_rights(&self, tx: &DatabaseTransaction, batch: &Batch) -> Result<()> {
        self.upsert_windows(tx, &batch.rights).await
    }

    async fn upsert_windows(
        &self,
        tx: &DatabaseTransaction,
        windows: &[ObservedWindow],
    ) -> Result<()> {
        // PostgreSQL refuses to upsert one row twice in a statement.
        let rows: Vec<[Value; 7]> = last_per_asset(windows)
            .into_iter()
            .map(window_row)
            .collect();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut query = Query::new(self.backend, chunk.len() * 7);
            query
                .sql("INSERT INTO rights_window (")
                .sql(WINDOW_COLUMNS)
                .sql(") VALUES ");
            for (index, row) in chunk.iter().enumerate() {
                if index > 0 {
                    query.sql(", ");
                }
                query.bind_row(row.clone());
            }
            query.sql(UPSERT_TAIL);
            tx.execute_raw(query.build())
                .await
                .map_err(|error| db_error(error, "writing rights windows"))?;
        }
        Ok(())
    }
}

#[async_trait]
impl RightsStore for SqlStore {
    async fn observe_rights(&self, windows: &[ObservedWindow]) -> Result<()> {
        validate(windows)?;
        if windows.is_empty() {
            return Ok(());
        }
        let tx = self.begin_write().await?;
        if let Err(error) = self.upsert_windows(&tx, windows).await {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "rolling back failed rights windows failed; its connection is closed");
                self.discard_writer();
            }
            return Err(error);
        }
        tx.commit().await.map_err(|error| {
            self.discard_writer();
            db_error(error, "committing rights windows")
        })
    }

    async fn rights_window(
        &self,
        system: &str,
        asset_id: &str,
    ) -> Result<Option<RightsWindowRecord>> {
        let mut query = Query::new(self.backend, 2);
        query
            .sql("SELECT ")
            .sql(WINDOW_COLUMNS)
            .sql(" FROM rights_window WHERE system = ")
            .bind(system)
            .sql(" AND asset_id = ")
            .bind(asset_id);
        let found = self
            .writer
            .query_one_raw(query.build())
            .await
            .map_err(|error| {
                db_error(
                    error,
                    format_args!("reading the rights window of asset {asset_id} of {system}"),
                )
            })?;
        found.as_ref().map(window).transpose()
    }

    async fn due_rights_windows(
        &self,
        definition_id: &DefinitionId,
        trigger_index: u32,
        system: Option<&str>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RightsWindowRecord>> {
        let mut query = Query::new(self.backend, 5);
        query
            .sql(
                "SELECT w.system, w.asset_id, w.valid_from, w.valid_until, w.first_seen_at, \
                  w.seen_at, w.updated_at FROM rights_window w \
                  WHERE w.valid_until IS NOT NULL AND w.valid_until <= ",
            )
            .bind(to_micros(until));
        if let Some(system) = system {
            query.sql(" AND w.system = ").bind(system);
        }
        query
            .sql(" AND NOT EXISTS (SELECT 1 FROM rights_firing f WHERE f.definition_id = ")
            .bind(definition_id.as_str())
            .sql(" AND f.trigger_index = ")
            .bind(i64::from(trigger_index))
            .sql(
                " AND f.system = w.system AND f.asset_id = w.asset_id \
                 AND f.valid_until = w.valid_until) \
                 ORDER BY w.valid_until, w.system, w.asset_id LIMIT ",
            )
            .bind(i64::from(limit));
        // Read from the writing connection: the timer reads what it just wrote.
        let rows = self
            .writer
            .query_all_raw(query.build())
            .await
            .map_err(|error| {
                db_error(
                    error,
                    format_args!(
                        "reading the due rights windows of trigger {trigger_index} of definition {definition_id}"
                    ),
                )
            })?;
        rows.iter().map(window).collect()
    }

    async fn next_rights_end_after(
        &self,
        system: Option<&str>,
        after: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        let mut query = Query::new(self.backend, 2);
        query
            .sql("SELECT MIN(valid_until) FROM rights_window WHERE valid_until > ")
            .bind(to_micros(after));
        if let Some(system) = system {
            query.sql(" AND system = ").bind(system);
        }
        let context = "reading the next rights window end";
        let found = self
            .writer
            .query_one_raw(query.build())
            .await
            .map_err(|error| db_error(error, context))?;
        let Some(row) = found else {
            return Ok(None);
        };
        let micros: Option<i64> = row
            .try_get_by_index(0)
            .map_err(|error| db_error(error, context))?;
        optional_instant(micros, "valid_until")
    }

    async fn record_rights_firing(&self, firing: &RightsFiring) -> Result<bool> {
        let mut query = Query::new(self.backend, 9);
        query
            .sql("INSERT INTO rights_firing (")
            .sql(FIRING_COLUMNS)
            .sql(") VALUES (")
            .bind(firing.definition_id.as_str())
            .sql(", ")
            .bind(i64::from(firing.trigger_index))
            .sql(", ")
            .bind(firing.system.as_str())
            .sql(", ")
            .bind(firing.asset_id.as_str())
            .sql(", ")
            .bind(to_micros(firing.valid_until))
            .sql(", ")
            .bind(firing.state.as_str())
            .sql(", ")
            .bind(firing.instance_id.as_ref().map(|id| id.as_str().to_owned()))
            .sql(", ")
            .bind(to_micros(firing.fired_at))
            .sql(", ")
            .bind(firing.fired_by.as_str())
            .sql(
                ") ON CONFLICT (definition_id, trigger_index, system, asset_id, valid_until) \
                 DO NOTHING",
            );
        let result = self
            .writer
            .execute_raw(query.build())
            .await
            .map_err(|error| {
                db_error(
                    error,
                    format_args!(
                        "recording the firing of trigger {} of definition {} for asset {} of {}",
                        firing.trigger_index, firing.definition_id, firing.asset_id, firing.system
                    ),
                )
            })?;
        Ok(result.rows_affected() == 1)
    }

    async fn rights_firings(&self, definition_id: &DefinitionId) -> Result<Vec<RightsFiring>> {
        let mut query = Query::new(self.backend, 1);
        query
            .sql("SELECT ")
            .sql(FIRING_COLUMNS)
            .sql(" FROM rights_firing WHERE definition_id = ")
            .bind(definition_id.as_str())
            .sql(" ORDER BY trigger_index, valid_until, system, asset_id");
        let rows = self
            .writer
            .query_all_raw(query.build())
            .await
            .map_err(|error| {
                db_error(
                    error,
                    format_args!("reading the rights firings of definition {definition_id}"),
                )
            })?;
        rows.iter().map(firing).collect()
    }
}
