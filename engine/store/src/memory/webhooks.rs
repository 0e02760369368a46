//! [`WebhookStore`] in memory, with the SQL store's semantics.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryStore;
use crate::Result;
use crate::rules::stored_instant;
use crate::webhooks::{EventClaim, WebhookStore};

/// A seen event: when it was first received, when it was last claimed (`None` once
/// released), and when it was delivered.
#[derive(Debug, Clone)]
pub(super) struct SeenEvent {
    received_at: DateTime<Utc>,
    claimed_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
}

#[async_trait]
impl WebhookStore for MemoryStore {
    async fn claim_webhook_event(
        &self,
        source: &str,
        event_id: &str,
        at: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<EventClaim> {
        let at = stored_instant(at);
        let mut inner = self.lock();
        let key = (source.to_owned(), event_id.to_owned());
        let Some(seen) = inner.webhook_events.get_mut(&key) else {
            inner.webhook_events.insert(
                key,
                SeenEvent {
                    received_at: at,
                    claimed_at: Some(at),
                    delivered_at: None,
                },
            );
            return Ok(EventClaim::New);
        };
        if seen.delivered_at.is_some() {
            return Ok(EventClaim::Delivered);
        }
        match seen.claimed_at {
            Some(claimed_at) if claimed_at >= stored_instant(stale_before) => {
                Ok(EventClaim::InFlight)
            }
            _ => {
                seen.claimed_at = Some(at);
                Ok(EventClaim::Reclaimed)
            }
        }
    }

    async fn complete_webhook_event(
        &self,
        source: &str,
        event_id: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let key = (source.to_owned(), event_id.to_owned());
        if let Some(seen) = self.lock().webhook_events.get_mut(&key) {
            seen.delivered_at = Some(stored_instant(at));
        }
        Ok(())
    }

    async fn release_webhook_event(&self, source: &str, event_id: &str) -> Result<()> {
        let key = (source.to_owned(), event_id.to_owned());
        if let Some(seen) = self.lock().webhook_events.get_mut(&key)
            && seen.delivered_at.is_none()
        {
            seen.claimed_at = None;
        }
        Ok(())
    }

    async fn prune_webhook_events(&self, before: DateTime<Utc>) -> Result<u64> {
        let before = stored_instant(before);
        let mut inner = self.lock();
        let count = inner.webhook_events.len();
        inner
            .webhook_events
            .retain(|_, seen| seen.received_at >= before);
        Ok(u64::try_from(count - inner.webhook_events.len()).unwrap_or(u64::MAX))
    }
}
