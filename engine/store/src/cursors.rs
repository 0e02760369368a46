//! [`CursorStore`]: the durable position of each change poller.
//!
//! A poller reads a system's changes after its cursor, delivers them, and saves the
//! cursor after each delivered change, so a restart resumes after the last change
//! delivered. The cursor is the system's own position, opaque here.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::Result;

/// Saved poller cursors, one per polled system (`otmm`, `trading_grid`).
#[async_trait]
pub trait CursorStore: Send + Sync {
    /// The cursor saved for `source`, if any.
    async fn load_cursor(&self, source: &str) -> Result<Option<String>>;

    /// Saves `cursor` as the position of `source`, replacing the one before.
    async fn save_cursor(&self, source: &str, cursor: &str, at: DateTime<Utc>) -> Result<()>;
}
