//! One group commit and what waits for it: replies, dispatches, finished announcements.
//!
//! A batch is acknowledged only when the store says it is durable. Any error fails every
//! caller of the batch with `Unavailable` (the API answers 503 with `Retry-After`), and
//! the driver drops what it had built on it (see `Driver::finish_in_flight`).
//!
//! An error on `COMMIT` itself (a PostgreSQL connection killed at that moment) leaves the
//! outcome unknown: the batch may have landed. Its callers are still told it failed (a
//! client retry is the idempotency key's business), but its queued actions must not be
//! forgotten if it did land, or its instances would wait forever: [`recheck_outbox`]
//! dispatches those of its work items that turn out to be stored.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gridflow_core::command::Dispatch;
use gridflow_core::machine::Input;
use gridflow_core::{InstanceId, InstanceStatus};
use gridflow_store::Batch;

use crate::children::Queued;
use crate::error::Error;
use crate::message::Reply;
use crate::shared::Shared;

/// How long a batch is retried (on a fresh connection: the store closes one whose state
/// is unknown) before its callers are told it failed. Short: a caller must get its 503
/// within a couple of seconds while the database is away.
const RETRY_BUDGET: Duration = Duration::from_millis(400);

/// One batch and everything that waits for it to be durable.
pub(super) struct CommitJob {
    pub(super) batch: Batch,
    pub(super) replies: Vec<Reply>,
    pub(super) dispatches: Vec<(InstanceId, Dispatch)>,
    /// Children to start or cancel (`crate::children`).
    pub(super) child_work: Vec<(InstanceId, Queued)>,
    /// Parents to tell that a child ended.
    pub(super) notices: Vec<(InstanceId, Input)>,
    pub(super) finished: Vec<(InstanceId, InstanceStatus)>,
    /// Sizes of the state snapshots in `batch`, for the counters once it is durable.
    pub(super) snapshot_bytes: Vec<u64>,
}

impl CommitJob {
    /// Commits, then answers callers, starts the dispatched actions and announces
    /// finished instances; on failure, answers callers with the error.
    pub(super) async fn run(self, shared: Arc<Shared>) -> std::result::Result<Duration, String> {
        let started = Instant::now();
        let outcome = if self.batch.is_empty() {
            Ok(())
        } else if !shared.availability.reachable() {
            // Known to be down: fail at once rather than wait for a connection.
            Err(gridflow_store::Error::Unavailable {
                message: "the database is unreachable".to_owned(),
                source: None,
            })
        } else {
            commit_with_retry(&shared, &self.batch).await
        };
        let commit_time = started.elapsed();
        match outcome {
            Ok(()) => {
                if !self.batch.rights.is_empty() {
                    shared.rights.wake();
                }
                let events = self
                    .batch
                    .instances
                    .iter()
                    .map(|write| write.events.len())
                    .sum();
                shared
                    .stats
                    .record_commit(self.batch.instances.len(), events);
                for bytes in self.snapshot_bytes {
                    shared.stats.record_snapshot(bytes);
                }
                for reply in self.replies {
                    let _ = reply.send(Ok(()));
                }
                for (instance, dispatch) in self.dispatches {
                    crate::executor::spawn(shared.clone(), instance, dispatch);
                }
                for (instance, queued) in self.child_work {
                    queued.spawn(shared.clone(), instance);
                }
                for (instance, input) in self.notices {
                    shared.send(crate::message::Message::Input {
                        instance,
                        input,
                        reply: None,
                    });
                }
                for (instance, status) in self.finished {
                    let _ = shared.finished.send((instance, status));
                }
                Ok(commit_time)
            }
            Err(error) => {
                shared.availability.suspect();
                for reply in self.replies {
                    let _ = reply.send(Err(Error::Unavailable(format!(
                        "the commit was not durable: {error}"
                    ))));
                }
                if !self.dispatches.is_empty() || !self.child_work.is_empty() {
                    tokio::spawn(recheck_outbox(shared, self.dispatches, self.child_work));
                }
                Err(error.to_string())
            }
        }
    }
}

/// Commits a batch, retrying for a short while when the database is unavailable
/// (infrastructure retry, invisible in history).
async fn commit_with_retry(
    shared: &Shared,
    batch: &Batch,
) -> std::result::Result<(), gridflow_store::Error> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(25);
    let mut attempt = 1;
    loop {
        match shared.store.commit(batch).await {
            Ok(()) => return Ok(()),
            Err(gridflow_store::Error::Unavailable { message, .. })
                if started.elapsed() + delay < RETRY_BUDGET =>
            {
                tracing::warn!(attempt, %message, "database unavailable; retrying the commit");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

/// After a failed commit: once the store answers again, dispatches those of the batch's
/// actions whose work items are stored after all (the commit landed although it reported
/// an error). When the batch did not land, none are stored and nothing runs.
///
/// The check runs before the driver feeds the batch's inputs again (it waits a moment
/// first, see `Driver::reset_after_failure`), so an action is not normally started twice;
/// if it is, both attempts carry the same idempotency key and the second outcome finds
/// the attempt already settled and records nothing.
async fn recheck_outbox(
    shared: Arc<Shared>,
    dispatches: Vec<(InstanceId, Dispatch)>,
    child_work: Vec<(InstanceId, Queued)>,
) {
    let mut delay = Duration::from_millis(100);
    let queued = loop {
        match shared.store.queued_work().await {
            Ok(queued) => break queued,
            Err(error) => {
                tracing::debug!(%error, "cannot read the outbox after a failed commit; trying again");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    };
    let stored: HashSet<String> = queued.into_iter().map(|work| work.id).collect();
    let mut landed = 0;
    for (instance, dispatch) in dispatches {
        if stored.contains(&dispatch.idempotency_key) {
            landed += 1;
            crate::executor::spawn(shared.clone(), instance, dispatch);
        }
    }
    for (instance, queued) in child_work {
        if stored.contains(&queued.id()) {
            landed += 1;
            queued.spawn(shared.clone(), instance);
        }
    }
    if landed > 0 {
        tracing::warn!(
            landed,
            "a commit reported as failed had landed; its queued actions are dispatched"
        );
    }
}
