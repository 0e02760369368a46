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
//! Allowed transitions (anything else is [`StepError::InvalidTransition`]):
//!
//! | event | from | to |
//! |---|---|---|
//! | `instance_started` | not started | running, every step pending |
//! | `step_scheduled` (step) | pending | active: action scheduled, fan-out with ready items, or sleep |
//! | `step_scheduled` (unit) | ready or retrying unit | scheduled unit |
//! | `step_started` | scheduled unit | running unit |
//! | `step_succeeded` (item) | in-flight item | succeeded item |
//! | `step_succeeded` (step) | in-flight action, fan-out with all items succeeded, sleep | succeeded |
//! | `step_retry_scheduled` | in-flight unit | retrying unit (timer started) |
//! | `step_failed` (item) | ready or in-flight item | failed item |
//! | `step_failed` (step) | pending or active | failed; unless `on_error: continue`, the instance compensates |
//! | `step_skipped` | pending | skipped |
//! | `timer_fired` | retrying unit, sleep | unchanged (the follow-up event moves it) |
//! | `compensation_started` | compensating, next completion or retrying compensation | compensation scheduled |
//! | `compensation_succeeded`, `compensation_failed` | compensation in flight | next compensation |
//! | `step_retry_requested` | failed instance (nothing compensated), failed step | running, step pending |
//! | `instance_completed` | running, every step finished | completed |
//! | `instance_failed` | compensating with nothing left, or running | failed |
//! | `instance_cancelled` | running or compensating | cancelled, active steps cancelled |
//! | `step_scheduled` (wait step) | pending | waiting for its signal (timeout timer started) |
//! | `signal_received` | running | signal kept; an active wait step for its name consumes it with `step_succeeded` |
//! | `step_succeeded` (wait step) | waiting, a kept signal of its name (consumed) or its timeout fired with `continue` | succeeded |
//! | `approval_requested` | pending approval step | waiting on the approval (due timer started) |
//! | `approval_decided`, `approval_delegated`, `approval_escalated` | waiting on a pending approval | same, approval changed (see [`crate::approval`]) |
//! | `step_succeeded` (approval step) | waiting on a settled approval, or its due fired with `approve`/`reject` | succeeded; output `{decision, user, comment, data}` |
//!
//! Inputs that users send ([`InputBody::Decide`], [`InputBody::Delegate`],
//! [`InputBody::Signal`]) are checked before any event is made: a closed approval or a
//! finished instance is [`StepError::Rejected`] (409), a user who may not decide is
//! [`StepError::Forbidden`] (403), data that violates the approval's form is
//! [`StepError::InvalidDecision`] (422). Signals are kept in the state until consumed, so
//! one sent before its wait step is reached is not lost.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::approval::{
    self, ApprovalState, ApprovalStatus, Decision, Delegation, Outcome, Verdict,
};
use crate::command::{Command, Dispatch, WorkKey};
use crate::definition::{
    Definition, OnApprovalTimeout, OnWaitTimeout, Sleep, StepDefinition, StepKind,
};
use crate::event::{ErrorInfo, Event, EventBody, TimerKey, TimerPurpose};
use crate::expr::{self, Scope};
use crate::id::{InstanceId, StepId};
use crate::state::{
    BufferedSignal, CompensationRun, Completion, InstanceState, Phase, StepState, Unit, Work,
};
use crate::status::InstanceStatus;

// Patterns naming every variant, for the last arm of a match whose earlier arms are
// guarded: the crate denies wildcard arms so that a new variant forces a review.
macro_rules! any_unit {
    () => {
        Unit::Ready { .. }
            | Unit::Scheduled { .. }
            | Unit::Running { .. }
            | Unit::Retrying { .. }
            | Unit::Succeeded { .. }
            | Unit::Failed { .. }
    };
}
macro_rules! any_step_state {
    () => {
        StepState::Pending { .. }
            | StepState::Active { .. }
            | StepState::Succeeded { .. }
            | StepState::Failed { .. }
            | StepState::Skipped { .. }
            | StepState::Cancelled { .. }
    };
}
macro_rules! any_phase {
    () => {
        Phase::NotStarted
            | Phase::Running
            | Phase::Compensating { .. }
            | Phase::Completed { .. }
            | Phase::Failed { .. }
            | Phase::Cancelled { .. }
    };
}

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
pub fn transition(
    mut state: InstanceState,
    input: &Input,
    definition: &Definition,
) -> Result<Transition, StepError> {
    let effects = transition_in_place(&mut state, input, definition)?;
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
) -> Result<Effects, StepError> {
    let facts = facts_for_input(state, input, definition)?;
    let mut effects = Effects::default();
    if facts.is_empty() {
        return Ok(effects);
    }
    for body in facts {
        let event = Event {
            at: input.at,
            actor: input.actor.clone(),
            body,
        };
        effects.record(state, event, definition)?;
    }
    while let Some(body) = next_event(state, definition, input.at) {
        effects.record(state, Event::system(input.at, body), definition)?;
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

/// [`apply`] on a borrowed state. On error the state may be half changed.
pub fn apply_in_place(
    state: &mut InstanceState,
    event: &Event,
    definition: &Definition,
) -> Result<Vec<Command>, StepError> {
    let mut commands = Vec::new();
    let invalid = |instance: &InstanceId, detail: &str| StepError::InvalidTransition {
        instance: instance.clone(),
        state: detail.to_owned(),
        event: event.body.type_and_data().0,
    };
    match &event.body {
        EventBody::InstanceStarted {
            definition: definition_id,
            version,
            input,
        } => {
            if state.phase != Phase::NotStarted {
                return Err(invalid(&state.id, "the instance has started already"));
            }
            state.definition = definition_id.clone();
            state.version = *version;
            state.input = input.clone();
            state.started_at = event.at;
            state.started_by = event.actor.clone();
            state.phase = Phase::Running;
            state.steps = definition
                .steps
                .iter()
                .map(|step| (step.id.clone(), StepState::Pending { attempt: 1 }))
                .collect();
        }
        EventBody::StepScheduled {
            step,
            attempt,
            item,
            arguments,
            items,
            wake_at,
            timeout_at,
        } => {
            require_running(state, event)?;
            let step_definition = step_definition(state, definition, step)?;
            let instance = state.id.clone();
            let step_state = step_state_mut(state, step)?;
            match (matches!(step_state, StepState::Pending { .. }), item) {
                (true, None) => {
                    if let Some(StepKind::Wait(wait)) = step_definition.kind() {
                        *step_state = StepState::Active {
                            work: Work::Wait {
                                attempt: *attempt,
                                signal: wait.signal.clone(),
                                timeout_at: *timeout_at,
                            },
                        };
                        if let Some(timeout_at) = timeout_at {
                            commands.push(Command::StartTimer {
                                timer: TimerKey {
                                    step: step.clone(),
                                    item: None,
                                    attempt: *attempt,
                                    purpose: TimerPurpose::WaitTimeout,
                                    level: None,
                                },
                                fire_at: *timeout_at,
                            });
                        }
                    } else if let Some(items) = items {
                        *step_state = StepState::Active {
                            work: Work::FanOut {
                                units: vec![Unit::Ready { attempt: *attempt }; items.len()],
                                items: items.clone(),
                            },
                        };
                    } else if let Some(wake_at) = wake_at {
                        *step_state = StepState::Active {
                            work: Work::Sleep { wake_at: *wake_at },
                        };
                        commands.push(Command::StartTimer {
                            timer: TimerKey {
                                step: step.clone(),
                                item: None,
                                attempt: *attempt,
                                purpose: TimerPurpose::Sleep,
                                level: None,
                            },
                            fire_at: *wake_at,
                        });
                    } else {
                        *step_state = StepState::Active {
                            work: Work::Action {
                                unit: Unit::Scheduled { attempt: *attempt },
                            },
                        };
                        commands.push(dispatch(
                            &instance,
                            step_definition,
                            None,
                            *attempt,
                            arguments,
                            false,
                        )?);
                    }
                }
                (_, item) => {
                    let unit = unit_mut(step_state, *item)
                        .ok_or_else(|| invalid(&instance, "the step has no such unit"))?;
                    match unit {
                        Unit::Ready { attempt: current }
                        | Unit::Retrying {
                            attempt: current, ..
                        } if current == attempt => {
                            *unit = Unit::Scheduled { attempt: *attempt };
                            commands.push(dispatch(
                                &instance,
                                step_definition,
                                *item,
                                *attempt,
                                arguments,
                                false,
                            )?);
                        }
                        any_unit!() => {
                            return Err(invalid(
                                &instance,
                                "the unit is not ready for this attempt",
                            ));
                        }
                    }
                }
            }
        }
        EventBody::StepStarted {
            step,
            attempt,
            item,
        } => {
            require_running(state, event)?;
            let instance = state.id.clone();
            let unit = step_state_mut(state, step)
                .ok()
                .and_then(|step_state| unit_mut(step_state, *item));
            match unit {
                Some(unit) if *unit == (Unit::Scheduled { attempt: *attempt }) => {
                    *unit = Unit::Running {
                        attempt: *attempt,
                        started_at: event.at,
                    };
                }
                _ => {
                    return Err(invalid(
                        &instance,
                        "the unit is not scheduled for this attempt",
                    ));
                }
            }
        }
        EventBody::StepSucceeded {
            step,
            attempt,
            item: Some(item),
            output,
        } => {
            require_running(state, event)?;
            let instance = state.id.clone();
            let step_state = step_state_mut(state, step)?;
            let unit = match step_state {
                StepState::Active {
                    work: Work::FanOut { units, .. },
                } => units.get_mut(*item as usize),
                any_step_state!() => None,
            };
            match unit {
                Some(unit) if unit.is_in_flight() && unit.attempt() == *attempt => {
                    *unit = Unit::Succeeded {
                        attempt: *attempt,
                        output: output.clone(),
                    };
                }
                _ => {
                    return Err(invalid(
                        &instance,
                        "the item is not in flight for this attempt",
                    ));
                }
            }
            let keeps_output = step_definition(state, definition, step)?
                .compensate
                .is_some();
            state.completions.push(Completion {
                step: step.clone(),
                item: Some(*item),
                output: if keeps_output {
                    output.clone()
                } else {
                    Value::Null
                },
            });
        }
        EventBody::StepSucceeded {
            step,
            attempt,
            item: None,
            output,
        } => {
            require_running(state, event)?;
            let instance = state.id.clone();
            let step_state = step_state_mut(state, step)?;
            let (attempts, is_single_action) = match step_state {
                StepState::Active {
                    work: Work::Action { unit },
                } if unit.is_in_flight() && unit.attempt() == *attempt => (*attempt, true),
                StepState::Active {
                    work: Work::FanOut { units, .. },
                } if units
                    .iter()
                    .all(|unit| matches!(unit, Unit::Succeeded { .. })) =>
                {
                    (
                        units.iter().map(Unit::attempt).max().unwrap_or(*attempt),
                        false,
                    )
                }
                StepState::Active {
                    work: Work::Sleep { .. },
                } => (*attempt, false),
                StepState::Active {
                    work:
                        Work::Approval {
                            attempt: current, ..
                        }
                        | Work::Wait {
                            attempt: current, ..
                        },
                } if *current == *attempt => (*attempt, false),
                any_step_state!() => {
                    return Err(invalid(
                        &instance,
                        "the step cannot succeed in its current state",
                    ));
                }
            };
            commands.extend(abandon_step(step, step_state));
            if let StepState::Active {
                work: Work::Wait { signal, .. },
            } = step_state
            {
                // A wait step succeeds either by consuming the oldest kept signal of its
                // name, or by timing out with `on_timeout: continue` when none is kept (a
                // kept signal is consumed as soon as it or the step arrives, so none can
                // be kept when the timeout fires).
                let signal = signal.clone();
                if let Some(position) = state.signals.iter().position(|kept| kept.name == signal) {
                    state.signals.remove(position);
                }
            }
            let step_state = step_state_mut(state, step)?;
            *step_state = StepState::Succeeded {
                output: output.clone(),
                attempts,
            };
            if is_single_action {
                state.completions.push(Completion {
                    step: step.clone(),
                    item: None,
                    output: Value::Null,
                });
            }
            if let Some(approval) = state.approvals.get_mut(step)
                && approval.status == ApprovalStatus::Pending
            {
                let outcome: Option<Outcome> = serde_json::from_value(output.clone()).ok();
                approval.status = match outcome.as_ref().map(|outcome| outcome.decision.as_str()) {
                    Some("approved") => ApprovalStatus::Approved,
                    Some(_) | None => ApprovalStatus::Rejected,
                };
                approval.outcome = outcome;
            }
        }
        EventBody::StepRetryScheduled {
            step,
            attempt,
            item,
            error,
            fire_at,
            compensation: false,
        } => {
            require_running(state, event)?;
            let instance = state.id.clone();
            let unit = step_state_mut(state, step)
                .ok()
                .and_then(|step_state| unit_mut(step_state, *item));
            match unit {
                Some(unit) if unit.is_in_flight() && unit.attempt() == *attempt => {
                    *unit = Unit::Retrying {
                        attempt: attempt + 1,
                        fire_at: *fire_at,
                        error: error.clone(),
                    };
                }
                _ => {
                    return Err(invalid(
                        &instance,
                        "the unit is not in flight for this attempt",
                    ));
                }
            }
            commands.push(Command::StartTimer {
                timer: TimerKey {
                    step: step.clone(),
                    item: *item,
                    attempt: attempt + 1,
                    purpose: TimerPurpose::Retry,
                    level: None,
                },
                fire_at: *fire_at,
            });
        }
        EventBody::StepRetryScheduled {
            step,
            attempt,
            item,
            error,
            fire_at,
            compensation: true,
        } => {
            match &mut state.phase {
                Phase::Compensating {
                    current: Some(run), ..
                } if run.target.is(step, *item)
                    && run.unit.is_in_flight()
                    && run.unit.attempt() == *attempt =>
                {
                    run.unit = Unit::Retrying {
                        attempt: attempt + 1,
                        fire_at: *fire_at,
                        error: error.clone(),
                    };
                }
                any_phase!() => {
                    return Err(invalid(&state.id, "no such compensation is in flight"));
                }
            }
            commands.push(Command::StartTimer {
                timer: TimerKey {
                    step: step.clone(),
                    item: *item,
                    attempt: attempt + 1,
                    purpose: TimerPurpose::CompensationRetry,
                    level: None,
                },
                fire_at: *fire_at,
            });
        }
        EventBody::StepFailed {
            step,
            attempt,
            item: Some(item),
            error,
        } => {
            require_running(state, event)?;
            let instance = state.id.clone();
            let step_state = step_state_mut(state, step)?;
            let unit = match step_state {
                StepState::Active {
                    work: Work::FanOut { units, .. },
                } => units.get_mut(*item as usize),
                any_step_state!() => None,
            };
            match unit {
                Some(unit)
                    if unit.attempt() == *attempt
                        && (unit.is_in_flight() || matches!(unit, Unit::Ready { .. })) =>
                {
                    *unit = Unit::Failed {
                        attempt: *attempt,
                        error: error.clone(),
                    };
                }
                _ => {
                    return Err(invalid(
                        &instance,
                        "the item is not in flight for this attempt",
                    ));
                }
            }
        }
        EventBody::StepFailed {
            step,
            attempt,
            item: None,
            error,
        } => {
            require_running(state, event)?;
            let continued = step_definition(state, definition, step)?.on_error
                == crate::definition::OnError::Continue;
            let instance = state.id.clone();
            let step_state = step_state_mut(state, step)?;
            let attempts = match step_state {
                StepState::Pending { .. } => *attempt,
                StepState::Active { .. } => step_state.attempts().max(*attempt),
                StepState::Succeeded { .. }
                | StepState::Failed { .. }
                | StepState::Skipped { .. }
                | StepState::Cancelled { .. } => {
                    return Err(invalid(&instance, "the step has finished already"));
                }
            };
            commands.extend(abandon_step(step, step_state));
            *step_state = StepState::Failed {
                error: error.clone(),
                attempts,
                continued,
            };
            close_approval(state, step, ApprovalStatus::Failed);
            if !continued {
                commands.extend(cancel_active_steps(state));
                let remaining = compensation_queue(state, definition);
                state.phase = Phase::Compensating {
                    error: error.clone(),
                    remaining,
                    current: None,
                };
            }
        }
        EventBody::StepSkipped { step, reason, .. } => {
            require_running(state, event)?;
            let instance = state.id.clone();
            let step_state = step_state_mut(state, step)?;
            if !matches!(step_state, StepState::Pending { .. }) {
                return Err(invalid(&instance, "the step is not pending"));
            }
            *step_state = StepState::Skipped {
                reason: reason.clone(),
            };
        }
        EventBody::TimerFired { timer } => {
            if !timer_is_current(state, timer) {
                return Err(invalid(&state.id, "the timer is not current"));
            }
        }
        EventBody::CompensationStarted {
            step,
            attempt,
            item,
            arguments,
        } => {
            let instance = state.id.clone();
            let step_definition = step_definition(state, definition, step)?;
            match &mut state.phase {
                Phase::Compensating {
                    remaining,
                    current: current @ None,
                    ..
                } if remaining.first().is_some_and(|next| next.is(step, *item))
                    && *attempt == 1 =>
                {
                    let target = remaining.remove(0);
                    *current = Some(CompensationRun {
                        target,
                        unit: Unit::Scheduled { attempt: 1 },
                    });
                }
                Phase::Compensating {
                    current: Some(run), ..
                } if run.target.is(step, *item)
                    && matches!(run.unit, Unit::Retrying { attempt: next, .. } if next == *attempt) =>
                {
                    run.unit = Unit::Scheduled { attempt: *attempt };
                }
                any_phase!() => return Err(invalid(&state.id, "this compensation is not next")),
            }
            commands.push(dispatch(
                &instance,
                step_definition,
                *item,
                *attempt,
                &Some(arguments.clone()),
                true,
            )?);
        }
        EventBody::CompensationSucceeded {
            step,
            attempt,
            item,
            ..
        }
        | EventBody::CompensationFailed {
            step,
            attempt,
            item,
            ..
        } => {
            let failed_before_start = matches!(event.body, EventBody::CompensationFailed { .. });
            match &mut state.phase {
                Phase::Compensating { current, .. }
                    if current.as_ref().is_some_and(|run| {
                        run.target.is(step, *item)
                            && run.unit.is_in_flight()
                            && run.unit.attempt() == *attempt
                    }) =>
                {
                    *current = None;
                }
                Phase::Compensating {
                    remaining,
                    current: None,
                    ..
                } if failed_before_start
                    && remaining.first().is_some_and(|next| next.is(step, *item)) =>
                {
                    remaining.remove(0);
                }
                any_phase!() => {
                    return Err(invalid(&state.id, "no such compensation is in flight"));
                }
            }
        }
        EventBody::StepRetryRequested { step, attempt } => {
            if !matches!(
                state.phase,
                Phase::Failed {
                    compensated: false,
                    ..
                }
            ) {
                return Err(invalid(
                    &state.id,
                    "only a failed instance with nothing compensated can retry a step",
                ));
            }
            let instance = state.id.clone();
            let step_state = step_state_mut(state, step)?;
            if !matches!(step_state, StepState::Failed { .. }) {
                return Err(invalid(&instance, "the step has not failed"));
            }
            *step_state = StepState::Pending { attempt: *attempt };
            for other in state.steps.values_mut() {
                if let StepState::Cancelled { attempts } = other {
                    *other = StepState::Pending {
                        attempt: *attempts + 1,
                    };
                }
            }
            state.phase = Phase::Running;
        }
        EventBody::ApprovalRequested {
            step,
            attempt,
            title,
            users,
            groups,
            quorum,
            due_at,
        } => {
            require_running(state, event)?;
            let instance = state.id.clone();
            let step_state = step_state_mut(state, step)?;
            if !matches!(step_state, StepState::Pending { .. }) {
                return Err(invalid(&instance, "the step is not pending"));
            }
            *step_state = StepState::Active {
                work: Work::Approval {
                    attempt: *attempt,
                    level: 0,
                },
            };
            state.approvals.insert(
                step.clone(),
                ApprovalState {
                    attempt: *attempt,
                    title: title.clone(),
                    users: users.clone(),
                    groups: groups.clone(),
                    quorum: *quorum,
                    level: 0,
                    due_at: *due_at,
                    requested_at: event.at,
                    decisions: Vec::new(),
                    delegations: Vec::new(),
                    status: ApprovalStatus::Pending,
                    outcome: None,
                },
            );
            if let Some(due_at) = due_at {
                commands.push(approval_due_timer(step, *attempt, 0, *due_at));
            }
        }
        EventBody::ApprovalDecided {
            step,
            attempt,
            user,
            decision,
            comment,
            data,
        } => {
            require_running(state, event)?;
            let instance = state.id.clone();
            match state.approvals.get_mut(step) {
                Some(approval)
                    if approval.attempt == *attempt
                        && approval.status == ApprovalStatus::Pending
                        && !approval.has_decided(user) =>
                {
                    approval.decisions.push(Decision {
                        user: user.clone(),
                        decision: *decision,
                        comment: comment.clone(),
                        data: data.clone(),
                        at: event.at,
                    });
                }
                Some(_) | None => {
                    return Err(invalid(&instance, "no open approval takes this decision"));
                }
            }
        }
        EventBody::ApprovalDelegated {
            step,
            attempt,
            from,
            to,
        } => {
            require_running(state, event)?;
            let instance = state.id.clone();
            match state.approvals.get_mut(step) {
                Some(approval)
                    if approval.attempt == *attempt
                        && approval.status == ApprovalStatus::Pending =>
                {
                    approval.delegations.push(Delegation {
                        from: from.clone(),
                        to: to.clone(),
                        at: event.at,
                    });
                    if !approval.users.contains(to) {
                        approval.users.push(to.clone());
                    }
                }
                Some(_) | None => {
                    return Err(invalid(&instance, "no open approval takes this delegation"));
                }
            }
        }
        EventBody::ApprovalEscalated {
            step,
            attempt,
            level,
            users,
            groups,
            due_at,
        } => {
            require_running(state, event)?;
            let instance = state.id.clone();
            match state.steps.get_mut(step) {
                Some(StepState::Active {
                    work:
                        Work::Approval {
                            attempt: current,
                            level: current_level,
                        },
                }) if *current == *attempt && *current_level + 1 == *level => {
                    *current_level = *level;
                }
                Some(_) | None => {
                    return Err(invalid(
                        &instance,
                        "the approval is not at the level before",
                    ));
                }
            }
            let Some(approval) = state.approvals.get_mut(step) else {
                return Err(invalid(&instance, "the step has no approval"));
            };
            approval.level = *level;
            approval.users = users.clone();
            approval.groups = groups.clone();
            approval.due_at = *due_at;
            if let Some(due_at) = due_at {
                commands.push(approval_due_timer(step, *attempt, *level, *due_at));
            }
        }
        EventBody::SignalReceived { name, payload } => {
            require_running(state, event)?;
            state.signals.push(BufferedSignal {
                name: name.clone(),
                payload: payload.clone(),
                received_at: event.at,
                actor: event.actor.clone(),
            });
        }
        EventBody::InstanceCompleted { output } => {
            require_running(state, event)?;
            if !state.steps.values().all(StepState::lets_dependents_run) {
                return Err(invalid(&state.id, "some steps have not finished"));
            }
            state.phase = Phase::Completed {
                output: output.clone(),
            };
            commands.push(Command::Finish {
                status: InstanceStatus::Completed,
            });
        }
        EventBody::InstanceFailed { error } => {
            let compensated = match &state.phase {
                Phase::Running => false,
                Phase::Compensating {
                    remaining, current, ..
                } if remaining.is_empty() && current.is_none() => {
                    // The queue built at failure time is rebuilt by the same rule from the
                    // unchanged completions: anything in it was compensated.
                    !compensation_queue(state, definition).is_empty()
                }
                Phase::NotStarted
                | Phase::Compensating { .. }
                | Phase::Completed { .. }
                | Phase::Failed { .. }
                | Phase::Cancelled { .. } => {
                    return Err(invalid(&state.id, "the instance cannot fail now"));
                }
            };
            commands.extend(cancel_active_steps(state));
            state.phase = Phase::Failed {
                error: error.clone(),
                compensated,
            };
            commands.push(Command::Finish {
                status: InstanceStatus::Failed,
            });
        }
        EventBody::InstanceCancelled { reason } => {
            match &state.phase {
                Phase::Running => {}
                Phase::Compensating { current, .. } => {
                    if let Some(run) = current
                        && run.unit.is_in_flight()
                    {
                        commands.push(Command::AbandonWork {
                            work: WorkKey {
                                step: run.target.step.clone(),
                                item: run.target.item,
                                attempt: run.unit.attempt(),
                                compensation: true,
                            },
                        });
                    }
                    if let Some(CompensationRun {
                        target,
                        unit: Unit::Retrying { attempt, .. },
                    }) = current
                    {
                        commands.push(Command::CancelTimer {
                            timer: TimerKey {
                                step: target.step.clone(),
                                item: target.item,
                                attempt: *attempt,
                                purpose: TimerPurpose::CompensationRetry,
                                level: None,
                            },
                        });
                    }
                }
                Phase::NotStarted
                | Phase::Completed { .. }
                | Phase::Failed { .. }
                | Phase::Cancelled { .. } => {
                    return Err(invalid(&state.id, "the instance is not running"));
                }
            }
            commands.extend(cancel_active_steps(state));
            state.phase = Phase::Cancelled {
                reason: reason.clone(),
            };
            commands.push(Command::Finish {
                status: InstanceStatus::Cancelled,
            });
        }
    }
    state.updated_at = event.at;
    Ok(commands)
}

fn approval_due_timer(step: &StepId, attempt: u32, level: u32, fire_at: DateTime<Utc>) -> Command {
    Command::StartTimer {
        timer: TimerKey {
            step: step.clone(),
            item: None,
            attempt,
            purpose: TimerPurpose::ApprovalDue,
            level: Some(level),
        },
        fire_at,
    }
}

fn require_running(state: &InstanceState, event: &Event) -> Result<(), StepError> {
    if state.phase == Phase::Running {
        Ok(())
    } else {
        Err(StepError::InvalidTransition {
            instance: state.id.clone(),
            state: format!("the instance is {}", state.status()),
            event: event.body.type_and_data().0,
        })
    }
}

fn step_definition<'d>(
    state: &InstanceState,
    definition: &'d Definition,
    step: &StepId,
) -> Result<&'d StepDefinition, StepError> {
    definition.step(step).ok_or_else(|| StepError::UnknownStep {
        instance: state.id.clone(),
        step: step.clone(),
    })
}

fn step_state_mut<'s>(
    state: &'s mut InstanceState,
    step: &StepId,
) -> Result<&'s mut StepState, StepError> {
    let instance = state.id.clone();
    state
        .steps
        .get_mut(step)
        .ok_or_else(|| StepError::UnknownStep {
            instance,
            step: step.clone(),
        })
}

fn unit_mut(step_state: &mut StepState, item: Option<u32>) -> Option<&mut Unit> {
    match (step_state, item) {
        (
            StepState::Active {
                work: Work::Action { unit },
            },
            None,
        ) => Some(unit),
        (
            StepState::Active {
                work: Work::FanOut { units, .. },
            },
            Some(item),
        ) => units.get_mut(item as usize),
        _ => None,
    }
}

fn unit_of<'s>(state: &'s InstanceState, step: &StepId, item: Option<u32>) -> Option<&'s Unit> {
    match (state.steps.get(step)?, item) {
        (
            StepState::Active {
                work: Work::Action { unit },
            },
            None,
        ) => Some(unit),
        (
            StepState::Active {
                work: Work::FanOut { units, .. },
            },
            Some(item),
        ) => units.get(item as usize),
        _ => None,
    }
}

fn dispatch(
    instance: &InstanceId,
    step: &StepDefinition,
    item: Option<u32>,
    attempt: u32,
    arguments: &Option<Value>,
    compensation: bool,
) -> Result<Command, StepError> {
    let action = if compensation {
        step.compensate
            .as_ref()
            .map(|compensate| compensate.action.clone())
    } else {
        step.action.clone()
    };
    let action = action.ok_or_else(|| StepError::InvalidTransition {
        instance: instance.clone(),
        state: format!("step \"{}\" has no action to dispatch", step.id),
        event: "step_scheduled".to_owned(),
    })?;
    let work = WorkKey {
        step: step.id.clone(),
        item,
        attempt,
        compensation,
    };
    Ok(Command::Dispatch(Dispatch {
        idempotency_key: work.idempotency_key(instance),
        work,
        action,
        arguments: arguments.clone().unwrap_or_else(|| json!({})),
        timeout: step.attempt_timeout(),
    }))
}

/// Commands that stop the outstanding work of one step.
fn abandon_step(step: &StepId, step_state: &StepState) -> Vec<Command> {
    let mut commands = Vec::new();
    let mut abandon_unit = |item: Option<u32>, unit: &Unit| match unit {
        Unit::Scheduled { attempt } | Unit::Running { attempt, .. } => {
            commands.push(Command::AbandonWork {
                work: WorkKey {
                    step: step.clone(),
                    item,
                    attempt: *attempt,
                    compensation: false,
                },
            })
        }
        Unit::Retrying { attempt, .. } => commands.push(Command::CancelTimer {
            timer: TimerKey {
                step: step.clone(),
                item,
                attempt: *attempt,
                purpose: TimerPurpose::Retry,
                level: None,
            },
        }),
        Unit::Ready { .. } | Unit::Succeeded { .. } | Unit::Failed { .. } => {}
    };
    if let StepState::Active { work } = step_state {
        match work {
            Work::Action { unit } => abandon_unit(None, unit),
            Work::FanOut { units, .. } => {
                for (index, unit) in units.iter().enumerate() {
                    abandon_unit(Some(index as u32), unit);
                }
            }
            Work::Sleep { .. } => commands.push(Command::CancelTimer {
                timer: TimerKey {
                    step: step.clone(),
                    item: None,
                    attempt: 1,
                    purpose: TimerPurpose::Sleep,
                    level: None,
                },
            }),
            Work::Approval { attempt, level } => commands.push(Command::CancelTimer {
                timer: TimerKey {
                    step: step.clone(),
                    item: None,
                    attempt: *attempt,
                    purpose: TimerPurpose::ApprovalDue,
                    level: Some(*level),
                },
            }),
            Work::Wait {
                attempt,
                timeout_at: Some(_),
                ..
            } => commands.push(Command::CancelTimer {
                timer: TimerKey {
                    step: step.clone(),
                    item: None,
                    attempt: *attempt,
                    purpose: TimerPurpose::WaitTimeout,
                    level: None,
                },
            }),
            Work::Wait {
                timeout_at: None, ..
            } => {}
        }
    }
    commands
}

/// Marks every active step cancelled and returns the commands that stop their work.
fn cancel_active_steps(state: &mut InstanceState) -> Vec<Command> {
    let mut commands = Vec::new();
    let mut cancelled = Vec::new();
    for (step, step_state) in state.steps.iter_mut() {
        if matches!(step_state, StepState::Active { .. }) {
            commands.extend(abandon_step(step, step_state));
            let attempts = step_state.attempts();
            *step_state = StepState::Cancelled { attempts };
            cancelled.push(step.clone());
        }
    }
    for step in &cancelled {
        close_approval(state, step, ApprovalStatus::Cancelled);
    }
    commands
}

/// Closes the approval of `step` with `status` if it is still pending.
fn close_approval(state: &mut InstanceState, step: &StepId, status: ApprovalStatus) {
    if let Some(approval) = state.approvals.get_mut(step)
        && approval.status == ApprovalStatus::Pending
    {
        approval.status = status;
    }
}

/// The open approval of `step` for `attempt`, or why there is none (a 409).
fn open_approval<'s>(
    state: &'s InstanceState,
    step: &StepId,
    attempt: u32,
) -> Result<&'s ApprovalState, String> {
    let approval = state
        .approvals
        .get(step)
        .filter(|approval| approval.attempt == attempt)
        .ok_or_else(|| format!("step \"{step}\" has no approval for attempt {attempt}"))?;
    if approval.status != ApprovalStatus::Pending {
        return Err(format!(
            "approval \"{step}\" is {} already",
            approval.status.as_str()
        ));
    }
    if state.phase != Phase::Running {
        return Err(format!(
            "the instance is {}; its approvals are closed",
            state.status()
        ));
    }
    Ok(approval)
}

/// Succeeded steps and items with a `compensate` action, latest completion first.
fn compensation_queue(state: &InstanceState, definition: &Definition) -> Vec<Completion> {
    state
        .completions
        .iter()
        .rev()
        .filter(|completion| {
            definition
                .step(&completion.step)
                .is_some_and(|step| step.compensate.is_some())
        })
        .cloned()
        .collect()
}

fn timer_is_current(state: &InstanceState, timer: &TimerKey) -> bool {
    match timer.purpose {
        TimerPurpose::Retry => {
            state.phase == Phase::Running
                && matches!(
                    unit_of(state, &timer.step, timer.item),
                    Some(Unit::Retrying { attempt, .. }) if *attempt == timer.attempt
                )
        }
        TimerPurpose::Sleep => {
            state.phase == Phase::Running
                && matches!(
                    state.steps.get(&timer.step),
                    Some(StepState::Active {
                        work: Work::Sleep { .. }
                    })
                )
        }
        TimerPurpose::ApprovalDue => {
            state.phase == Phase::Running
                && matches!(
                    state.steps.get(&timer.step),
                    Some(StepState::Active {
                        work: Work::Approval { attempt, level }
                    }) if *attempt == timer.attempt && Some(*level) == timer.level
                )
        }
        TimerPurpose::WaitTimeout => {
            state.phase == Phase::Running
                && matches!(
                    state.steps.get(&timer.step),
                    Some(StepState::Active {
                        work: Work::Wait { attempt, timeout_at: Some(_), .. }
                    }) if *attempt == timer.attempt
                )
        }
        TimerPurpose::CompensationRetry => matches!(
            &state.phase,
            Phase::Compensating { current: Some(run), .. }
                if run.target.step == timer.step
                    && run.target.item == timer.item
                    && matches!(run.unit, Unit::Retrying { attempt, .. } if attempt == timer.attempt)
        ),
    }
}

fn unknown_step(state: &InstanceState, step: &StepId) -> StepError {
    StepError::UnknownStep {
        instance: state.id.clone(),
        step: step.clone(),
    }
}

fn refused(state: &InstanceState, refusal: approval::Refusal) -> StepError {
    match refusal {
        approval::Refusal::Forbidden(message) => StepError::Forbidden {
            instance: state.id.clone(),
            message,
        },
        approval::Refusal::Conflict(message) => StepError::Rejected {
            instance: state.id.clone(),
            message,
        },
    }
}

/// The `approval` block of `step`, or a rejection naming the step when it has none.
fn approval_definition<'d>(
    state: &InstanceState,
    definition: &'d Definition,
    step: &StepId,
) -> Result<&'d crate::definition::Approval, StepError> {
    match definition.step(step).and_then(StepDefinition::kind) {
        Some(StepKind::Approval(approval)) => Ok(approval),
        Some(_) | None => Err(StepError::Rejected {
            instance: state.id.clone(),
            message: format!("step \"{step}\" is not an approval step"),
        }),
    }
}

/// Whether an active wait step waits for `name` and its `correlate` (if any) holds with
/// `event` bound to `payload`.
pub fn waits_for(
    state: &InstanceState,
    definition: &Definition,
    name: &str,
    payload: &Value,
) -> bool {
    definition.steps.iter().any(|step| {
        let Some(StepKind::Wait(wait)) = step.kind() else {
            return false;
        };
        let active = matches!(
            state.steps.get(&step.id),
            Some(StepState::Active { work: Work::Wait { signal, .. } }) if signal == name
        );
        active
            && match &wait.correlate {
                None => true,
                Some(correlate) => {
                    let scope = scope(state, None, None).with("event", payload.clone());
                    expr::condition(correlate, &scope).unwrap_or(false)
                }
            }
    })
}

/// What an approval's due passing does, by its `on_timeout`.
fn approval_timed_out(
    state: &InstanceState,
    definition: &Definition,
    timer: &TimerKey,
    at: DateTime<Utc>,
) -> Result<EventBody, StepError> {
    let approval_definition = approval_definition(state, definition, &timer.step)?;
    let system_outcome = |decision: &str| EventBody::StepSucceeded {
        step: timer.step.clone(),
        attempt: timer.attempt,
        item: None,
        output: json!(Outcome {
            decision: decision.to_owned(),
            user: crate::event::SYSTEM_ACTOR.to_owned(),
            comment: Some(format!(
                "{decision} automatically: the approval was not decided in time"
            )),
            data: Value::Null,
        }),
    };
    let fail = |message: String| EventBody::StepFailed {
        step: timer.step.clone(),
        attempt: timer.attempt,
        item: None,
        error: ErrorInfo::permanent("timeout", message),
    };
    Ok(match approval_definition.on_timeout() {
        OnApprovalTimeout::Approve => system_outcome("approved"),
        OnApprovalTimeout::Reject => system_outcome("rejected"),
        OnApprovalTimeout::Fail => fail(format!(
            "approval \"{}\" was not decided by its due time",
            timer.step
        )),
        OnApprovalTimeout::Escalate => {
            let level = timer.level.unwrap_or(0) + 1;
            match approval_definition
                .escalation_levels()
                .get(level as usize - 1)
            {
                None => fail(format!(
                    "approval \"{}\" was not decided by its due time at the last escalation level",
                    timer.step
                )),
                Some(next) => {
                    let due = next.due.or(approval_definition.due);
                    let due_at = due
                        .map(|due| {
                            chrono::Duration::from_std(due)
                                .map(|due| at + due)
                                .map_err(|error| format!("due out of range: {error}"))
                        })
                        .transpose();
                    match due_at {
                        Ok(due_at) => EventBody::ApprovalEscalated {
                            step: timer.step.clone(),
                            attempt: timer.attempt,
                            level,
                            users: next.users.clone(),
                            groups: next.groups.clone(),
                            due_at,
                        },
                        Err(message) => fail(format!("approval \"{}\": {message}", timer.step)),
                    }
                }
            }
        }
    })
}

/// The events an input causes directly, before anything is derived.
fn facts_for_input(
    state: &InstanceState,
    input: &Input,
    definition: &Definition,
) -> Result<Vec<EventBody>, StepError> {
    let rejected = |message: &str| StepError::Rejected {
        instance: state.id.clone(),
        message: message.to_owned(),
    };
    match &input.body {
        InputBody::Start { version, input } => {
            if state.phase != Phase::NotStarted {
                return Err(rejected("the instance has started already"));
            }
            Ok(vec![EventBody::InstanceStarted {
                definition: definition.id.clone(),
                version: *version,
                input: input.clone(),
            }])
        }
        InputBody::ActionStarted { work } => {
            if work.compensation || state.phase != Phase::Running {
                return Ok(Vec::new());
            }
            match unit_of(state, &work.step, work.item) {
                Some(Unit::Scheduled { attempt }) if *attempt == work.attempt => {
                    Ok(vec![EventBody::StepStarted {
                        step: work.step.clone(),
                        attempt: work.attempt,
                        item: work.item,
                    }])
                }
                _ => Ok(Vec::new()),
            }
        }
        InputBody::ActionSucceeded { work, output } => {
            if work.compensation {
                return Ok(if compensation_in_flight(state, work) {
                    vec![EventBody::CompensationSucceeded {
                        step: work.step.clone(),
                        attempt: work.attempt,
                        item: work.item,
                        output: output.clone(),
                    }]
                } else {
                    Vec::new()
                });
            }
            let mut facts = started_if_needed(state, work);
            if facts.is_none() {
                return Ok(Vec::new());
            }
            let facts = facts.get_or_insert_with(Vec::new);
            facts.push(EventBody::StepSucceeded {
                step: work.step.clone(),
                attempt: work.attempt,
                item: work.item,
                output: output.clone(),
            });
            Ok(std::mem::take(facts))
        }
        InputBody::ActionFailed {
            work,
            error,
            retry_at,
        } => {
            let Some(step) = definition.step(&work.step) else {
                return Ok(Vec::new());
            };
            let policy = step.retry_policy();
            let fire_at = retry_at.unwrap_or_else(|| {
                input.at
                    + chrono::Duration::from_std(policy.base_delay(work.attempt))
                        .unwrap_or(chrono::Duration::MAX)
            });
            if work.compensation {
                if !compensation_in_flight(state, work) {
                    return Ok(Vec::new());
                }
                return Ok(vec![if policy.allows_retry(work.attempt, error) {
                    EventBody::StepRetryScheduled {
                        step: work.step.clone(),
                        attempt: work.attempt,
                        item: work.item,
                        error: error.clone(),
                        fire_at,
                        compensation: true,
                    }
                } else {
                    EventBody::CompensationFailed {
                        step: work.step.clone(),
                        attempt: work.attempt,
                        item: work.item,
                        error: error.clone(),
                    }
                }]);
            }
            let Some(mut facts) = started_if_needed(state, work) else {
                return Ok(Vec::new());
            };
            facts.push(if policy.allows_retry(work.attempt, error) {
                EventBody::StepRetryScheduled {
                    step: work.step.clone(),
                    attempt: work.attempt,
                    item: work.item,
                    error: error.clone(),
                    fire_at,
                    compensation: false,
                }
            } else {
                EventBody::StepFailed {
                    step: work.step.clone(),
                    attempt: work.attempt,
                    item: work.item,
                    error: error.clone(),
                }
            });
            Ok(facts)
        }
        InputBody::TimerFired { timer } => {
            if !timer_is_current(state, timer) {
                return Ok(Vec::new());
            }
            let fired = EventBody::TimerFired {
                timer: timer.clone(),
            };
            let follow_up = match timer.purpose {
                TimerPurpose::Retry => {
                    schedule_unit(state, definition, &timer.step, timer.item, timer.attempt)
                }
                TimerPurpose::CompensationRetry => match &state.phase {
                    Phase::Compensating {
                        current: Some(run), ..
                    } => start_compensation(state, definition, &run.target, timer.attempt),
                    any_phase!() => return Ok(Vec::new()),
                },
                TimerPurpose::Sleep => {
                    let wake_at = match state.steps.get(&timer.step) {
                        Some(StepState::Active {
                            work: Work::Sleep { wake_at },
                        }) => *wake_at,
                        _ => input.at,
                    };
                    EventBody::StepSucceeded {
                        step: timer.step.clone(),
                        attempt: timer.attempt,
                        item: None,
                        output: json!({ "woke_at": crate::history::format_instant(wake_at) }),
                    }
                }
                TimerPurpose::ApprovalDue => {
                    approval_timed_out(state, definition, timer, input.at)?
                }
                TimerPurpose::WaitTimeout => {
                    let wait = match definition.step(&timer.step).and_then(StepDefinition::kind) {
                        Some(StepKind::Wait(wait)) => wait,
                        Some(_) | None => return Err(unknown_step(state, &timer.step)),
                    };
                    match wait.on_timeout() {
                        OnWaitTimeout::Continue => EventBody::StepSucceeded {
                            step: timer.step.clone(),
                            attempt: timer.attempt,
                            item: None,
                            output: json!({"signal": wait.signal, "payload": null, "timed_out": true}),
                        },
                        OnWaitTimeout::Fail => EventBody::StepFailed {
                            step: timer.step.clone(),
                            attempt: timer.attempt,
                            item: None,
                            error: ErrorInfo::permanent(
                                "timeout",
                                format!(
                                    "step \"{}\": no signal \"{}\" arrived before the timeout",
                                    timer.step, wait.signal
                                ),
                            ),
                        },
                    }
                }
            };
            Ok(vec![fired, follow_up])
        }
        InputBody::Decide {
            step,
            attempt,
            user,
            groups,
            decision,
            comment,
            data,
        } => {
            let approval_definition = approval_definition(state, definition, step)?;
            let approval =
                open_approval(state, step, *attempt).map_err(|message| rejected(&message))?;
            approval::check_decider(
                step,
                approval,
                approval_definition,
                &state.started_by,
                user,
                groups,
            )
            .map_err(|refusal| refused(state, refusal))?;
            if let Some(form) = &approval_definition.form
                && (*decision == Verdict::Approve || !data.is_null())
            {
                // Absent data is checked as an empty object, so that a form without
                // required fields accepts a decision that sends none.
                let checked = if data.is_null() {
                    json!({})
                } else {
                    data.clone()
                };
                let violations = approval::form_violations(form, &checked);
                if !violations.is_empty() {
                    return Err(StepError::InvalidDecision {
                        instance: state.id.clone(),
                        message: format!(
                            "the decision's data does not satisfy the form of approval \"{step}\""
                        ),
                        violations,
                    });
                }
            }
            Ok(vec![EventBody::ApprovalDecided {
                step: step.clone(),
                attempt: *attempt,
                user: user.clone(),
                decision: *decision,
                comment: comment.clone(),
                data: data.clone(),
            }])
        }
        InputBody::Delegate {
            step,
            attempt,
            from,
            groups,
            to,
        } => {
            let approval_definition = approval_definition(state, definition, step)?;
            let approval =
                open_approval(state, step, *attempt).map_err(|message| rejected(&message))?;
            approval::check_decider(
                step,
                approval,
                approval_definition,
                &state.started_by,
                from,
                groups,
            )
            .map_err(|refusal| refused(state, refusal))?;
            if to.trim().is_empty() || to == from {
                return Err(StepError::InvalidDecision {
                    instance: state.id.clone(),
                    message: format!("approval \"{step}\": delegate to another user"),
                    violations: vec![format!("to: {to:?} is not another user")],
                });
            }
            if *to == state.started_by && !approval_definition.allow_self_approval {
                return Err(StepError::Forbidden {
                    instance: state.id.clone(),
                    message: format!(
                        "user \"{to}\" started the instance and may not receive its approval \"{step}\""
                    ),
                });
            }
            if approval.has_decided(to) {
                return Err(rejected(&format!(
                    "user \"{to}\" has decided approval \"{step}\" already"
                )));
            }
            Ok(vec![EventBody::ApprovalDelegated {
                step: step.clone(),
                attempt: *attempt,
                from: from.clone(),
                to: to.clone(),
            }])
        }
        InputBody::Signal {
            name,
            payload,
            correlated,
        } => {
            if state.phase != Phase::Running {
                return Err(rejected(&format!(
                    "the instance is {}; it takes no signals",
                    state.status()
                )));
            }
            if *correlated && !waits_for(state, definition, name, payload) {
                return Err(rejected(&format!(
                    "no wait step waits for signal \"{name}\" matching this event"
                )));
            }
            Ok(vec![EventBody::SignalReceived {
                name: name.clone(),
                payload: payload.clone(),
            }])
        }
        InputBody::Cancel { reason } => match &state.phase {
            Phase::Running | Phase::Compensating { .. } => Ok(vec![EventBody::InstanceCancelled {
                reason: reason.clone(),
            }]),
            Phase::NotStarted => Err(rejected("the instance has not started")),
            Phase::Completed { .. } | Phase::Failed { .. } | Phase::Cancelled { .. } => Err(
                rejected(&format!("the instance is {} already", state.status())),
            ),
        },
        InputBody::RetryStep { step } => {
            match &state.phase {
                Phase::Failed {
                    compensated: false, ..
                } => {}
                Phase::Failed {
                    compensated: true, ..
                } => {
                    return Err(rejected(
                        "the instance's compensations have run; its steps cannot be retried",
                    ));
                }
                Phase::NotStarted
                | Phase::Running
                | Phase::Compensating { .. }
                | Phase::Completed { .. }
                | Phase::Cancelled { .. } => {
                    return Err(rejected(&format!(
                        "only a failed instance can retry a step; this one is {}",
                        state.status()
                    )));
                }
            }
            match state.steps.get(step) {
                Some(step_state @ StepState::Failed { .. }) => {
                    Ok(vec![EventBody::StepRetryRequested {
                        step: step.clone(),
                        attempt: step_state.attempts() + 1,
                    }])
                }
                Some(other) => Err(rejected(&format!(
                    "step \"{step}\" is {:?}, not failed",
                    other.status()
                ))),
                None => Err(StepError::UnknownStep {
                    instance: state.id.clone(),
                    step: step.clone(),
                }),
            }
        }
    }
}

/// `Some(vec![step_started])` when the unit was dispatched but its start is not recorded,
/// `Some(vec![])` when it is running, `None` when the outcome is stale.
fn started_if_needed(state: &InstanceState, work: &WorkKey) -> Option<Vec<EventBody>> {
    if state.phase != Phase::Running {
        return None;
    }
    match unit_of(state, &work.step, work.item)? {
        Unit::Scheduled { attempt } if *attempt == work.attempt => {
            Some(vec![EventBody::StepStarted {
                step: work.step.clone(),
                attempt: work.attempt,
                item: work.item,
            }])
        }
        Unit::Running { attempt, .. } if *attempt == work.attempt => Some(Vec::new()),
        any_unit!() => None,
    }
}

fn compensation_in_flight(state: &InstanceState, work: &WorkKey) -> bool {
    matches!(
        &state.phase,
        Phase::Compensating { current: Some(run), .. }
            if run.target.step == work.step
                && run.target.item == work.item
                && run.unit.is_in_flight()
                && run.unit.attempt() == work.attempt
    )
}

/// The next event that follows from the state alone, if any.
fn next_event(
    state: &InstanceState,
    definition: &Definition,
    at: DateTime<Utc>,
) -> Option<EventBody> {
    match &state.phase {
        Phase::NotStarted
        | Phase::Completed { .. }
        | Phase::Failed { .. }
        | Phase::Cancelled { .. } => None,
        Phase::Compensating {
            error,
            remaining,
            current,
        } => {
            if current.is_some() {
                return None;
            }
            match remaining.first() {
                Some(target) => Some(start_compensation(state, definition, target, 1)),
                None => Some(EventBody::InstanceFailed {
                    error: error.clone(),
                }),
            }
        }
        Phase::Running => {
            for step in &definition.steps {
                let Some(step_state) = state.steps.get(&step.id) else {
                    continue;
                };
                let next = match step_state {
                    StepState::Pending { attempt } => ready_step_event(state, step, *attempt, at),
                    StepState::Active { work } => active_step_event(state, definition, step, work),
                    StepState::Succeeded { .. }
                    | StepState::Failed { .. }
                    | StepState::Skipped { .. }
                    | StepState::Cancelled { .. } => None,
                };
                if next.is_some() {
                    return next;
                }
            }
            if state.steps.values().all(StepState::lets_dependents_run) {
                return Some(match &definition.output {
                    None => EventBody::InstanceCompleted {
                        output: Value::Null,
                    },
                    Some(template) => match expr::render(template, &scope(state, None, None)) {
                        Ok(output) => EventBody::InstanceCompleted { output },
                        Err(message) => EventBody::InstanceFailed {
                            error: ErrorInfo::permanent("expression", format!("output: {message}")),
                        },
                    },
                });
            }
            None
        }
    }
}

/// For a pending step whose needs have all finished: skip, fail or schedule it.
fn ready_step_event(
    state: &InstanceState,
    step: &StepDefinition,
    attempt: u32,
    at: DateTime<Utc>,
) -> Option<EventBody> {
    let mut all_skipped = !step.needs.is_empty();
    for need in &step.needs {
        let need_state = state.steps.get(need)?;
        if !need_state.lets_dependents_run() {
            return None;
        }
        all_skipped &= matches!(need_state, StepState::Skipped { .. });
    }
    let fail = |code: &str, message: String| EventBody::StepFailed {
        step: step.id.clone(),
        attempt,
        item: None,
        error: ErrorInfo::permanent(code, message),
    };
    if all_skipped {
        return Some(EventBody::StepSkipped {
            step: step.id.clone(),
            attempt,
            reason: "all needs were skipped".to_owned(),
        });
    }
    if let Some(when) = &step.when {
        match expr::condition(when, &scope(state, None, None)) {
            Ok(true) => {}
            Ok(false) => {
                return Some(EventBody::StepSkipped {
                    step: step.id.clone(),
                    attempt,
                    reason: "when was false".to_owned(),
                });
            }
            Err(message) => return Some(fail("expression", format!("when: {message}"))),
        }
    }
    let scheduled = |arguments, items, wake_at| EventBody::StepScheduled {
        step: step.id.clone(),
        attempt,
        item: None,
        arguments,
        items,
        wake_at,
        timeout_at: None,
    };
    match step.kind() {
        Some(StepKind::Action { with, .. }) => match &step.for_each {
            Some(for_each) => match resolve_items(state, for_each) {
                Ok(items) => Some(scheduled(None, Some(items), None)),
                Err(message) => Some(fail("expression", format!("for_each: {message}"))),
            },
            None => match render_arguments(state, with, None) {
                Ok(arguments) => Some(scheduled(Some(arguments), None, None)),
                Err(message) => Some(fail("expression", format!("with: {message}"))),
            },
        },
        Some(StepKind::Sleep(sleep)) => match wake_at(state, sleep, at) {
            Ok(wake_at) => Some(scheduled(None, None, Some(wake_at))),
            Err(message) => Some(fail("expression", format!("sleep: {message}"))),
        },
        Some(StepKind::Approval(approval)) => {
            let title = match expr::render(
                &Value::String(approval.title.clone()),
                &scope(state, None, None),
            ) {
                Ok(Value::String(title)) => title,
                Ok(other) => other.to_string(),
                Err(message) => {
                    return Some(fail("expression", format!("approval.title: {message}")));
                }
            };
            let due_at = match approval.due.map(chrono::Duration::from_std).transpose() {
                Ok(due) => due.map(|due| at + due),
                Err(error) => {
                    return Some(fail("invalid_definition", format!("approval.due: {error}")));
                }
            };
            Some(EventBody::ApprovalRequested {
                step: step.id.clone(),
                attempt,
                title,
                users: approval.users.clone(),
                groups: approval.groups.clone(),
                quorum: approval.quorum.max(1),
                due_at,
            })
        }
        Some(StepKind::Wait(wait)) => {
            let timeout_at = match wait.timeout.map(chrono::Duration::from_std).transpose() {
                Ok(timeout) => timeout.map(|timeout| at + timeout),
                Err(error) => {
                    return Some(fail("invalid_definition", format!("wait.timeout: {error}")));
                }
            };
            Some(EventBody::StepScheduled {
                step: step.id.clone(),
                attempt,
                item: None,
                arguments: None,
                items: None,
                wake_at: None,
                timeout_at,
            })
        }
        Some(StepKind::Workflow(_)) => Some(fail(
            "unsupported",
            "workflow steps are not supported by this engine version yet".to_owned(),
        )),
        None => Some(fail(
            "invalid_definition",
            "the step has no action, approval, wait, sleep or workflow".to_owned(),
        )),
    }
}

/// For an active fan-out: finish the step, or dispatch the next items within the limit.
fn active_step_event(
    state: &InstanceState,
    definition: &Definition,
    step: &StepDefinition,
    work: &Work,
) -> Option<EventBody> {
    let units = match work {
        Work::FanOut { units, .. } => units,
        Work::Approval { attempt, .. } => {
            let outcome = state.approvals.get(&step.id)?.settled()?;
            return Some(EventBody::StepSucceeded {
                step: step.id.clone(),
                attempt: *attempt,
                item: None,
                output: json!(outcome),
            });
        }
        Work::Wait {
            attempt, signal, ..
        } => {
            let kept = state.signals.iter().find(|kept| &kept.name == signal)?;
            return Some(EventBody::StepSucceeded {
                step: step.id.clone(),
                attempt: *attempt,
                item: None,
                output: json!({
                    "signal": signal,
                    "payload": kept.payload,
                    "timed_out": false,
                }),
            });
        }
        Work::Action { .. } | Work::Sleep { .. } => return None,
    };
    if let Some(Unit::Failed { attempt, error }) = units
        .iter()
        .find(|unit| matches!(unit, Unit::Failed { .. }))
    {
        return Some(EventBody::StepFailed {
            step: step.id.clone(),
            attempt: *attempt,
            item: None,
            error: error.clone(),
        });
    }
    if units
        .iter()
        .all(|unit| matches!(unit, Unit::Succeeded { .. }))
    {
        let outputs = units
            .iter()
            .map(|unit| match unit {
                Unit::Succeeded { output, .. } => output.clone(),
                Unit::Ready { .. }
                | Unit::Scheduled { .. }
                | Unit::Running { .. }
                | Unit::Retrying { .. }
                | Unit::Failed { .. } => Value::Null,
            })
            .collect();
        return Some(EventBody::StepSucceeded {
            step: step.id.clone(),
            attempt: units.iter().map(Unit::attempt).max().unwrap_or(1),
            item: None,
            output: Value::Array(outputs),
        });
    }
    let limit = step.concurrency.unwrap_or(u32::MAX).max(1) as usize;
    let busy = units.iter().filter(|unit| unit.holds_slot()).count();
    if busy >= limit {
        return None;
    }
    let (index, unit) = units
        .iter()
        .enumerate()
        .find(|(_, unit)| matches!(unit, Unit::Ready { .. }))?;
    Some(schedule_unit(
        state,
        definition,
        &step.id,
        Some(index as u32),
        unit.attempt(),
    ))
}

/// `step_scheduled` for one unit with its arguments rendered, or `step_failed` when the
/// arguments cannot be rendered.
fn schedule_unit(
    state: &InstanceState,
    definition: &Definition,
    step_id: &StepId,
    item: Option<u32>,
    attempt: u32,
) -> EventBody {
    let step = definition.step(step_id);
    let with = step.and_then(|step| step.with.as_ref());
    let item_value = item.and_then(|index| match state.steps.get(step_id) {
        Some(StepState::Active {
            work: Work::FanOut { items, .. },
        }) => items.get(index as usize).cloned(),
        _ => None,
    });
    match render_arguments(state, with, item_value.as_ref()) {
        Ok(arguments) => EventBody::StepScheduled {
            step: step_id.clone(),
            attempt,
            item,
            arguments: Some(arguments),
            items: None,
            wake_at: None,
            timeout_at: None,
        },
        Err(message) => EventBody::StepFailed {
            step: step_id.clone(),
            attempt,
            item,
            error: ErrorInfo::permanent("expression", format!("with: {message}")),
        },
    }
}

/// `compensation_started` with rendered arguments, or `compensation_failed` when they
/// cannot be rendered.
fn start_compensation(
    state: &InstanceState,
    definition: &Definition,
    target: &Completion,
    attempt: u32,
) -> EventBody {
    let compensate = definition
        .step(&target.step)
        .and_then(|step| step.compensate.as_ref());
    // A fan-out item keeps its own output in the completion (its step may have failed);
    // a single action's output is the step's.
    let output = match target.item {
        Some(_) => target.output.clone(),
        None => state
            .steps
            .get(&target.step)
            .and_then(StepState::output)
            .cloned()
            .unwrap_or(Value::Null),
    };
    let rendered = match compensate.and_then(|compensate| compensate.with.as_ref()) {
        None => Ok(json!({})),
        Some(template) => {
            let scope = scope(state, None, None).with("output", output);
            expr::render(template, &scope)
        }
    };
    match rendered {
        Ok(arguments) => EventBody::CompensationStarted {
            step: target.step.clone(),
            attempt,
            item: target.item,
            arguments,
        },
        Err(message) => EventBody::CompensationFailed {
            step: target.step.clone(),
            attempt,
            item: target.item,
            error: ErrorInfo::permanent("expression", format!("compensate.with: {message}")),
        },
    }
}

fn render_arguments(
    state: &InstanceState,
    with: Option<&Value>,
    item: Option<&Value>,
) -> Result<Value, String> {
    match with {
        None => Ok(json!({})),
        Some(template) if !has_expression(template) => Ok(template.clone()),
        Some(template) => expr::render(template, &scope(state, item, None)),
    }
}

fn resolve_items(state: &InstanceState, for_each: &Value) -> Result<Vec<Value>, String> {
    let resolved = if has_expression(for_each) {
        expr::render(for_each, &scope(state, None, None))?
    } else {
        for_each.clone()
    };
    match resolved {
        Value::Array(items) => Ok(items),
        other @ (Value::Null
        | Value::Bool(_)
        | Value::Number(_)
        | Value::String(_)
        | Value::Object(_)) => Err(format!("expected a list, got {other}")),
    }
}

fn wake_at(
    state: &InstanceState,
    sleep: &Sleep,
    at: DateTime<Utc>,
) -> Result<DateTime<Utc>, String> {
    match sleep {
        Sleep::For(duration) => chrono::Duration::from_std(*duration)
            .map(|duration| at + duration)
            .map_err(|error| format!("duration out of range: {error}")),
        Sleep::Until { until } => {
            let value = expr::render(&Value::String(until.clone()), &scope(state, None, None))?;
            let text = value
                .as_str()
                .ok_or_else(|| format!("until must be an RFC 3339 instant, got {value}"))?;
            DateTime::parse_from_rfc3339(text)
                .map(|instant| instant.with_timezone(&Utc))
                .map_err(|error| format!("until {text:?} is not an RFC 3339 instant: {error}"))
        }
    }
}

fn has_expression(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains("${"),
        Value::Array(items) => items.iter().any(has_expression),
        Value::Object(map) => map.values().any(has_expression),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// The names expressions see (DESIGN.md §2).
pub fn scope(state: &InstanceState, item: Option<&Value>, output: Option<&Value>) -> Scope {
    let steps: serde_json::Map<String, Value> = state
        .steps
        .iter()
        .map(|(id, step_state)| {
            let mut entry = serde_json::Map::new();
            entry.insert("status".to_owned(), json!(step_state.status()));
            entry.insert(
                "output".to_owned(),
                step_state.output().cloned().unwrap_or(Value::Null),
            );
            if let Some(error) = step_state.error() {
                entry.insert("error".to_owned(), json!(error));
            }
            if let Some(approval) = state.approvals.get(id) {
                let outcome = approval.outcome.as_ref();
                entry.insert(
                    "decision".to_owned(),
                    outcome.map_or(Value::Null, |outcome| json!(outcome.decision)),
                );
                entry.insert(
                    "comment".to_owned(),
                    outcome.map_or(Value::Null, |outcome| json!(outcome.comment)),
                );
                entry.insert(
                    "data".to_owned(),
                    outcome.map_or(Value::Null, |outcome| outcome.data.clone()),
                );
                entry.insert(
                    "user".to_owned(),
                    outcome.map_or(Value::Null, |outcome| json!(outcome.user)),
                );
            }
            (id.to_string(), Value::Object(entry))
        })
        .collect();
    let mut scope = Scope::new()
        .with("input", state.input.clone())
        .with("steps", Value::Object(steps))
        .with(
            "instance",
            json!({
                "id": state.id.as_str(),
                "started_at": crate::history::format_instant(state.started_at),
            }),
        );
    if let Some(item) = item {
        scope.set("item", item.clone());
    }
    if let Some(output) = output {
        scope.set("output", output.clone());
    }
    scope
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
