//! The driver: one task that owns the hot instance states and turns inputs into commits.
//!
//! Each cycle it takes every message waiting in its inbox (up to a bound), plus the timers
//! that are due, feeds them through the core's [`transition_in_place`], and writes all the
//! resulting events, state snapshots, queued work and timers of all instances in ONE
//! database transaction (group commit). Only after that commit does it answer callers,
//! start the dispatched actions and announce finished instances, so nothing is acted on
//! before it is durable.
//!
//! One task owns the cache, so per-instance transitions are serialized without locks.
//! Instances that wait (on a timer) or finished are evicted right after their commit: a
//! waiting instance costs database rows, not memory or tasks.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use gridflow_core::command::{Command, Dispatch};
use gridflow_core::history::{GENESIS_HASH, RecordedEvent};
use gridflow_core::machine::{Input, InputBody, StepError, transition_in_place};
use gridflow_core::{
    Definition, ErrorInfo, Event, InstanceId, InstanceState, InstanceStatus, TimerKey,
};
use gridflow_store::{Batch, InstanceRecord, InstanceWrite, TimerRecord, WorkItem};

use crate::engine::Shared;
use crate::error::{Error, Result};
use crate::view::decode_state;

/// A message to the driver.
pub(crate) enum Message {
    /// Create and start a new instance.
    Start {
        instance: InstanceId,
        definition: Arc<Definition>,
        version: u32,
        input: Value,
        actor: String,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Feed an input to an existing instance.
    Input {
        instance: InstanceId,
        input: Input,
        reply: Option<oneshot::Sender<Result<()>>>,
    },
    /// Look at the timers now (the clock moved); the reply comes after that cycle's commit.
    Wake(Option<oneshot::Sender<Result<()>>>),
}

/// One instance held in memory between cycles.
struct Cached {
    state: InstanceState,
    definition: Arc<Definition>,
    /// Stored `row_version`; 0 while the instance is not stored yet.
    row_version: u64,
    last_seq: u64,
    last_hash: String,
}

/// What one cycle has gathered for its commit.
#[derive(Default)]
struct Cycle {
    /// Instances touched, in first-touch order.
    touched: Vec<InstanceId>,
    touched_set: HashSet<InstanceId>,
    events: HashMap<InstanceId, Vec<Event>>,
    batch: Batch,
    dispatches: Vec<(InstanceId, Dispatch)>,
    replies: Vec<oneshot::Sender<Result<()>>>,
    finished: Vec<(InstanceId, InstanceStatus)>,
    /// Action outcomes and timer firings: fed again if the commit fails, so no outcome is
    /// lost while the database is away.
    replayable: Vec<(InstanceId, Input)>,
    messages: usize,
    timers_fired: bool,
}

impl Cycle {
    fn touch(&mut self, instance: &InstanceId) {
        if self.touched_set.insert(instance.clone()) {
            self.touched.push(instance.clone());
        }
    }
}

/// How many messages one cycle takes at most.
const MAX_MESSAGES_PER_CYCLE: usize = 4096;
/// How many due timers one cycle fires at most.
const MAX_TIMERS_PER_CYCLE: u32 = 1024;
/// How long the driver sleeps when it knows of no timer.
const IDLE_WAKE: Duration = Duration::from_secs(60);

pub(crate) struct Driver {
    shared: Arc<Shared>,
    inbox: mpsc::UnboundedReceiver<Message>,
    cache: HashMap<InstanceId, Cached>,
    next_timer_at: Option<DateTime<Utc>>,
}

impl Driver {
    pub(crate) fn new(
        shared: Arc<Shared>,
        inbox: mpsc::UnboundedReceiver<Message>,
        next_timer_at: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            shared,
            inbox,
            cache: HashMap::new(),
            next_timer_at,
        }
    }

    /// Runs until every sender of the inbox is gone.
    pub(crate) async fn run(mut self) {
        loop {
            let wait = self.time_to_next_timer();
            let first = if wait.is_zero() {
                self.inbox.try_recv().ok()
            } else {
                tokio::select! {
                    biased;
                    message = self.inbox.recv() => match message {
                        Some(message) => Some(message),
                        None => return,
                    },
                    () = tokio::time::sleep(wait) => None,
                }
            };
            let mut cycle = Cycle::default();
            if let Some(message) = first {
                self.handle(message, &mut cycle).await;
            }
            while cycle.messages < MAX_MESSAGES_PER_CYCLE {
                match self.inbox.try_recv() {
                    Ok(message) => self.handle(message, &mut cycle).await,
                    Err(_) => break,
                }
            }
            if self.time_to_next_timer().is_zero() {
                self.fire_due_timers(&mut cycle).await;
            }
            self.commit(cycle).await;
        }
    }

    fn time_to_next_timer(&self) -> Duration {
        match self.next_timer_at {
            Some(fire_at) => (fire_at - self.shared.clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO),
            None => IDLE_WAKE,
        }
    }

    async fn handle(&mut self, message: Message, cycle: &mut Cycle) {
        cycle.messages += 1;
        match message {
            Message::Start {
                instance,
                definition,
                version,
                input,
                actor,
                reply,
            } => {
                let at = self.shared.clock.now();
                if self.cache.contains_key(&instance) {
                    let _ = reply.send(Err(Error::Conflict(format!(
                        "instance {instance} exists already"
                    ))));
                    return;
                }
                self.cache.insert(
                    instance.clone(),
                    Cached {
                        state: InstanceState::new(instance.clone(), definition.id.clone(), at),
                        definition,
                        row_version: 0,
                        last_seq: 0,
                        last_hash: GENESIS_HASH.to_owned(),
                    },
                );
                let input = Input {
                    at,
                    actor,
                    body: InputBody::Start { version, input },
                };
                self.feed(instance, input, Some(reply), cycle).await;
            }
            Message::Input {
                instance,
                input,
                reply,
            } => self.feed(instance, input, reply, cycle).await,
            Message::Wake(reply) => {
                // Due timers are read at the end of every cycle; a wake only makes sure a
                // cycle runs now, with the clock as it is.
                self.next_timer_at = Some(self.shared.clock.now());
                if let Some(reply) = reply {
                    cycle.replies.push(reply);
                }
            }
        }
    }

    async fn fire_due_timers(&mut self, cycle: &mut Cycle) {
        let now = self.shared.clock.now();
        let due = match self
            .shared
            .store
            .due_timers(now, MAX_TIMERS_PER_CYCLE)
            .await
        {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "cannot read due timers; will try again");
                return;
            }
        };
        cycle.timers_fired = true;
        for timer in due {
            let key: TimerKey = match serde_json::from_value(timer.payload.clone()) {
                Ok(key) => key,
                Err(error) => {
                    tracing::error!(instance_id = %timer.instance_id, key = %timer.key, %error, "undecodable timer dropped");
                    cycle
                        .batch
                        .timers_removed
                        .push((timer.instance_id.clone(), timer.key.clone()));
                    continue;
                }
            };
            let input = Input {
                at: now,
                actor: gridflow_core::event::SYSTEM_ACTOR.to_owned(),
                body: InputBody::TimerFired { timer: key },
            };
            self.feed(timer.instance_id, input, None, cycle).await;
        }
    }

    /// Runs one input through the core and gathers what it writes and causes.
    async fn feed(
        &mut self,
        instance: InstanceId,
        mut input: Input,
        reply: Option<oneshot::Sender<Result<()>>>,
        cycle: &mut Cycle,
    ) {
        // The outbox row of a reported attempt, and the row of a fired timer, go away
        // whatever the core makes of the input: a stale outcome must not run again.
        match &input.body {
            InputBody::ActionSucceeded { work, .. } | InputBody::ActionFailed { work, .. } => {
                cycle.batch.work_done.push(work.idempotency_key(&instance));
                cycle.replayable.push((instance.clone(), input.clone()));
            }
            InputBody::TimerFired { timer } => {
                cycle
                    .batch
                    .timers_removed
                    .push((instance.clone(), timer.to_key_string()));
                cycle.replayable.push((instance.clone(), input.clone()));
            }
            InputBody::Start { .. }
            | InputBody::ActionStarted { .. }
            | InputBody::Cancel { .. }
            | InputBody::RetryStep { .. } => {}
        }
        if let Err(error) = self.load(&instance).await {
            match reply {
                Some(reply) => {
                    let _ = reply.send(Err(error));
                }
                None => {
                    tracing::warn!(instance_id = %instance, %error, "input for an instance that cannot be loaded dropped")
                }
            }
            return;
        }
        let Some(cached) = self.cache.get_mut(&instance) else {
            return;
        };
        if let InputBody::ActionFailed {
            work,
            error,
            retry_at,
        } = &mut input.body
        {
            *retry_at = Some(jittered_retry_at(
                &cached.definition,
                work,
                error,
                input.at,
                *retry_at,
            ));
        }
        match transition_in_place(&mut cached.state, &input, &cached.definition) {
            Ok(effects) => {
                cycle.touch(&instance);
                let at = input.at;
                for command in effects.commands {
                    apply_command(&instance, command, at, cycle, &mut self.next_timer_at);
                }
                cycle
                    .events
                    .entry(instance)
                    .or_default()
                    .extend(effects.events);
                if let Some(reply) = reply {
                    cycle.replies.push(reply);
                }
            }
            Err(StepError::Rejected { message, .. }) => {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(Error::Conflict(message)));
                }
            }
            Err(error) => {
                // A bug or a history that no longer fits its definition: the state may be
                // half changed, so it is dropped, and nothing of this instance is written
                // in this cycle. Its outbox rows stay, so a restart tries again.
                tracing::error!(instance_id = %instance, %error, "transition failed; instance quarantined for this cycle");
                self.cache.remove(&instance);
                cycle.events.remove(&instance);
                cycle.touched.retain(|touched| touched != &instance);
                cycle.touched_set.remove(&instance);
                cycle
                    .batch
                    .work_added
                    .retain(|work| work.instance_id != instance);
                cycle
                    .batch
                    .timers_added
                    .retain(|timer| timer.instance_id != instance);
                cycle.dispatches.retain(|(owner, _)| owner != &instance);
                let prefix = format!("{instance}:");
                cycle.batch.work_done.retain(|id| !id.starts_with(&prefix));
                cycle
                    .batch
                    .timers_removed
                    .retain(|(owner, _)| owner != &instance);
                if let Some(reply) = reply {
                    let _ = reply.send(Err(Error::Internal(error.to_string())));
                }
            }
        }
    }

    /// Puts the instance in the cache, from the store if needed.
    async fn load(&mut self, instance: &InstanceId) -> Result<()> {
        if self.cache.contains_key(instance) {
            return Ok(());
        }
        let record = self.shared.store.instance(instance).await?;
        let state = decode_state(&record)?;
        let definition = self
            .shared
            .definitions
            .get(&record.definition_id, Some(record.definition_version))
            .await?;
        self.cache.insert(
            instance.clone(),
            Cached {
                state,
                definition: definition.definition.clone(),
                row_version: record.row_version,
                last_seq: record.last_seq,
                last_hash: record.last_hash,
            },
        );
        Ok(())
    }

    /// Writes the cycle in one transaction, then acts on it.
    async fn commit(&mut self, mut cycle: Cycle) {
        let now = self.shared.clock.now();
        let mut chain_heads: Vec<(InstanceId, u64, String, u64)> = Vec::new();
        for instance in &cycle.touched {
            let events = cycle.events.remove(instance).unwrap_or_default();
            let Some(cached) = self.cache.get(instance) else {
                continue;
            };
            if events.is_empty() && cached.row_version > 0 {
                continue;
            }
            let mut prev_hash = cached.last_hash.clone();
            let mut seq = cached.last_seq;
            let recorded: Vec<RecordedEvent> = events
                .iter()
                .map(|event| {
                    seq += 1;
                    let recorded = RecordedEvent::record(instance, seq, &prev_hash, event);
                    prev_hash.clone_from(&recorded.hash);
                    recorded
                })
                .collect();
            let state_json = match serde_json::to_value(&cached.state) {
                Ok(json) => json,
                Err(error) => {
                    tracing::error!(instance_id = %instance, %error, "state does not serialize");
                    continue;
                }
            };
            let record = InstanceRecord {
                id: instance.clone(),
                definition_id: cached.state.definition.clone(),
                definition_version: cached.state.version,
                status: cached.state.status(),
                state: state_json,
                input: cached.state.input.clone(),
                output: cached.state.output().cloned(),
                error: cached
                    .state
                    .error()
                    .and_then(|error| serde_json::to_value(error).ok()),
                created_at: cached.state.started_at,
                updated_at: now,
                last_seq: seq,
                last_hash: prev_hash.clone(),
                row_version: cached.row_version + 1,
            };
            chain_heads.push((instance.clone(), seq, prev_hash, cached.row_version + 1));
            cycle.batch.instances.push(InstanceWrite {
                record,
                expected_row_version: (cached.row_version > 0).then_some(cached.row_version),
                events: recorded,
            });
        }

        let outcome = if cycle.batch.is_empty() {
            Ok(())
        } else {
            self.commit_with_retry(&cycle.batch).await
        };
        match outcome {
            Ok(()) => {
                let event_count: usize = cycle
                    .batch
                    .instances
                    .iter()
                    .map(|write| write.events.len())
                    .sum();
                self.shared
                    .stats
                    .record_commit(cycle.batch.instances.len(), event_count);
                for (instance, seq, hash, row_version) in chain_heads {
                    if let Some(cached) = self.cache.get_mut(&instance) {
                        cached.last_seq = seq;
                        cached.last_hash = hash;
                        cached.row_version = row_version;
                    }
                }
                for reply in cycle.replies {
                    let _ = reply.send(Ok(()));
                }
                for (instance, dispatch) in cycle.dispatches {
                    crate::executor::spawn(self.shared.clone(), instance, dispatch);
                }
                for (instance, status) in cycle.finished {
                    let _ = self.shared.finished.send((instance, status));
                }
                self.evict_idle(&cycle.touched);
                if cycle.timers_fired || !cycle.batch.timers_added.is_empty() {
                    self.refresh_next_timer().await;
                }
            }
            Err(error) => {
                tracing::error!(%error, "group commit failed; the cycle's instances are reloaded and their outcomes fed again");
                for instance in &cycle.touched {
                    self.cache.remove(instance);
                }
                for reply in cycle.replies {
                    let _ = reply.send(Err(Error::Unavailable(error.to_string())));
                }
                for (instance, input) in cycle.replayable {
                    self.shared.send(Message::Input {
                        instance,
                        input,
                        reply: None,
                    });
                }
            }
        }
    }

    async fn commit_with_retry(
        &self,
        batch: &Batch,
    ) -> std::result::Result<(), gridflow_store::Error> {
        let mut delay = Duration::from_millis(50);
        let mut attempt = 1;
        loop {
            match self.shared.store.commit(batch).await {
                Ok(()) => return Ok(()),
                Err(gridflow_store::Error::Unavailable { message, .. }) if attempt < 8 => {
                    tracing::warn!(attempt, %message, "database unavailable; retrying the commit");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Drops finished and waiting instances from memory: their state is in the database.
    fn evict_idle(&mut self, touched: &[InstanceId]) {
        for instance in touched {
            let idle = self.cache.get(instance).is_some_and(|cached| {
                matches!(
                    cached.state.status(),
                    InstanceStatus::Waiting
                        | InstanceStatus::Completed
                        | InstanceStatus::Failed
                        | InstanceStatus::Cancelled
                )
            });
            if idle {
                self.cache.remove(instance);
            }
        }
    }

    async fn refresh_next_timer(&mut self) {
        match self.shared.store.next_timer_at().await {
            Ok(next) => self.next_timer_at = next,
            Err(error) => {
                tracing::warn!(%error, "cannot read the next timer; checking again in a second");
                self.next_timer_at = Some(self.shared.clock.now() + chrono::Duration::seconds(1));
            }
        }
    }
}

/// Turns one command into rows of the batch and work for after the commit.
fn apply_command(
    instance: &InstanceId,
    command: Command,
    at: DateTime<Utc>,
    cycle: &mut Cycle,
    next_timer_at: &mut Option<DateTime<Utc>>,
) {
    match command {
        Command::Dispatch(dispatch) => {
            let payload = serde_json::to_value(&dispatch).unwrap_or(Value::Null);
            cycle.batch.work_added.push(WorkItem {
                id: dispatch.idempotency_key.clone(),
                instance_id: instance.clone(),
                payload,
                created_at: at,
            });
            cycle.dispatches.push((instance.clone(), dispatch));
        }
        Command::AbandonWork { work } => {
            let id = work.idempotency_key(instance);
            let queued_now = cycle.batch.work_added.len();
            cycle.batch.work_added.retain(|item| item.id != id);
            if cycle.batch.work_added.len() == queued_now {
                cycle.batch.work_done.push(id);
            } else {
                cycle
                    .dispatches
                    .retain(|(_, dispatch)| dispatch.idempotency_key != id);
            }
        }
        Command::StartTimer { timer, fire_at } => {
            let payload = serde_json::to_value(&timer).unwrap_or(Value::Null);
            cycle.batch.timers_added.push(TimerRecord {
                instance_id: instance.clone(),
                key: timer.to_key_string(),
                fire_at,
                payload,
            });
            if next_timer_at.is_none_or(|next| fire_at < next) {
                *next_timer_at = Some(fire_at);
            }
        }
        Command::CancelTimer { timer } => {
            let key = timer.to_key_string();
            let added_now = cycle.batch.timers_added.len();
            cycle
                .batch
                .timers_added
                .retain(|added| !(added.instance_id == *instance && added.key == key));
            if cycle.batch.timers_added.len() == added_now {
                cycle.batch.timers_removed.push((instance.clone(), key));
            }
        }
        Command::Finish { status } => cycle.finished.push((instance.clone(), status)),
    }
}

/// When the next attempt after a failure starts: the policy's base delay, jittered into
/// its upper half with tokio-retry's jitter when the policy asks for it, and never before
/// a `Retry-After` the system gave.
fn jittered_retry_at(
    definition: &Definition,
    work: &gridflow_core::WorkKey,
    error: &ErrorInfo,
    at: DateTime<Utc>,
    hint: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    let policy = definition
        .step(&work.step)
        .map(|step| step.retry_policy())
        .unwrap_or_default();
    let _ = error;
    let base = policy.base_delay(work.attempt);
    let delay = if policy.jitter {
        let half = base / 2;
        half + tokio_retry::strategy::jitter(base - half)
    } else {
        base
    };
    let computed = at + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
    match hint {
        Some(hint) if hint > computed => hint,
        Some(_) | None => computed,
    }
}
