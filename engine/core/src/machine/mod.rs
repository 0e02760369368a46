//! The pure state machine of an instance.
//!
//! Two functions, both pure:
//! - [`apply`] folds one history event into the state and returns the commands that the
//!   event causes. Replay is nothing but [`apply`] over a recorded history.
//! - [`transition`] turns an [`Input`] (something the runtime or an operator reports) into
//!   the events it causes, then derives the events that follow from the new state (steps
//!   that became ready, skipped or finished, compensation, completion) until nothing more
//!   follows, applying each one as it goes.
//!
//! This module holds the public types and the two exhaustive matches, one over events
//! ([`apply_in_place`]) and one over inputs (`facts_for_input`), each arm a call into the
//! room of its concern. Each room lists its rows of the transition table in its `//!` doc
//! (state × event or input → effect), each row with an id that the machine notes when it
//! takes the row (`coverage`, for the test that reports rows no test reaches):
//!
//! - `instance`: the instance's lifecycle (start, completion, failure, cancel, operator retry).
//! - `step`: a step's own work, its action or fan-out units (scheduled, started, succeeded,
//!   retried, failed, skipped), and stopping that work.
//! - `compensation`: compensations after a failure, latest completion first.
//! - `approval`: approval steps (request, decisions, delegation, due and escalation).
//! - `binding`: approvals bound to artifacts (`bind`), and the approved artifacts every
//!   dispatch carries.
//! - `wait`: wait steps and the signals they consume, kept until consumed.
//! - `items`: fan-out items of approval and wait steps (one approval or wait per item).
//! - `timer`: durable timers (which are current, what a firing one causes) and sleep steps.
//! - `derive`: what follows from the state once an input's events are applied.
//! - `expressions`: what expressions see, and rendering arguments, items and instants.
//! - `lookups`: finding steps, units and definitions, and the errors for missing ones.
//! - `child`: workflow steps, whose units are child instances.
//! - `repeat`: steps with `repeat`: judging a run by `until`, the next run, its interval.
//! - `recovery`: an operator's re-run of a finished instance, and moving an instance to
//!   another version of its definition (migration).
//! - `wait_index`: an instance's current waits and their signal keys, for the signal index.
//!
//! Anything the tables do not list is [`StepError::InvalidTransition`].
//!
//! Inputs that users send ([`InputBody::Decide`], [`InputBody::Delegate`],
//! [`InputBody::Signal`]) are checked before any event is made: a closed approval or a
//! finished instance is [`StepError::Rejected`] (409), a user who may not decide is
//! [`StepError::Forbidden`] (403), data that violates the approval's form is
//! [`StepError::InvalidDecision`] (422). Signals are kept in the state until consumed, so
//! one sent before its wait step is reached is not lost.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::approval::Verdict;
use crate::command::{Command, WorkKey};
use crate::definition::Definition;
use crate::event::{ErrorInfo, Event, EventBody, ParentRef, TimerKey};
use crate::expr::Budget;
use crate::id::{DefinitionId, InstanceId, StepId};
use crate::state::InstanceState;

// Patterns naming every variant, for the last arm of a match whose earlier arms are
// guarded: the crate denies wildcard arms so that a new variant forces a review. Defined
// before the rooms so that they can use them.
macro_rules! any_unit {
    () => {
        $crate::state::Unit::Ready { .. }
            | $crate::state::Unit::Scheduled { .. }
            | $crate::state::Unit::Running { .. }
            | $crate::state::Unit::Retrying { .. }
            | $crate::state::Unit::Succeeded { .. }
            | $crate::state::Unit::Failed { .. }
            | $crate::state::Unit::Approval { .. }
            | $crate::state::Unit::Wait { .. }
    };
}
macro_rules! any_step_state {
    () => {
        $crate::state::StepState::Pending { .. }
            | $crate::state::StepState::Active { .. }
            | $crate::state::StepState::Succeeded { .. }
            | $crate::state::StepState::Failed { .. }
            | $crate::state::StepState::Skipped { .. }
            | $crate::state::StepState::Cancelled { .. }
    };
}
macro_rules! any_phase {
    () => {
        $crate::state::Phase::NotStarted
            | $crate::state::Phase::Running
            | $crate::state::Phase::Compensating { .. }
            | $crate::state::Phase::Completed { .. }
            | $crate::state::Phase::Failed { .. }
            | $crate::state::Phase::Cancelled { .. }
    };
}

mod approval;
mod binding;
mod child;
mod compensation;
mod coverage;
mod derive;
mod expressions;
mod instance;
mod items;
mod lookups;
mod recovery;
mod repeat;
mod step;
mod timer;
mod wait;
mod wait_index;
mod work;

#[cfg(test)]
mod tests;

pub use child::{awaits_child, awaits_only_children, child_id};
pub use expressions::scope;
pub use recovery::{RerunPlan, RerunRefusal, migration_problems, rerun_plan};
pub use wait::waits_for;
pub use wait_index::{CurrentWait, WaitKey, current_waits};

/// Errors of the state machine.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepError {
    /// An event that the state does not allow: a bug, or out-of-order delivery.
    #[error("instance {instance}: {event} is not allowed when {state}")]
    InvalidTransition {
        /// The instance.
        instance: InstanceId,
        /// What the state was.
        state: String,
        /// The event.
        event: String,
    },
    /// An event names a step the definition does not have (nondeterminism).
    #[error("instance {instance}: step \"{step}\" not found in the definition")]
    UnknownStep {
        /// The instance.
        instance: InstanceId,
        /// The step.
        step: StepId,
    },
    /// An operator's request that the instance's state refuses (cancel a finished
    /// instance, retry a step that did not fail, decide a closed approval).
    #[error("instance {instance}: {message}")]
    Rejected {
        /// The instance.
        instance: InstanceId,
        /// Why.
        message: String,
    },
    /// The acting user may not do this (not an assignee, self-approval).
    #[error("instance {instance}: {message}")]
    Forbidden {
        /// The instance.
        instance: InstanceId,
        /// Why.
        message: String,
    },
    /// A decision or delegation that is malformed for this approval (form violations).
    #[error("instance {instance}: {message}")]
    InvalidDecision {
        /// The instance.
        instance: InstanceId,
        /// Summary.
        message: String,
        /// Every problem, each `<path>: <message>`.
        violations: Vec<String>,
    },
}

/// Something that happened outside the core, reported by the runtime or an operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// When the runtime observed it (its clock; the core never reads one).
    pub at: DateTime<Utc>,
    /// `system` or the acting user.
    pub actor: String,
    /// What happened.
    pub body: InputBody,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum InputBody {
    /// Start the instance with this (already validated) input.
    Start {
        /// Definition version the instance runs on.
        version: u32,
        /// Start input.
        input: Value,
    },
    /// The runtime began executing a dispatched unit.
    ActionStarted {
        /// Which unit.
        work: WorkKey,
    },
    /// A dispatched unit succeeded.
    ActionSucceeded {
        /// Which unit.
        work: WorkKey,
        /// Its output.
        output: Value,
    },
    /// A dispatched unit failed.
    ActionFailed {
        /// Which unit.
        work: WorkKey,
        /// Why.
        error: ErrorInfo,
        /// When the next attempt would start, jittered by the runtime; `None` uses the
        /// policy's base delay.
        retry_at: Option<DateTime<Utc>>,
    },
    /// A durable timer fired.
    TimerFired {
        /// Which timer.
        timer: TimerKey,
    },
    /// An operator cancels the instance.
    Cancel {
        /// Free text.
        reason: Option<String>,
    },
    /// An operator re-runs a failed step of a failed instance.
    RetryStep {
        /// The step.
        step: StepId,
    },
    /// A user approves or rejects an approval.
    Decide {
        /// The approval step.
        step: StepId,
        /// The approval's attempt (from its id).
        attempt: u32,
        /// The fan-out item whose approval it is (from its id).
        item: Option<u32>,
        /// The deciding user.
        user: String,
        /// The user's groups.
        groups: Vec<String>,
        /// Approve or reject.
        decision: Verdict,
        /// Free text.
        comment: Option<String>,
        /// Form data; null when absent.
        data: Value,
    },
    /// A user hands their decision on an approval to another user.
    Delegate {
        /// The approval step.
        step: StepId,
        /// The approval's attempt (from its id).
        attempt: u32,
        /// The fan-out item whose approval it is (from its id).
        item: Option<u32>,
        /// The delegating user.
        from: String,
        /// The delegating user's groups.
        groups: Vec<String>,
        /// The delegate.
        to: String,
    },
    /// An external signal for the instance.
    Signal {
        /// Signal name.
        name: String,
        /// Its payload.
        payload: Value,
        /// Deliver only if a wait step for `name` is active and its `correlate` holds with
        /// `event` bound to the payload (inbound events); otherwise the signal is kept
        /// for a wait step reached later.
        correlated: bool,
    },
    /// Start the instance as the child of a parent's workflow unit.
    StartChild {
        /// Definition version the instance runs on.
        version: u32,
        /// Start input, checked against the definition's input schema.
        input: Value,
        /// The parent's unit.
        parent: ParentRef,
    },
    /// The runtime started the child instance of a workflow unit (or found it started).
    ChildStarted {
        /// Which unit.
        work: WorkKey,
        /// The child instance.
        child: InstanceId,
        /// The child's definition.
        definition: DefinitionId,
        /// The child's definition version.
        version: u32,
    },
    /// An operator re-runs a completed or failed instance from `from_step` and everything
    /// downstream of it (none: only the output is evaluated again).
    Rerun {
        /// The step to re-run from.
        from_step: Option<StepId>,
        /// A start input that replaces the old one (already validated).
        input: Option<Value>,
        /// Arguments that replace the rendered `with` of these action steps.
        arguments: BTreeMap<StepId, Value>,
    },
    /// An operator moves a running or waiting instance to another version of its
    /// definition. The transition folds the resulting events with `to`.
    Migrate {
        /// The version to move to.
        to_version: u32,
        /// That version's definition.
        to: Arc<Definition>,
        /// Old step id to new step id, for renamed steps.
        mapping: BTreeMap<StepId, StepId>,
    },
}

/// The result of [`transition`]: the new state, the events to append, the commands to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// State after every event.
    pub state: InstanceState,
    /// Events to append to the history, in order.
    pub events: Vec<Event>,
    /// Commands caused by those events, in order.
    pub commands: Vec<Command>,
}

/// Events and commands produced by [`transition_in_place`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    /// Events to append to the history, in order.
    pub events: Vec<Event>,
    /// Commands caused by those events, in order.
    pub commands: Vec<Command>,
}

impl Effects {
    fn record(
        &mut self,
        state: &mut InstanceState,
        event: Event,
        definition: &Definition,
    ) -> Result<(), StepError> {
        let commands = apply_in_place(state, &event, definition)?;
        self.events.push(event);
        self.commands.extend(commands);
        Ok(())
    }
}

/// Turns `input` into events, applies them and everything that follows from them.
///
/// An input that no longer matters (the outcome of an attempt that was abandoned, a timer
/// of a step that moved on) yields no events. An operator request that the state refuses
/// is [`StepError::Rejected`].
///
/// The expressions that the input leads to evaluating share `budget` per field
/// (`limits.cel_budget`); one that could exceed it fails its step (or the instance, for
/// the output) permanently, with code `expression`.
pub fn transition(
    mut state: InstanceState,
    input: &Input,
    definition: &Definition,
    budget: Budget,
) -> Result<Transition, StepError> {
    let effects = transition_in_place(&mut state, input, definition, budget)?;
    Ok(Transition {
        state,
        events: effects.events,
        commands: effects.commands,
    })
}

/// [`transition`] on a borrowed state, for the runtime's cache.
///
/// A rejected input leaves the state untouched. Any other error may leave it half
/// changed: the caller must discard it and reload the instance.
pub fn transition_in_place(
    state: &mut InstanceState,
    input: &Input,
    definition: &Definition,
    budget: Budget,
) -> Result<Effects, StepError> {
    let facts = facts_for_input(state, input, definition, budget)?;
    // A migration's event, and all that follows it, fold with the version it moves to.
    let definition = recovery::definition_after(input, definition);
    let mut effects = Effects::default();
    if facts.is_empty() {
        return Ok(effects);
    }
    let mut frontier = derive::Frontier::default();
    for fact in facts {
        for body in repeat::expand(state, definition, input.at, fact, budget) {
            frontier.note(&body, definition);
            let event = Event {
                at: input.at,
                actor: input.actor.clone(),
                body,
            };
            effects.record(state, event, definition)?;
        }
    }
    while let Some(derived) = derive::next_event(state, definition, input.at, &frontier, budget) {
        for body in repeat::expand(state, definition, input.at, derived, budget) {
            frontier.note(&body, definition);
            effects.record(state, Event::system(input.at, body), definition)?;
        }
    }
    Ok(effects)
}

/// Folds one event into the state; returns the new state and the commands it causes.
pub fn apply(
    mut state: InstanceState,
    event: &Event,
    definition: &Definition,
) -> Result<(InstanceState, Vec<Command>), StepError> {
    let commands = apply_in_place(&mut state, event, definition)?;
    Ok((state, commands))
}

/// What folding one event works on: the state, the event, its definition, and the
/// commands the event causes.
struct Fold<'a> {
    state: &'a mut InstanceState,
    event: &'a Event,
    definition: &'a Definition,
    commands: Vec<Command>,
}

impl Fold<'_> {
    /// The event is not allowed: `detail` says what the state was.
    fn invalid(&self, detail: &str) -> StepError {
        lookups::invalid(&self.state.id, self.event, detail)
    }
}

/// [`apply`] on a borrowed state. On error the state may be half changed.
pub fn apply_in_place(
    state: &mut InstanceState,
    event: &Event,
    definition: &Definition,
) -> Result<Vec<Command>, StepError> {
    let fold = &mut Fold {
        state,
        event,
        definition,
        commands: Vec::new(),
    };
    match &event.body {
        EventBody::InstanceStarted {
            definition,
            version,
            input,
            history_version,
            parent,
        } => instance::started(fold, definition, *version, input, *history_version)
            .map(|()| child::link_parent(fold.state, parent)),
        EventBody::StepScheduled {
            step,
            attempt,
            item,
            arguments,
            items,
            wake_at,
            timeout_at,
        } => step::scheduled(
            fold,
            step,
            *attempt,
            *item,
            arguments,
            items,
            *wake_at,
            *timeout_at,
        ),
        EventBody::StepStarted {
            step,
            attempt,
            item,
        } => step::started(fold, step, *attempt, *item),
        EventBody::StepSucceeded {
            step,
            attempt,
            item: Some(item),
            output,
        } => step::item_succeeded(fold, step, *attempt, *item, output),
        EventBody::StepSucceeded {
            step,
            attempt,
            item: None,
            output,
        } => step::succeeded(fold, step, *attempt, output),
        EventBody::StepRetryScheduled {
            step,
            attempt,
            item,
            error,
            fire_at,
            compensation: false,
        } => step::retry_scheduled(fold, step, *attempt, *item, error, *fire_at),
        EventBody::StepRetryScheduled {
            step,
            attempt,
            item,
            error,
            fire_at,
            compensation: true,
        } => compensation::retry_scheduled(fold, step, *attempt, *item, error, *fire_at),
        EventBody::StepFailed {
            step,
            attempt,
            item: Some(item),
            error,
        } => step::item_failed(fold, step, *attempt, *item, error),
        EventBody::StepFailed {
            step,
            attempt,
            item: None,
            error,
        } => step::failed(fold, step, *attempt, error),
        EventBody::StepSkipped { step, reason, .. } => step::skipped(fold, step, reason),
        EventBody::TimerFired { timer } => timer::fired(fold, timer),
        EventBody::CompensationStarted {
            step,
            attempt,
            item,
            arguments,
        } => compensation::started(fold, step, *attempt, *item, arguments),
        EventBody::CompensationSucceeded {
            step,
            attempt,
            item,
            ..
        } => compensation::finished(fold, step, *attempt, *item, false),
        EventBody::CompensationFailed {
            step,
            attempt,
            item,
            ..
        } => compensation::finished(fold, step, *attempt, *item, true),
        EventBody::StepRetryRequested { step, attempt } => {
            instance::retry_requested(fold, step, *attempt)
        }
        EventBody::ApprovalRequested {
            step,
            attempt,
            item,
            title,
            users,
            groups,
            quorum,
            due_at,
            artifacts,
        } => approval::requested(
            fold, step, *attempt, *item, title, users, groups, *quorum, *due_at, artifacts,
        ),
        EventBody::ApprovalDecided {
            step,
            attempt,
            item,
            user,
            decision,
            comment,
            data,
            ..
        } => approval::decided(fold, step, *attempt, *item, user, *decision, comment, data),
        EventBody::ApprovalDelegated {
            step,
            attempt,
            item,
            from,
            to,
        } => approval::delegated(fold, step, *attempt, *item, from, to),
        EventBody::ApprovalEscalated {
            step,
            attempt,
            item,
            level,
            users,
            groups,
            due_at,
        } => approval::escalated(fold, step, *attempt, *item, *level, users, groups, *due_at),
        EventBody::SignalReceived { name, payload } => wait::signal_received(fold, name, payload),
        EventBody::InstanceCompleted { output } => instance::completed(fold, output),
        EventBody::InstanceFailed { error } => instance::failed(fold, error),
        EventBody::InstanceCancelled { reason } => instance::cancelled(fold, reason),
        EventBody::StepIterationSucceeded {
            step,
            iteration,
            output,
            ..
        } => repeat::iteration_succeeded(fold, step, *iteration, output),
        EventBody::StepRepeatScheduled {
            step,
            iteration,
            fire_at,
        } => repeat::repeat_scheduled(fold, step, *iteration, *fire_at),
        EventBody::ChildStarted {
            step,
            attempt,
            item,
            ..
        } => child::started(fold, step, *attempt, *item),
        EventBody::InstanceRerun {
            input,
            arguments,
            steps_reset,
            ..
        } => recovery::rerun_started(fold, input, arguments, steps_reset),
        EventBody::InstanceMigrated {
            from_version,
            to_version,
            mapping,
        } => recovery::migrated(fold, *from_version, *to_version, mapping),
    }?;
    repeat::after_event(fold);
    binding::after_event(fold);
    fold.state.updated_at = event.at;
    let commands = std::mem::take(&mut fold.commands);
    Ok(child::with_cancels(
        &fold.state.id,
        definition,
        event,
        commands,
    ))
}

/// What judging one input looks at: the state, the input, its definition and the
/// expression budget.
#[derive(Clone, Copy)]
struct Facts<'a> {
    state: &'a InstanceState,
    input: &'a Input,
    definition: &'a Definition,
    budget: Budget,
}

impl Facts<'_> {
    /// An operator's or user's request that the state refuses (a 409).
    fn rejected(&self, message: &str) -> StepError {
        StepError::Rejected {
            instance: self.state.id.clone(),
            message: message.to_owned(),
        }
    }
}

/// The events an input causes directly, before anything is derived.
fn facts_for_input(
    state: &InstanceState,
    input: &Input,
    definition: &Definition,
    budget: Budget,
) -> Result<Vec<EventBody>, StepError> {
    let facts = Facts {
        state,
        input,
        definition,
        budget,
    };
    if let InputBody::ActionStarted { work }
    | InputBody::ActionSucceeded { work, .. }
    | InputBody::ActionFailed { work, .. } = &input.body
        && repeat::is_stale_outcome(state, definition, work)
    {
        return Ok(Vec::new());
    }
    match &input.body {
        InputBody::Start { version, input } => instance::start(facts, *version, input),
        InputBody::ActionStarted { work } => step::action_started(facts, work),
        InputBody::ActionSucceeded { work, output } => step::action_succeeded(facts, work, output),
        InputBody::ActionFailed {
            work,
            error,
            retry_at,
        } => step::action_failed(facts, work, error, *retry_at),
        InputBody::TimerFired { timer } => timer::timer_fired(facts, timer),
        InputBody::Decide {
            step,
            attempt,
            item,
            user,
            groups,
            decision,
            comment,
            data,
        } => approval::decide(
            facts, step, *attempt, *item, user, groups, *decision, comment, data,
        ),
        InputBody::Delegate {
            step,
            attempt,
            item,
            from,
            groups,
            to,
        } => approval::delegate(facts, step, *attempt, *item, from, groups, to),
        InputBody::Signal {
            name,
            payload,
            correlated,
        } => wait::signal(facts, name, payload, *correlated),
        InputBody::Cancel { reason } => instance::cancel(facts, reason),
        InputBody::RetryStep { step } => instance::retry_step(facts, step),
        InputBody::StartChild {
            version,
            input,
            parent,
        } => child::start(facts, *version, input, parent),
        InputBody::ChildStarted {
            work,
            child,
            definition,
            version,
        } => child::child_started_facts(facts, work, child, definition, *version),
        InputBody::Rerun {
            from_step,
            input,
            arguments,
        } => recovery::rerun(facts, from_step, input, arguments),
        InputBody::Migrate {
            to_version,
            to,
            mapping,
        } => recovery::migrate(facts, *to_version, to, mapping),
    }
}
