//! [`TriggerStore`] on SQL. Each operation is one statement, so it is atomic on both
//! backends without a transaction: a tick claim is `INSERT … ON CONFLICT DO NOTHING`, a
//! lease is taken with `INSERT … ON CONFLICT DO UPDATE … WHERE` (an upsert whose update
//! only happens when the lease is free, expired or already ours); the affected row count
//! says whether it worked. SQLite (3.24 and later) and PostgreSQL accept the same text.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, QueryResult};

use gridflow_core::{DefinitionId, InstanceId};

use super::SqlStore;
use super::error::{corrupt, db_error};
use super::query::Query;
use crate::rules::{from_micros, to_micros};
use crate::triggers::{TickRecord, TickState, TriggerStore};
use crate::{Error, Result};

const TICK_COLUMNS: &str =
    "definition_id, trigger_index, tick_at, state, instance_id, claimed_by, claimed_at";

fn instant(micros: i64, column: &str) -> Result<DateTime<Utc>> {
    from_micros(micros).ok_or_else(|| {
        corrupt(
            "trigger_tick",
            format_args!("{column} {micros} is not an instant in microseconds"),
        )
    })
}

fn tick(row: &QueryResult) -> Result<TickRecord> {
    let context = "reading a trigger tick";
    let get_text = |index: usize| -> Result<String> {
        row.try_get_by_index(index)
            .map_err(|error| db_error(error, context))
    };
    let get_int = |index: usize| -> Result<i64> {
        row.try_get_by_index(index)
            .map_err(|error| db_error(error, context))
    };
    let instance_id: Option<String> = row
        .try_get_by_index(4)
        .map_err(|error| db_error(error, context))?;
    let trigger_index = get_int(1)?;
    Ok(TickRecord {
        definition_id: DefinitionId::from(get_text(0)?),
        trigger_index: u32::try_from(trigger_index).map_err(|_| {
            corrupt(
                "trigger_tick",
                format_args!("trigger_index {trigger_index} is out of range"),
            )
        })?,
        tick_at: instant(get_int(2)?, "tick_at")?,
        state: TickState::parse(&get_text(3)?)?,
        instance_id: instance_id.map(InstanceId::from),
        claimed_by: get_text(5)?,
        claimed_at: instant(get_int(6)?, "claimed_at")?,
    })
}

#[async_trait]
impl TriggerStore for SqlStore {
    async fn claim_tick(&self, tick: &TickRecord) -> Result<bool> {
        let mut query = Query::new(self.backend, 7);
        query
            .sql("INSERT INTO trigger_tick (")
            .sql(TICK_COLUMNS)
            .sql(") VALUES (")
            .bind(tick.definition_id.as_str())
            .sql(", ")
            .bind(i64::from(tick.trigger_index))
            .sql(", ")
            .bind(to_micros(tick.tick_at))
            .sql(", ")
            .bind(tick.state.as_str())
            .sql(", ")
            .bind(tick.instance_id.as_ref().map(|id| id.as_str().to_owned()))
            .sql(", ")
            .bind(tick.claimed_by.as_str())
            .sql(", ")
            .bind(to_micros(tick.claimed_at))
            .sql(") ON CONFLICT (definition_id, trigger_index, tick_at) DO NOTHING");
        let result = self
            .writer
            .execute_raw(query.build())
            .await
            .map_err(|error| {
                db_error(
                    error,
                    format_args!(
                        "claiming tick {} of trigger {} of definition {}",
                        tick.tick_at, tick.trigger_index, tick.definition_id
                    ),
                )
            })?;
        Ok(result.rows_affected() == 1)
    }

    async fn update_tick(
        &self,
        definition_id: &DefinitionId,
        trigger_index: u32,
        tick_at: DateTime<Utc>,
        from: TickState,
        to: TickState,
        instance_id: Option<&InstanceId>,
    ) -> Result<bool> {
        let context = format!(
            "updating tick {tick_at} of trigger {trigger_index} of definition {definition_id}"
        );
        let mut query = Query::new(self.backend, 6);
        query
            .sql("UPDATE trigger_tick SET state = ")
            .bind(to.as_str())
            .sql(", instance_id = ")
            .bind(instance_id.map(|id| id.as_str().to_owned()))
            .sql(" WHERE definition_id = ")
            .bind(definition_id.as_str())
            .sql(" AND trigger_index = ")
            .bind(i64::from(trigger_index))
            .sql(" AND tick_at = ")
            .bind(to_micros(tick_at))
            .sql(" AND state = ")
            .bind(from.as_str());
        let result = self
            .writer
            .execute_raw(query.build())
            .await
            .map_err(|error| db_error(error, &context))?;
        if result.rows_affected() == 1 {
            return Ok(true);
        }
        let mut exists = Query::new(self.backend, 3);
        exists
            .sql("SELECT 1 FROM trigger_tick WHERE definition_id = ")
            .bind(definition_id.as_str())
            .sql(" AND trigger_index = ")
            .bind(i64::from(trigger_index))
            .sql(" AND tick_at = ")
            .bind(to_micros(tick_at));
        let found = self
            .writer
            .query_one_raw(exists.build())
            .await
            .map_err(|error| db_error(error, &context))?;
        match found {
            Some(_) => Ok(false),
            None => Err(Error::NotFound(format!(
                "tick {tick_at} of trigger {trigger_index} of definition {definition_id}"
            ))),
        }
    }

    async fn last_tick(
        &self,
        definition_id: &DefinitionId,
        trigger_index: u32,
        state: Option<TickState>,
    ) -> Result<Option<TickRecord>> {
        let mut query = Query::new(self.backend, 3);
        query
            .sql("SELECT ")
            .sql(TICK_COLUMNS)
            .sql(" FROM trigger_tick WHERE definition_id = ")
            .bind(definition_id.as_str())
            .sql(" AND trigger_index = ")
            .bind(i64::from(trigger_index));
        if let Some(state) = state {
            query.sql(" AND state = ").bind(state.as_str());
        }
        query.sql(" ORDER BY tick_at DESC LIMIT 1");
        // Read from the writing connection: the scheduler reads what it just wrote.
        let found = self
            .writer
            .query_one_raw(query.build())
            .await
            .map_err(|error| {
                db_error(
                    error,
                    format_args!(
                        "reading the last tick of trigger {trigger_index} of definition {definition_id}"
                    ),
                )
            })?;
        found.as_ref().map(tick).transpose()
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool> {
        let mut query = Query::new(self.backend, 4);
        query
            .sql("INSERT INTO lease (name, holder, expires_at) VALUES (")
            .bind(name)
            .sql(", ")
            .bind(holder)
            .sql(", ")
            .bind(to_micros(expires_at))
            .sql(
                ") ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                 expires_at = excluded.expires_at \
                 WHERE lease.holder = excluded.holder OR lease.expires_at <= ",
            )
            .bind(to_micros(now));
        let result = self
            .writer
            .execute_raw(query.build())
            .await
            .map_err(|error| db_error(error, format_args!("acquiring lease {name:?}")))?;
        Ok(result.rows_affected() == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let mut query = Query::new(self.backend, 2);
        query
            .sql("DELETE FROM lease WHERE name = ")
            .bind(name)
            .sql(" AND holder = ")
            .bind(holder);
        self.writer
            .execute_raw(query.build())
            .await
            .map(|_| ())
            .map_err(|error| db_error(error, format_args!("releasing lease {name:?}")))
    }

    async fn lease_holder(&self, name: &str, now: DateTime<Utc>) -> Result<Option<String>> {
        let mut query = Query::new(self.backend, 2);
        query
            .sql("SELECT holder FROM lease WHERE name = ")
            .bind(name)
            .sql(" AND expires_at > ")
            .bind(to_micros(now));
        let found = self
            .writer
            .query_one_raw(query.build())
            .await
            .map_err(|error| db_error(error, format_args!("reading lease {name:?}")))?;
        found
            .map(|row| {
                row.try_get_by_index::<String>(0)
                    .map_err(|error| db_error(error, format_args!("reading lease {name:?}")))
            })
            .transpose()
    }
}
