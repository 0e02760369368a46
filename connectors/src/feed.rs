//! Change feeds: how a system without webhooks (OTMM, Trading Grid) tells gridflow what
//! changed. A poller in the runtime reads a feed after its saved cursor and delivers each
//! change as the event `<source>.<kind>`, with the semantics of `POST /events/{source}`
//! (start instances, signal waiting ones).
//!
//! A feed is pure reading: it never changes the system, and the cursor it returns is an
//! opaque string the poller saves and hands back. Each change carries a stable id (the
//! same change read twice has the same id), which the runtime uses to deliver it once
//! even when it is read again after a crash.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::Result;

/// One change read from a system.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedChange {
    /// Stable and unique within the source (`<asset id>@<instant>`, `evt-000017`).
    pub id: String,
    /// The event type without the source (`asset_changed`); delivered as
    /// `<source>.<kind>`.
    pub kind: String,
    /// The event body.
    pub data: Value,
    /// Where to resume once this change has been delivered.
    pub cursor: String,
}

/// What one read of a feed returned.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedPage {
    /// Changes after the cursor, oldest first.
    pub changes: Vec<FeedChange>,
    /// Where to resume after all of them (also when there are none: a first read
    /// returns no change and the position of now).
    pub cursor: String,
    /// Whether more changes are waiting right away.
    pub more: bool,
}

/// A system's changes, read after a cursor.
#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// The source name, prefix of the event names (`otmm`).
    fn source(&self) -> &str;

    /// How often to read (from `gridflow.toml`).
    fn poll_interval(&self) -> Duration;

    /// Changes after `cursor`, at most `limit`, oldest first. Without a cursor (the very
    /// first read) it returns no change and the position of now: a new poller reports
    /// what changes from then on, not the system's whole past.
    async fn changes(&self, cursor: Option<&str>, limit: usize) -> Result<FeedPage>;
}

/// A connector that is also a change feed hands it out through
/// [`Connector::change_feed`](crate::Connector::change_feed).
pub type SharedFeed = Arc<dyn ChangeFeed>;
