//! The driver: one task that owns the hot instance states and turns inputs into commits.
//!
//! Each cycle it takes every message waiting in its inbox (up to a bound), plus the timers
//! that are due, feeds them through the core's [`transition_in_place`], and writes all the
//! resulting events, state snapshots (when due, see `snapshot.rs`), queued work and timers
//! of all instances in ONE database transaction (group commit). Only after that commit does it answer callers,
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
use tokio::sync::mpsc;

use gridflow_core::command::Dispatch;
use gridflow_core::history::{GENESIS_HASH, record_chain};
use gridflow_core::machine::{
    Input, InputBody, StepError, awaits_only_children, transition_in_place,
};
use gridflow_core::{Definition, Event, InstanceId, InstanceState, InstanceStatus, TimerKey};
use gridflow_store::{Batch, InstanceRecord, InstanceWrite};

use crate::approval_rows::changed_approval_rows;
use crate::error::{Error, Result, refusal_error};
use crate::message::{Message, Reply};
use crate::shared::Shared;
use crate::snapshot::{Snapshots, current_state};

mod children;
mod commands;
mod commit;
mod recovery;
mod signal_index;

use self::commit::CommitJob;

/// One instance held in memory between cycles.
struct Cached {
    state: InstanceState,
    definition: Arc<Definition>,
    /// Stored `row_version`; 0 while the instance is not stored yet.
    row_version: u64,
    last_seq: u64,
    last_hash: String,
    /// Where its stored state snapshot stands.
    snapshots: Snapshots,
    /// Its waits as the signal index has them (`signal_index.rs`).
    waits: Vec<gridflow_core::machine::CurrentWait>,
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
    replies: Vec<Reply>,
    finished: Vec<(InstanceId, InstanceStatus)>,
    /// Sizes of the state snapshots the batch writes, for the counters.
    snapshot_bytes: Vec<u64>,
    /// Action outcomes and timer firings: fed again if the commit fails, so no outcome is
    /// lost while the database is away.
    replayable: Vec<(InstanceId, Input)>,
    messages: usize,
    timers_fired: bool,
    /// Children to start or cancel after the commit (`children`).
    child_work: Vec<(InstanceId, crate::children::Queued)>,
    /// Parents to tell, after the commit, that a child ended.
    notices: Vec<(InstanceId, Input)>,
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
/// How many yields in a row that bring no message end a cycle's gathering.
const QUIET_YIELDS: u32 = 4;
/// How many yields one cycle's gathering makes at most, so that a steady stream of
/// messages cannot hold a commit back for long.
const MAX_GATHER_YIELDS: u32 = 256;
/// How long the driver sleeps when it knows of no timer.
const IDLE_WAKE: Duration = Duration::from_secs(60);

pub(crate) struct Driver {
    shared: Arc<Shared>,
    inbox: mpsc::UnboundedReceiver<Message>,
    cache: HashMap<InstanceId, Cached>,
    next_timer_at: Option<DateTime<Utc>>,
    in_flight: Option<InFlight>,
    /// Gather and build cycle N+1 while cycle N commits (see `EngineOptions`).
    pipeline_commits: bool,
    /// Write the whole state at every commit instead of when due (see `snapshot.rs`).
    snapshot_every_commit: bool,
    /// Commits that failed in a row; sets how long the driver waits before it feeds the
    /// lost inputs again (`recovery::backoff`).
    failed_commits: u32,
}

/// What woke the driver.
enum Woke {
    Message(Message),
    Committed(std::result::Result<std::result::Result<Duration, String>, tokio::task::JoinError>),
    Timer,
    Closed,
}

/// The commit under way and what to do once it is known.
struct InFlight {
    handle: tokio::task::JoinHandle<std::result::Result<Duration, String>>,
    /// Instances to evict once the commit is durable.
    idle: Vec<InstanceId>,
    /// Inputs to feed again if it fails.
    replayable: Vec<(InstanceId, Input)>,
    refresh_timers: bool,
    started: std::time::Instant,
}

impl Driver {
    pub(crate) fn new(
        shared: Arc<Shared>,
        inbox: mpsc::UnboundedReceiver<Message>,
        next_timer_at: Option<DateTime<Utc>>,
        pipeline_commits: bool,
        snapshot_every_commit: bool,
    ) -> Self {
        Self {
            shared,
            inbox,
            cache: HashMap::new(),
            next_timer_at,
            in_flight: None,
            pipeline_commits,
            snapshot_every_commit,
            failed_commits: 0,
        }
    }

    /// Runs until every sender of the inbox is gone.
    ///
    /// With `pipeline_commits`, while cycle N is being committed, cycle N+1 is already
    /// gathered and its records built; N+1 is submitted only once N is durable, so the
    /// database always sees commits in order and nothing is acted on before it is durable.
    /// Without it, each cycle waits for its own commit before gathering the next.
    pub(crate) async fn run(mut self) {
        loop {
            let wait = self.time_to_next_timer();
            let woke = {
                let in_flight = &mut self.in_flight;
                let inbox = &mut self.inbox;
                tokio::select! {
                    biased;
                    outcome = async {
                        match in_flight {
                            Some(job) => (&mut job.handle).await,
                            None => std::future::pending().await,
                        }
                    } => Woke::Committed(outcome),
                    message = inbox.recv() => message.map_or(Woke::Closed, Woke::Message),
                    () = tokio::time::sleep(wait) => Woke::Timer,
                }
            };
            let mut cycle = Cycle::default();
            match woke {
                Woke::Closed => return,
                Woke::Committed(outcome) => {
                    self.finish_in_flight(outcome, &cycle.touched_set).await;
                    continue;
                }
                Woke::Message(message) => self.handle(message, &mut cycle).await,
                Woke::Timer => {}
            }
            self.gather(&mut cycle).await;
            if self.time_to_next_timer().is_zero() {
                self.fire_due_timers(&mut cycle).await;
            }
            if let Some(job) = self.in_flight.as_mut() {
                let outcome = (&mut job.handle).await;
                if !self.finish_in_flight(outcome, &cycle.touched_set).await {
                    self.abandon(cycle);
                    continue;
                }
            }
            if cycle.touched.is_empty() && cycle.batch.is_empty() && cycle.replies.is_empty() {
                if cycle.timers_fired {
                    self.refresh_next_timer().await;
                }
                continue;
            }
            self.submit(cycle);
            if !self.pipeline_commits
                && let Some(job) = self.in_flight.as_mut()
            {
                let outcome = (&mut job.handle).await;
                self.finish_in_flight(outcome, &HashSet::new()).await;
            }
        }
    }

    /// Takes every message already waiting, then yields so that tasks about to send run
    /// first, and takes theirs too, until yields bring nothing new.
    ///
    /// Without the yields, the first outcome after a commit wakes the driver at once (tokio
    /// runs a task woken by a message next), and that outcome alone fills the cycle while
    /// the actions dispatched by the same commit are still finishing: the instances split
    /// into two halves that commit in turn, and each commit carries half the work it
    /// could. A yield costs about a microsecond when nothing else is runnable, so an idle
    /// engine pays nothing for it.
    async fn gather(&mut self, cycle: &mut Cycle) {
        let mut quiet_yields = 0;
        let mut yields = 0;
        while cycle.messages < MAX_MESSAGES_PER_CYCLE {
            match self.inbox.try_recv() {
                Ok(message) => {
                    self.handle(message, cycle).await;
                    quiet_yields = 0;
                }
                Err(mpsc::error::TryRecvError::Empty)
                    if quiet_yields < QUIET_YIELDS && yields < MAX_GATHER_YIELDS =>
                {
                    tokio::task::yield_now().await;
                    quiet_yields += 1;
                    yields += 1;
                }
                Err(mpsc::error::TryRecvError::Empty | mpsc::error::TryRecvError::Disconnected) => {
                    break;
                }
            }
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
                        snapshots: Snapshots::default(),
                        waits: Vec::new(),
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
            Message::StartChild {
                parent,
                start,
                resolved,
            } => self.start_child(parent, start, resolved, cycle).await,
            Message::WorkDone(id) => cycle.batch.work_done.push(id),
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
        if !self.shared.availability.reachable() {
            // Looked at again once the database is back (checked every second meanwhile).
            self.next_timer_at = Some(now + chrono::Duration::seconds(1));
            return;
        }
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
        // Known again once this cycle commits and the fired timers are gone.
        self.next_timer_at = None;
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
        reply: Option<Reply>,
        cycle: &mut Cycle,
    ) {
        let loaded = self.load(&instance).await;
        if let (Err(Error::Unavailable(message)), None) = (&loaded, &reply) {
            // Nobody will report this input again: it waits until the instance can be
            // read, instead of being dropped (and its outbox row with it).
            tracing::debug!(instance_id = %instance, %message, "instance cannot be loaded now; its input is fed again later");
            let delay = recovery::backoff(self.failed_commits.max(1));
            recovery::feed_later(&self.shared, vec![(instance, input)], delay);
            return;
        }
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
            | InputBody::StartChild { .. }
            | InputBody::ChildStarted { .. }
            | InputBody::ActionStarted { .. }
            | InputBody::Cancel { .. }
            | InputBody::RetryStep { .. }
            | InputBody::Decide { .. }
            | InputBody::Delegate { .. }
            | InputBody::Signal { .. }
            | InputBody::Rerun { .. }
            | InputBody::Migrate { .. } => {}
        }
        if let Err(error) = loaded {
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
        let limits = &self.shared.limits;
        let checked =
            crate::input_limits::prepare(&mut input, &cached.state, &cached.definition, limits);
        if let Err(error) = checked {
            if let Some(reply) = reply {
                let _ = reply.send(Err(error));
            }
            return;
        }
        let rights =
            crate::rights::observe_outcome(&self.shared.registry, &cached.definition, &mut input);
        match transition_in_place(
            &mut cached.state,
            &input,
            &cached.definition,
            self.shared.limits.budget(),
        ) {
            Ok(effects) => {
                // Windows of an outcome the core accepted land with its success.
                if !effects.events.is_empty() {
                    cycle.batch.rights.extend(rights);
                }
                // A migrated instance goes on with the version it moved to.
                if let InputBody::Migrate { to, .. } = &input.body
                    && !effects.events.is_empty()
                {
                    cached.definition = to.clone();
                }
                cycle.touch(&instance);
                cycle.batch.ledger.extend(crate::ledger::commit::writes(
                    &self.shared.registry,
                    &instance,
                    &input,
                    &effects.events,
                    &cached.definition,
                ));
                let notice = children::notice(&effects, &cached.state, limits);
                cycle.notices.extend(notice);
                let at = input.at;
                for command in effects.commands {
                    commands::apply_command(&instance, command, at, cycle, &mut self.next_timer_at);
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
            Err(refusal @ (StepError::Forbidden { .. } | StepError::InvalidDecision { .. })) => {
                // Refused before any event was made: the cached state is untouched.
                if let Some(reply) = reply {
                    let _ = reply.send(Err(refusal_error(refusal)));
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
                crate::ledger::commit::drop_instance(&mut cycle.batch.ledger, &instance);
                cycle.child_work.retain(|(owner, _)| owner != &instance);
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
        if !self.shared.availability.reachable() {
            // Do not hold the driver up waiting for a connection that cannot come.
            return Err(Error::Unavailable(format!(
                "instance {instance} cannot be read: the database is unreachable"
            )));
        }
        let record = self.shared.store.instance(instance).await?;
        let (state, snapshots) = current_state(
            self.shared.store.as_ref(),
            &self.shared.definitions,
            &record,
        )
        .await?;
        let definition = self
            .shared
            .definitions
            .get(&record.definition_id, Some(record.definition_version))
            .await?;
        let budget = self.shared.limits.budget();
        self.cache.insert(
            instance.clone(),
            Cached {
                waits: gridflow_core::machine::current_waits(
                    &state,
                    &definition.definition,
                    budget,
                ),
                state,
                definition: definition.definition.clone(),
                row_version: record.row_version,
                last_seq: record.last_seq,
                last_hash: record.last_hash,
                snapshots,
            },
        );
        Ok(())
    }

    /// Builds the cycle's batch and hands it to a commit job. The cache moves ahead to
    /// the state the batch writes; if the commit fails, the cache is dropped.
    fn submit(&mut self, mut cycle: Cycle) {
        let now = self.shared.clock.now();
        for instance in &cycle.touched {
            let events = cycle.events.remove(instance).unwrap_or_default();
            let Some(cached) = self.cache.get_mut(instance) else {
                continue;
            };
            if events.is_empty() && cached.row_version > 0 {
                continue;
            }
            let recorded = record_chain(instance, cached.last_seq, &cached.last_hash, &events);
            let seq = cached.last_seq + recorded.len() as u64;
            let tail_bytes = cached.snapshots.tail_bytes + Snapshots::bytes_of(&recorded);
            let snapshot = self.snapshot_every_commit
                || cached.snapshots.due(
                    cached.row_version == 0,
                    cached.state.status().is_terminal(),
                    tail_bytes,
                );
            let (state_json, snapshot_bytes) = if snapshot {
                match serde_json::to_value(&cached.state) {
                    Ok(json) => {
                        let bytes = gridflow_core::limits::serialized_size(&json);
                        cycle.snapshot_bytes.push(bytes);
                        (json, bytes)
                    }
                    Err(error) => {
                        tracing::error!(instance_id = %instance, %error, "state does not serialize");
                        continue;
                    }
                }
            } else {
                (Value::Null, 0)
            };
            let prev_hash = recorded
                .last()
                .map_or_else(|| cached.last_hash.clone(), |last| last.hash.clone());
            let record = InstanceRecord {
                id: instance.clone(),
                definition_id: cached.state.definition.clone(),
                definition_version: cached.state.version,
                status: cached.state.status(),
                state: state_json,
                // Stores write the input only with a new row (rules.rs): no copy per commit.
                input: if cached.row_version == 0 || snapshot {
                    cached.state.input.clone()
                } else {
                    Value::Null
                },
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
                snapshot_seq: if snapshot { seq } else { cached.snapshots.seq },
            };
            cycle
                .batch
                .approvals
                .extend(changed_approval_rows(&cached.state, &events, now));
            let budget = self.shared.limits.budget();
            let (waits, state) = (&mut cached.waits, &cached.state);
            cycle.batch.signal_waits.extend(signal_index::changed_rows(
                instance,
                waits,
                state,
                &cached.definition,
                budget,
            ));
            cycle.batch.instances.push(InstanceWrite {
                record,
                expected_row_version: (cached.row_version > 0).then_some(cached.row_version),
                events: recorded,
                snapshot,
            });
            cached.snapshots = if snapshot {
                Snapshots {
                    seq,
                    bytes: snapshot_bytes,
                    tail_bytes: 0,
                }
            } else {
                Snapshots {
                    tail_bytes,
                    ..cached.snapshots
                }
            };
            cached.last_seq = seq;
            cached.last_hash = prev_hash;
            cached.row_version += 1;
        }
        let idle: Vec<InstanceId> = cycle
            .touched
            .iter()
            .filter(|instance| {
                self.cache.get(*instance).is_some_and(|cached| {
                    matches!(
                        cached.state.status(),
                        InstanceStatus::Waiting
                            | InstanceStatus::Completed
                            | InstanceStatus::Failed
                            | InstanceStatus::Cancelled
                    ) || awaits_only_children(&cached.state, &cached.definition)
                })
            })
            .cloned()
            .collect();
        let refresh_timers = cycle.timers_fired || !cycle.batch.timers_added.is_empty();
        let job = CommitJob {
            batch: cycle.batch,
            replies: cycle.replies,
            dispatches: cycle.dispatches,
            child_work: cycle.child_work,
            notices: cycle.notices,
            finished: cycle.finished,
            snapshot_bytes: cycle.snapshot_bytes,
        };
        self.in_flight = Some(InFlight {
            handle: tokio::spawn(job.run(self.shared.clone())),
            idle,
            replayable: cycle.replayable,
            refresh_timers,
            started: std::time::Instant::now(),
        });
    }

    /// Acts on the outcome of the commit in flight. On success, evicts the instances that
    /// became idle (unless the cycle being gathered touched them again). On failure, drops
    /// the whole cache (it ran ahead of the database) and feeds the lost outcomes again.
    /// Returns whether the commit succeeded.
    async fn finish_in_flight(
        &mut self,
        outcome: std::result::Result<std::result::Result<Duration, String>, tokio::task::JoinError>,
        touched_now: &HashSet<InstanceId>,
    ) -> bool {
        let Some(job) = self.in_flight.take() else {
            return true;
        };
        match outcome {
            Ok(Ok(commit_time)) => {
                self.failed_commits = 0;
                self.shared
                    .stats
                    .record_timing(commit_time, job.started.elapsed());
                for instance in &job.idle {
                    if !touched_now.contains(instance) {
                        self.cache.remove(instance);
                    }
                }
                if job.refresh_timers {
                    self.refresh_next_timer().await;
                }
                true
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "group commit failed; instances are reloaded and their outcomes fed again");
                self.reset_after_failure(job.replayable);
                false
            }
            Err(error) => {
                tracing::error!(%error, "the commit task failed; instances are reloaded and their outcomes fed again");
                self.reset_after_failure(job.replayable);
                false
            }
        }
    }

    /// After a failed commit: forgets every cached state (the cache ran ahead of the
    /// database, so an instance of the failed batch would otherwise stay half applied in
    /// memory; each is read again from the store when next needed), and feeds the lost
    /// outcomes and timer firings again after a delay that grows while failures go on.
    fn reset_after_failure(&mut self, replayable: Vec<(InstanceId, Input)>) {
        self.failed_commits = self.failed_commits.saturating_add(1);
        let delay = recovery::backoff(self.failed_commits);
        self.cache.clear();
        let retry_at = self.shared.clock.now()
            + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero());
        self.next_timer_at = Some(retry_at);
        recovery::feed_later(&self.shared, replayable, delay);
    }

    /// Drops a gathered cycle that was built on a commit that failed.
    fn abandon(&mut self, cycle: Cycle) {
        for reply in cycle.replies {
            let _ = reply.send(Err(Error::Unavailable(
                "the database did not accept the previous commit; try again".to_owned(),
            )));
        }
        self.reset_after_failure(cycle.replayable);
    }

    async fn refresh_next_timer(&mut self) {
        match self.shared.store.next_timer_at().await {
            // Timers of cycles not committed yet are only known in memory: keep the
            // earlier of the two.
            Ok(next) => {
                self.next_timer_at = match (next, self.next_timer_at) {
                    (Some(stored), Some(pending)) => Some(stored.min(pending)),
                    (stored, pending) => stored.or(pending),
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the next timer; checking again in a second");
                self.next_timer_at = Some(self.shared.clock.now() + chrono::Duration::seconds(1));
            }
        }
    }
}
