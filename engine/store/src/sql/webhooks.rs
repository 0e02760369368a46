//! [`WebhookStore`] on SQL: table `webhook_event`, one row per `(source, event_id)`.
//!
//! The claim is `INSERT … ON CONFLICT DO NOTHING` (atomic on both backends); a stale
//! claim is taken over with a compare-and-set on `claimed_at`, so two nodes cannot both
//! reclaim it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use super::SqlStore;
use super::error::db_error;
use super::query::Query;
use crate::Result;
use crate::rules::to_micros;
use crate::webhooks::{EventClaim, WebhookStore};

/// `claimed_at` of a released claim: older than any `stale_before`.
const RELEASED: i64 = i64::MIN;

#[async_trait]
impl WebhookStore for SqlStore {
    async fn claim_webhook_event(
        &self,
        source: &str,
        event_id: &str,
        at: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<EventClaim> {
        let context = format!("claiming webhook event {event_id:?} of {source}");
        let at = to_micros(at);
        let mut insert = Query::new(self.backend, 4);
        insert
            .sql("INSERT INTO webhook_event (source, event_id, received_at, claimed_at) VALUES (")
            .bind(source)
            .sql(", ")
            .bind(event_id)
            .sql(", ")
            .bind(at)
            .sql(", ")
            .bind(at)
            .sql(") ON CONFLICT (source, event_id) DO NOTHING");
        let inserted = self
            .writer
            .execute_raw(insert.build())
            .await
            .map_err(|error| db_error(error, &context))?;
        if inserted.rows_affected() == 1 {
            return Ok(EventClaim::New);
        }
        let mut select = Query::new(self.backend, 2);
        select
            .sql("SELECT claimed_at, delivered_at FROM webhook_event WHERE source = ")
            .bind(source)
            .sql(" AND event_id = ")
            .bind(event_id);
        let Some(row) = self
            .writer
            .query_one_raw(select.build())
            .await
            .map_err(|error| db_error(error, &context))?
        else {
            // Pruned between the two statements: it was delivered long ago.
            return Ok(EventClaim::Delivered);
        };
        let claimed_at: i64 = row
            .try_get_by_index(0)
            .map_err(|error| db_error(error, &context))?;
        let delivered_at: Option<i64> = row
            .try_get_by_index(1)
            .map_err(|error| db_error(error, &context))?;
        if delivered_at.is_some() {
            return Ok(EventClaim::Delivered);
        }
        if claimed_at >= to_micros(stale_before) {
            return Ok(EventClaim::InFlight);
        }
        let mut take = Query::new(self.backend, 4);
        take.sql("UPDATE webhook_event SET claimed_at = ")
            .bind(at)
            .sql(" WHERE source = ")
            .bind(source)
            .sql(" AND event_id = ")
            .bind(event_id)
            .sql(" AND delivered_at IS NULL AND claimed_at = ")
            .bind(claimed_at);
        let taken = self
            .writer
            .execute_raw(take.build())
            .await
            .map_err(|error| db_error(error, &context))?;
        Ok(if taken.rows_affected() == 1 {
            EventClaim::Reclaimed
        } else {
            EventClaim::InFlight
        })
    }

    async fn complete_webhook_event(
        &self,
        source: &str,
        event_id: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let context = format!("marking webhook event {event_id:?} of {source} delivered");
        let mut query = Query::new(self.backend, 3);
        query
            .sql("UPDATE webhook_event SET delivered_at = ")
            .bind(to_micros(at))
            .sql(" WHERE source = ")
            .bind(source)
            .sql(" AND event_id = ")
            .bind(event_id);
        self.writer
            .execute_raw(query.build())
            .await
            .map_err(|error| db_error(error, &context))?;
        Ok(())
    }

    async fn release_webhook_event(&self, source: &str, event_id: &str) -> Result<()> {
        let context = format!("releasing webhook event {event_id:?} of {source}");
        let mut query = Query::new(self.backend, 3);
        query
            .sql("UPDATE webhook_event SET claimed_at = ")
            .bind(RELEASED)
            .sql(" WHERE source = ")
            .bind(source)
            .sql(" AND event_id = ")
            .bind(event_id)
            .sql(" AND delivered_at IS NULL");
        self.writer
            .execute_raw(query.build())
            .await
            .map_err(|error| db_error(error, &context))?;
        Ok(())
    }

    async fn prune_webhook_events(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut query = Query::new(self.backend, 1);
        query
            .sql("DELETE FROM webhook_event WHERE received_at < ")
            .bind(to_micros(before));
        let result = self
            .writer
            .execute_raw(query.build())
            .await
            .map_err(|error| db_error(error, "pruning webhook events"))?;
        Ok(result.rows_affected())
    }
}
