//! Counters the engine keeps about itself, for benchmarks and `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Live counters; cheap to update from any task.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    commits: AtomicU64,
    committed_instances: AtomicU64,
    committed_events: AtomicU64,
    largest_batch: AtomicU64,
    commit_micros: AtomicU64,
    cycle_micros: AtomicU64,
    actions_succeeded: AtomicU64,
    actions_failed: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Group commits made.
    pub commits: u64,
    /// Instance writes in all commits.
    pub committed_instances: u64,
    /// History events in all commits.
    pub committed_events: u64,
    /// The most instance writes in one commit.
    pub largest_batch: u64,
    /// Time spent inside the store's commit, in microseconds.
    pub commit_micros: u64,
    /// Time spent in driver cycles (processing and commit), in microseconds.
    pub cycle_micros: u64,
    /// Action attempts that succeeded.
    pub actions_succeeded: u64,
    /// Action attempts that failed.
    pub actions_failed: u64,
}

impl Stats {
    pub(crate) fn record_timing(&self, commit: std::time::Duration, cycle: std::time::Duration) {
        self.commit_micros
            .fetch_add(commit.as_micros() as u64, Ordering::Relaxed);
        self.cycle_micros
            .fetch_add(cycle.as_micros() as u64, Ordering::Relaxed);
    }

    pub(crate) fn record_commit(&self, instances: usize, events: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.committed_instances
            .fetch_add(instances as u64, Ordering::Relaxed);
        self.committed_events
            .fetch_add(events as u64, Ordering::Relaxed);
        self.largest_batch
            .fetch_max(instances as u64, Ordering::Relaxed);
    }

    pub(crate) fn record_action(&self, succeeded: bool) {
        let counter = if succeeded {
            &self.actions_succeeded
        } else {
            &self.actions_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            commits: self.commits.load(Ordering::Relaxed),
            committed_instances: self.committed_instances.load(Ordering::Relaxed),
            committed_events: self.committed_events.load(Ordering::Relaxed),
            largest_batch: self.largest_batch.load(Ordering::Relaxed),
            commit_micros: self.commit_micros.load(Ordering::Relaxed),
            cycle_micros: self.cycle_micros.load(Ordering::Relaxed),
            actions_succeeded: self.actions_succeeded.load(Ordering::Relaxed),
            actions_failed: self.actions_failed.load(Ordering::Relaxed),
        }
    }
}
