//! Counters the engine keeps about itself, for benchmarks and `/metrics`.
//!
//! Everything here is atomics: any task updates them without a lock, and a snapshot is a
//! set of relaxed loads (a snapshot taken during an update may see one counter of it and
//! not another; monitoring tolerates that).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Upper bounds of the commit batch size histogram: instance writes per group commit.
pub const BATCH_SIZE_BOUNDS: [f64; 13] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// Upper bounds of the approval waiting time histogram, in seconds: one minute, five
/// minutes, a quarter, one hour, four hours, a working day, one day, two days, a week.
pub const APPROVAL_WAIT_BOUNDS: [f64; 9] = [
    60.0, 300.0, 900.0, 3_600.0, 14_400.0, 28_800.0, 86_400.0, 172_800.0, 604_800.0,
];

/// Live counters; cheap to update from any task.
#[derive(Debug)]
pub(crate) struct Stats {
    commits: AtomicU64,
    committed_instances: AtomicU64,
    committed_events: AtomicU64,
    snapshots_written: AtomicU64,
    snapshot_bytes: AtomicU64,
    largest_batch: AtomicU64,
    commit_micros: AtomicU64,
    cycle_micros: AtomicU64,
    actions_started: AtomicU64,
    actions_succeeded: AtomicU64,
    actions_failed: AtomicU64,
    batch_sizes: Histogram,
    approval_waits: Histogram,
    /// Events kept from starting by trigger filters, per definition.
    pub(crate) trigger_filters: crate::trigger_filter::TriggerFilterStats,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            commits: AtomicU64::default(),
            committed_instances: AtomicU64::default(),
            committed_events: AtomicU64::default(),
            snapshots_written: AtomicU64::default(),
            snapshot_bytes: AtomicU64::default(),
            largest_batch: AtomicU64::default(),
            commit_micros: AtomicU64::default(),
            cycle_micros: AtomicU64::default(),
            actions_started: AtomicU64::default(),
            actions_succeeded: AtomicU64::default(),
            actions_failed: AtomicU64::default(),
            batch_sizes: Histogram::new(&BATCH_SIZE_BOUNDS),
            approval_waits: Histogram::new(&APPROVAL_WAIT_BOUNDS),
            trigger_filters: crate::trigger_filter::TriggerFilterStats::default(),
        }
    }
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
    /// State snapshots written (an instance's whole state, written only when due).
    pub snapshots_written: u64,
    /// Bytes of those snapshots (compact JSON).
    pub snapshot_bytes: u64,
    /// The most instance writes in one commit.
    pub largest_batch: u64,
    /// Time spent inside the store's commit, in microseconds.
    pub commit_micros: u64,
    /// Time spent in driver cycles (processing and commit), in microseconds.
    pub cycle_micros: u64,
    /// Action attempts that started running.
    pub actions_started: u64,
    /// Action attempts that succeeded.
    pub actions_succeeded: u64,
    /// Action attempts that failed.
    pub actions_failed: u64,
}

/// A copy of one histogram: cumulative counts per upper bound, as Prometheus has them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistogramSnapshot {
    /// `(upper bound, observations <= bound)`, bounds ascending; the `+Inf` bucket is
    /// [`HistogramSnapshot::count`].
    pub buckets: Vec<(f64, u64)>,
    /// The sum of all observations.
    pub sum: f64,
    /// How many observations there were.
    pub count: u64,
}

/// A copy of the engine's histograms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistogramsSnapshot {
    /// Instance writes per group commit (bounds [`BATCH_SIZE_BOUNDS`]).
    pub commit_batch_size: HistogramSnapshot,
    /// Seconds from an approval's request to its decision (bounds
    /// [`APPROVAL_WAIT_BOUNDS`]).
    pub approval_wait_seconds: HistogramSnapshot,
}

/// A histogram with fixed upper bounds, updated with atomics.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last one is above every bound.
    buckets: Vec<AtomicU64>,
    /// The sum of observations, as the bits of an `f64`.
    sum_bits: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0f64.to_bits()),
            count: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: f64) {
        let index = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len());
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        // The closure always returns Some, so the update cannot fail.
        let _ = self
            .sum_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let buckets = self
            .bounds
            .iter()
            .zip(&self.buckets)
            .map(|(bound, bucket)| {
                cumulative += bucket.load(Ordering::Relaxed);
                (*bound, cumulative)
            })
            .collect();
        let above = self
            .buckets
            .last()
            .map_or(0, |bucket| bucket.load(Ordering::Relaxed));
        HistogramSnapshot {
            buckets,
            sum: f64::from_bits(self.sum_bits.load(Ordering::Relaxed)),
            // Derived from the buckets rather than `count`, so that the `+Inf` bucket is
            // never below the last finite one in a snapshot taken during an update.
            count: cumulative + above,
        }
    }
}

impl Stats {
    pub(crate) fn record_timing(&self, commit: std::time::Duration, cycle: std::time::Duration) {
        self.commit_micros
            .fetch_add(commit.as_micros() as u64, Ordering::Relaxed);
        self.cycle_micros
            .fetch_add(cycle.as_micros() as u64, Ordering::Relaxed);
    }

    /// The driver's hook after each durable group commit; it also feeds the batch size
    /// histogram, so the driver needs no metrics code of its own.
    pub(crate) fn record_commit(&self, instances: usize, events: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.committed_instances
            .fetch_add(instances as u64, Ordering::Relaxed);
        self.committed_events
            .fetch_add(events as u64, Ordering::Relaxed);
        self.largest_batch
            .fetch_max(instances as u64, Ordering::Relaxed);
        self.batch_sizes.observe(instances as f64);
    }

    /// Counts a state snapshot of `bytes` written by a durable commit.
    pub(crate) fn record_snapshot(&self, bytes: u64) {
        self.snapshots_written.fetch_add(1, Ordering::Relaxed);
        self.snapshot_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn record_action_started(&self) {
        self.actions_started.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_action(&self, succeeded: bool) {
        let counter = if succeeded {
            &self.actions_succeeded
        } else {
            &self.actions_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_approval_wait(&self, wait: Duration) {
        self.approval_waits.observe(wait.as_secs_f64());
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            commits: self.commits.load(Ordering::Relaxed),
            committed_instances: self.committed_instances.load(Ordering::Relaxed),
            committed_events: self.committed_events.load(Ordering::Relaxed),
            snapshots_written: self.snapshots_written.load(Ordering::Relaxed),
            snapshot_bytes: self.snapshot_bytes.load(Ordering::Relaxed),
            largest_batch: self.largest_batch.load(Ordering::Relaxed),
            commit_micros: self.commit_micros.load(Ordering::Relaxed),
            cycle_micros: self.cycle_micros.load(Ordering::Relaxed),
            actions_started: self.actions_started.load(Ordering::Relaxed),
            actions_succeeded: self.actions_succeeded.load(Ordering::Relaxed),
            actions_failed: self.actions_failed.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn histograms(&self) -> HistogramsSnapshot {
        HistogramsSnapshot {
            commit_batch_size: self.batch_sizes.snapshot(),
            approval_wait_seconds: self.approval_waits.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_bounds_inclusive() {
        let stats = Stats::default();
        for instances in [1, 1, 2, 3, 4096, 5000] {
            stats.record_commit(instances, 0);
        }
        let batch = stats.histograms().commit_batch_size;
        assert_eq!(batch.count, 6);
        assert_eq!(batch.sum, 1.0 + 1.0 + 2.0 + 3.0 + 4096.0 + 5000.0);
        let count_at = |bound: f64| {
            batch
                .buckets
                .iter()
                .find(|(upper, _)| *upper == bound)
                .map(|(_, count)| *count)
                .unwrap()
        };
        assert_eq!(count_at(1.0), 2);
        assert_eq!(count_at(2.0), 3);
        assert_eq!(count_at(4.0), 4);
        assert_eq!(count_at(2048.0), 4);
        assert_eq!(count_at(4096.0), 5);
        assert_eq!(stats.snapshot().largest_batch, 5000);
    }

    #[test]
    fn approval_waits_are_recorded_in_seconds() {
        let stats = Stats::default();
        stats.record_approval_wait(Duration::from_secs(30));
        stats.record_approval_wait(Duration::from_secs(2 * 3_600));
        let waits = stats.histograms().approval_wait_seconds;
        assert_eq!(waits.count, 2);
        assert_eq!(waits.sum, 7_230.0);
        assert_eq!(waits.buckets.first(), Some(&(60.0, 1)));
        assert!(waits.buckets.contains(&(3_600.0, 1)));
        assert!(waits.buckets.contains(&(14_400.0, 2)));
    }
}
