//! The engine's identity and monitoring calls: API tokens, counts and histograms for
//! `/metrics`. They pass through to the store and the counters; the API decides what a
//! token means.

use std::time::Duration;

use chrono::{DateTime, Utc};

use gridflow_core::InstanceStatus;
use gridflow_store::TokenRecord;

use crate::engine::Engine;
use crate::error::Result;
use crate::stats::HistogramsSnapshot;

impl Engine {
    /// Stores a new API token (its hash, never its text).
    pub async fn create_token(&self, token: &TokenRecord) -> Result<()> {
        Ok(self.shared.store.create_token(token).await?)
    }

    /// The stored token whose text hashes to `hash`, if any.
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        Ok(self.shared.store.token_by_hash(hash).await?)
    }

    /// How many instances have each status (statuses without instances left out).
    pub async fn instance_counts(&self) -> Result<Vec<(InstanceStatus, u64)>> {
        Ok(self.shared.store.instance_counts().await?)
    }

    /// How many work items are queued: dispatched actions not yet reported back.
    pub async fn queued_work_count(&self) -> Result<u64> {
        Ok(self.shared.store.queued_work_count().await?)
    }

    /// The engine's histograms (commit batch sizes, approval waiting times).
    pub fn histograms(&self) -> HistogramsSnapshot {
        self.shared.stats.histograms()
    }

    /// Records how long an approval waited between its request and its decision, for the
    /// `gridflow_approval_wait_seconds` histogram.
    pub fn record_approval_wait(&self, wait: Duration) {
        self.shared.stats.record_approval_wait(wait);
    }

    /// The engine clock's current time (the server's clock, or a test's manual one).
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.clock.now()
    }
}
