//! Inbound webhooks delivered at most once per event id (DESIGN.md §5).
//!
//! The HTTP layer authenticates a webhook and names its event id; [`Engine::deliver_webhook`]
//! claims `(source, event id)` in the store before it delivers anything, so a replayed
//! copy, or a copy that arrives while the first is being delivered, starts and signals
//! nothing. Instances it starts get ids derived from the event id, the definition and the
//! trigger (as a poller's changes do), so that a delivery interrupted by a crash and
//! taken over later by another copy finds what the first one started and does not start
//! it again; the signals it sent are found in the waiting instances' histories.
//!
//! Pollers claim the changes they deliver the same way ([`Engine::deliver_change_once`]):
//! a system that both calls back and keeps a feed (the Trading Grid hub) gives each event
//! one id on both paths, so whichever path brings it first delivers it and the other
//! finds it claimed.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use gridflow_store::EventClaim;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::events::{Delivery, EventOutcome};

/// How long seen event ids are kept. Signed webhooks older than the 5-minute tolerance
/// are refused by their timestamp anyway; this window is for the sources that send a
/// plain secret (no timestamp), whose senders retry for hours at most.
pub const EVENT_ID_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long a claim on an event id holds before another copy of the event may take the
/// delivery over (the first one crashed): longer than any delivery takes.
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(60);

/// What an inbound webhook did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WebhookOutcome {
    /// What the delivery started and signalled; empty for a duplicate.
    pub outcome: EventOutcome,
    /// The event id was delivered before: nothing was started or signalled now.
    pub duplicate: bool,
}

impl Engine {
    /// Delivers webhook event `name` (`<source>.<type>`) with id `event_id` once: as
    /// [`Engine::deliver_event`] the first time, and as a duplicate that does nothing
    /// every later time.
    ///
    /// A copy that arrives while another copy of the same event is being delivered is a
    /// [`Error::Conflict`] (the sender retries later). A delivery that fails gives its
    /// claim up, so the sender's retry delivers it again, idempotently.
    pub async fn deliver_webhook(
        &self,
        source: &str,
        event_id: &str,
        name: &str,
        event: &Value,
        actor: &str,
    ) -> Result<WebhookOutcome> {
        self.deliver_claimed(source, event_id, name, event, actor, false)
            .await
    }

    /// Delivers change `change_id` of `source`'s feed as event `name` once, under the same
    /// claim as [`Engine::deliver_webhook`] (a change that came by webhook first is a
    /// duplicate here, and the other way round), with the leniency and re-delivery checks
    /// of [`Engine::deliver_change`]. A copy being delivered by a webhook right now is a
    /// [`Error::Conflict`]: the poller stops its pass there and tries again later.
    pub async fn deliver_change_once(
        &self,
        source: &str,
        change_id: &str,
        name: &str,
        event: &Value,
        actor: &str,
    ) -> Result<WebhookOutcome> {
        self.deliver_claimed(source, change_id, name, event, actor, true)
            .await
    }

    async fn deliver_claimed(
        &self,
        source: &str,
        event_id: &str,
        name: &str,
        event: &Value,
        actor: &str,
        change: bool,
    ) -> Result<WebhookOutcome> {
        let store = &self.shared().store;
        let now = self.now();
        let stale_before = now - chrono_duration(CLAIM_TIMEOUT);
        let again = match store
            .claim_webhook_event(source, event_id, now, stale_before)
            .await?
        {
            EventClaim::New => {
                let pruned = store
                    .prune_webhook_events(now - chrono_duration(EVENT_ID_RETENTION))
                    .await?;
                if pruned > 0 {
                    tracing::debug!(pruned, "forgot webhook event ids past their retention");
                }
                // A change may have been delivered by a poller before its claim was kept
                // (or after the claim was forgotten): checked again all the same.
                change
            }
            EventClaim::Reclaimed => {
                tracing::info!(%source, event_id, "webhook event claimed before and not delivered; delivering it again");
                true
            }
            EventClaim::InFlight => {
                return Err(Error::Conflict(format!(
                    "webhook event {event_id:?} of {source} is being delivered; retry later"
                )));
            }
            EventClaim::Delivered => {
                tracing::info!(%source, event_id, "webhook event delivered before; ignored");
                return Ok(WebhookOutcome {
                    outcome: EventOutcome::default(),
                    duplicate: true,
                });
            }
        };
        let delivery = Delivery {
            id: Some(event_id),
            again,
            lenient: change,
        };
        match self.deliver(name, event, actor, delivery).await {
            Ok(outcome) => {
                store
                    .complete_webhook_event(source, event_id, self.now())
                    .await?;
                Ok(WebhookOutcome {
                    outcome,
                    duplicate: false,
                })
            }
            Err(error) => {
                if let Err(release) = store.release_webhook_event(source, event_id).await {
                    tracing::warn!(%source, event_id, error = %release, "cannot release the claim of a failed webhook delivery; it is taken over once it is stale");
                }
                Err(error)
            }
        }
    }
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}
