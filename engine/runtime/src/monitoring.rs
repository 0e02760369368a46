//! The engine's monitoring calls: whether the database answers, counts, counters and
//! histograms for `/healthz` and `/metrics`. They pass through to the availability gate,
//! the store and the counters.

use std::time::Duration;

use gridflow_core::InstanceStatus;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::stats::{HistogramsSnapshot, StatsSnapshot};

/// How long [`Engine::health`] waits for the database before it answers "unavailable".
const HEALTH_TIMEOUT: Duration = Duration::from_millis(700);

impl Engine {
    /// Whether the database answered the last check (a few times a second).
    pub fn database_reachable(&self) -> bool {
        self.shared.availability.reachable()
    }

    /// Succeeds when the database answers, within a second; fails at once while the
    /// database is known to be unreachable.
    pub async fn health(&self) -> Result<()> {
        if !self.database_reachable() {
            return Err(Error::Unavailable("the database is unreachable".to_owned()));
        }
        tokio::select! {
            answer = tokio::time::timeout(HEALTH_TIMEOUT, self.shared.store.health()) => match answer {
                Ok(answer) => Ok(answer?),
                Err(_elapsed) => Err(Error::Unavailable(format!(
                    "the database did not answer within {HEALTH_TIMEOUT:?}"
                ))),
            },
            () = self.shared.availability.unreachable() => {
                Err(Error::Unavailable("the database is unreachable".to_owned()))
            }
        }
    }

    /// How many instances have each status (statuses without instances left out).
    pub async fn instance_counts(&self) -> Result<Vec<(InstanceStatus, u64)>> {
        Ok(self.shared.store.instance_counts().await?)
    }

    /// How many work items are queued: dispatched actions not yet reported back.
    pub async fn queued_work_count(&self) -> Result<u64> {
        Ok(self.shared.store.queued_work_count().await?)
    }

    /// The engine's counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// The engine's histograms (commit batch sizes, approval waiting times).
    pub fn histograms(&self) -> HistogramsSnapshot {
        self.shared.stats.histograms()
    }

    /// Per definition, how many events its trigger filters (`when`) kept from starting
    /// it: false, or failed.
    pub fn trigger_filter_counts(&self) -> Vec<crate::TriggerFilterCounts> {
        self.shared.stats.trigger_filters.snapshot()
    }

    /// Records how long an approval waited between its request and its decision, for the
    /// `gridflow_approval_wait_seconds` histogram.
    pub fn record_approval_wait(&self, wait: Duration) {
        self.shared.stats.record_approval_wait(wait);
    }
}
