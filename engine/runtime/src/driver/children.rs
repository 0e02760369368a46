//! The driver's part in child instances (see `crate::children`): queueing a child's start
//! or cancel in the outbox, starting a child and recording `child_started` in its parent
//! in one commit, and noting which parent to tell when a child ends.

use chrono::{DateTime, Utc};
use serde_json::Value;

use gridflow_core::command::{ChildStart, Command};
use gridflow_core::event::SYSTEM_ACTOR;
use gridflow_core::history::GENESIS_HASH;
use gridflow_core::limits::Limits;
use gridflow_core::machine::{Effects, Input, InputBody, awaits_child};
use gridflow_core::{InstanceId, InstanceState, ParentRef, Phase};
use gridflow_store::{ChildLink, WorkItem};

use super::{Cached, Cycle, Driver};
use crate::children::{Queued, Resolved, cancel_work_id, spawn_start};
use crate::error::Error;
use crate::snapshot::Snapshots;

/// The parent to tell, after the commit, that the instance whose transition made
/// `effects` ended.
pub(super) fn notice(
    effects: &Effects,
    state: &InstanceState,
    limits: &Limits,
) -> Option<(InstanceId, Input)> {
    let finished = effects
        .commands
        .iter()
        .any(|command| matches!(command, Command::Finish { .. }));
    if finished {
        crate::children::notice(state, limits)
    } else {
        None
    }
}

/// Queues a child's start or cancel in the batch's outbox rows, to run after the commit.
pub(super) fn queue(instance: &InstanceId, command: Command, at: DateTime<Utc>, cycle: &mut Cycle) {
    let payload = serde_json::to_value(&command).unwrap_or(Value::Null);
    let (id, queued) = match command {
        Command::StartChild(start) => (start.idempotency_key.clone(), Queued::StartChild(start)),
        Command::CancelChild { work, child } => {
            (cancel_work_id(&child), Queued::CancelChild { work, child })
        }
        Command::Dispatch(_)
        | Command::AbandonWork { .. }
        | Command::StartTimer { .. }
        | Command::CancelTimer { .. }
        | Command::Finish { .. } => return,
    };
    cycle.batch.work_added.push(WorkItem {
        id,
        instance_id: instance.clone(),
        payload,
        created_at: at,
    });
    cycle.child_work.push((instance.clone(), queued));
}

impl Driver {
    /// Starts the child of `start`'s unit of `parent` while the parent awaits it, or, when
    /// the child exists already (a start executed again after a crash), tells the parent
    /// that it started and, if it ended, how.
    pub(super) async fn start_child(
        &mut self,
        parent: InstanceId,
        start: ChildStart,
        resolved: Option<Resolved>,
        cycle: &mut Cycle,
    ) {
        if let Err(error) = self.load(&parent).await {
            tracing::warn!(instance_id = %parent, %error, "parent of a child start cannot be read; trying again");
            return spawn_later(&self.shared, parent, start);
        }
        let awaited = self
            .cache
            .get(&parent)
            .is_some_and(|cached| awaits_child(&cached.state, &start.work));
        if !awaited {
            tracing::debug!(instance_id = %parent, child = %start.child, "child start no longer awaited");
            return;
        }
        let at = self.shared.clock.now();
        match self.load(&start.child).await {
            Ok(()) => return self.found_child(parent, &start, at, cycle).await,
            Err(Error::NotFound(_)) => {}
            Err(error) => {
                tracing::warn!(instance_id = %parent, child = %start.child, %error, "child cannot be read; trying again");
                return spawn_later(&self.shared, parent, start);
            }
        }
        let Some(resolved) = resolved else {
            // The runner found the child stored, yet it is gone: resolve it again.
            return spawn_later(&self.shared, parent, start);
        };
        self.cache.insert(
            start.child.clone(),
            Cached {
                state: InstanceState::new(start.child.clone(), resolved.definition.id.clone(), at),
                definition: resolved.definition.clone(),
                row_version: 0,
                last_seq: 0,
                last_hash: GENESIS_HASH.to_owned(),
                snapshots: Snapshots::default(),
                waits: Vec::new(),
            },
        );
        let link = ParentRef {
            instance_id: parent.clone(),
            step: start.work.step.clone(),
            item: start.work.item,
            attempt: start.work.attempt,
            iteration: start.work.iteration,
        };
        let body = InputBody::StartChild {
            version: resolved.version,
            input: start.input.clone(),
            parent: link,
        };
        self.feed(start.child.clone(), system(at, body), None, cycle)
            .await;
        let started = self
            .cache
            .get(&start.child)
            .is_some_and(|cached| cached.state.phase != Phase::NotStarted);
        if !started {
            self.cache.remove(&start.child);
            return;
        }
        cycle.batch.children.push(ChildLink {
            child_id: start.child.clone(),
            parent_id: parent.clone(),
            step: start.work.step.clone(),
            item: start.work.item,
            attempt: start.work.attempt,
            created_at: at,
        });
        let body = InputBody::ChildStarted {
            work: start.work.clone(),
            child: start.child.clone(),
            definition: resolved.definition.id.clone(),
            version: resolved.version,
        };
        self.feed(parent, system(at, body), None, cycle).await;
    }

    /// The child of `start` exists: the parent hears that it started and, if it ended,
    /// how it ended.
    async fn found_child(
        &mut self,
        parent: InstanceId,
        start: &ChildStart,
        at: DateTime<Utc>,
        cycle: &mut Cycle,
    ) {
        let Some(cached) = self.cache.get(&start.child) else {
            return;
        };
        let body = InputBody::ChildStarted {
            work: start.work.clone(),
            child: start.child.clone(),
            definition: cached.state.definition.clone(),
            version: cached.state.version,
        };
        let ended = crate::children::notice(&cached.state, &self.shared.limits);
        if ended.is_some() && !cycle.touched_set.contains(&start.child) {
            // Read only to learn how it ended: it need not stay in memory.
            self.cache.remove(&start.child);
        }
        self.feed(parent, system(at, body), None, cycle).await;
        if let Some((owner, mut input)) = ended {
            input.at = at;
            self.feed(owner, input, None, cycle).await;
        }
    }
}

fn system(at: DateTime<Utc>, body: InputBody) -> Input {
    Input {
        at,
        actor: SYSTEM_ACTOR.to_owned(),
        body,
    }
}

/// Runs the start again in a moment (the database failed to answer).
fn spawn_later(
    shared: &std::sync::Arc<crate::shared::Shared>,
    parent: InstanceId,
    start: ChildStart,
) {
    let shared = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        spawn_start(shared, parent, start);
    });
}
