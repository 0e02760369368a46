//! [`WebhookStore`]: the webhook event ids already seen, so that each is delivered once.
//!
//! `POST /events/{source}` claims `(source, event id)` before it delivers the event and
//! marks it delivered afterwards. The claim is one atomic insert, so two concurrent
//! copies of one webhook cannot both deliver it. A claim that was never marked delivered
//! (the node crashed, or the delivery failed) can be taken again once it is older than
//! the caller's `stale_before`; the caller then delivers idempotently (instance ids
//! derived from the event id, signals not repeated to an instance that has them).
//! Rows older than a retention window are pruned by [`WebhookStore::prune_webhook_events`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::Result;

/// What [`WebhookStore::claim_webhook_event`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventClaim {
    /// The event id was never seen: the caller delivers the event, then marks it delivered.
    New,
    /// The event id was claimed before and never marked delivered, by a claim older than
    /// `stale_before` (a crash or a failed delivery): the caller delivers it again,
    /// idempotently.
    Reclaimed,
    /// Another delivery holds a recent claim on the event id.
    InFlight,
    /// The event was delivered already.
    Delivered,
}

/// Seen webhook event ids, by source.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Claims `(source, event_id)` at `at`: [`EventClaim::New`] when it was never seen,
    /// [`EventClaim::Reclaimed`] when an undelivered claim older than `stale_before` was
    /// taken over, else what holds it.
    async fn claim_webhook_event(
        &self,
        source: &str,
        event_id: &str,
        at: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<EventClaim>;

    /// Marks a claimed event delivered at `at`: every later claim finds it
    /// [`EventClaim::Delivered`].
    async fn complete_webhook_event(
        &self,
        source: &str,
        event_id: &str,
        at: DateTime<Utc>,
    ) -> Result<()>;

    /// Gives up a claim whose delivery failed, so that the next copy of the event reclaims
    /// it at once (and delivers it idempotently); a delivered event stays delivered.
    async fn release_webhook_event(&self, source: &str, event_id: &str) -> Result<()>;

    /// Forgets the events first received before `before`; returns how many.
    async fn prune_webhook_events(&self, before: DateTime<Utc>) -> Result<u64>;
}
