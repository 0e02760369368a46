//! The instance's lifecycle: start, completion, failure, cancel, and an operator's retry
//! of a failed step.
//!
//! | id | state | event or input | effect |
//! |---|---|---|---|
//! | `instance.start` | not started | input `Start` | `instance_started`, recording [`crate::history::HISTORY_VERSION`] |
//! | `instance.start.refused` | started | input `Start` | rejected |
//! | `instance.started` | not started | `instance_started` of a known history version | running, every step pending |
//! | `instance.completed` | running, every step finished | `instance_completed` | completed; `Finish` |
//! | `instance.failed.running` | running | `instance_failed` (its output did not render) | failed, nothing compensated, active steps cancelled; `Finish` |
//! | `instance.failed.compensating` | compensating, nothing left to compensate | `instance_failed` | failed, compensated if anything was; `Finish` |
//! | `instance.cancel` | running or compensating | input `Cancel` | `instance_cancelled` |
//! | `instance.cancel.refused` | not started or finished | input `Cancel` | rejected |
//! | `instance.cancelled.running` | running | `instance_cancelled` | cancelled; active steps cancelled (work abandoned, timers cancelled, approvals closed); `Finish` |
//! | `instance.cancelled.compensating` | compensating | `instance_cancelled` | the same, and the compensation in flight abandoned or its retry timer cancelled |
//! | `instance.retry_step` | failed with nothing compensated; the step failed the instance | input `RetryStep` | `step_retry_requested` with the step's next attempt |
//! | `instance.retry_step.refused` | anything else (a step that failed with `on_error: continue` included) | input `RetryStep` | rejected |
//! | `instance.retry_requested` | failed with nothing compensated; the step failed | `step_retry_requested` | running; the step pending with the new attempt, cancelled steps pending with their next |

use serde_json::Value;

use crate::command::{Command, WorkKey};
use crate::event::{ErrorInfo, EventBody, TimerKey};
use crate::history::HISTORY_VERSION;
use crate::id::{DefinitionId, StepId};
use crate::state::{CompensationRun, Phase, StepState, Unit};
use crate::status::InstanceStatus;

use super::coverage::took;
use super::lookups::{require_running, step_state_mut};
use super::{Facts, Fold, StepError, compensation, step};

/// Input `Start`.
pub(super) fn start(
    facts: Facts,
    version: u32,
    input: &Value,
) -> Result<Vec<EventBody>, StepError> {
    if facts.state.phase != Phase::NotStarted {
        took("instance.start.refused");
        return Err(facts.rejected("the instance has started already"));
    }
    took("instance.start");
    Ok(vec![EventBody::InstanceStarted {
        definition: facts.definition.id.clone(),
        version,
        input: input.clone(),
        history_version: HISTORY_VERSION,
        parent: None,
    }])
}

/// `instance_started`.
pub(super) fn started(
    fold: &mut Fold,
    definition_id: &DefinitionId,
    version: u32,
    input: &Value,
    history_version: u32,
) -> Result<(), StepError> {
    if fold.state.phase != Phase::NotStarted {
        return Err(fold.invalid("the instance has started already"));
    }
    if !(1..=HISTORY_VERSION).contains(&history_version) {
        return Err(fold.invalid(&format!(
            "history format version {history_version} is unknown to this engine (it knows 1 to {HISTORY_VERSION})"
        )));
    }
    took("instance.started");
    let state = &mut *fold.state;
    state.definition = definition_id.clone();
    state.version = version;
    state.history_version = history_version;
    state.input = input.clone();
    state.started_at = fold.event.at;
    state.started_by = fold.event.actor.clone();
    state.phase = Phase::Running;
    state.steps = fold
        .definition
        .steps
        .iter()
        .map(|step| (step.id.clone(), StepState::Pending { attempt: 1 }))
        .collect();
    Ok(())
}

/// `instance_completed`.
pub(super) fn completed(fold: &mut Fold, output: &Value) -> Result<(), StepError> {
    require_running(fold.state, fold.event)?;
    if !fold
        .state
        .steps
        .values()
        .all(StepState::lets_dependents_run)
    {
        return Err(fold.invalid("some steps have not finished"));
    }
    took("instance.completed");
    fold.state.phase = Phase::Completed {
        output: output.clone(),
    };
    fold.commands.push(Command::Finish {
        status: InstanceStatus::Completed,
    });
    Ok(())
}

/// `instance_failed`.
pub(super) fn failed(fold: &mut Fold, error: &ErrorInfo) -> Result<(), StepError> {
    let compensated = match &fold.state.phase {
        Phase::Running => {
            took("instance.failed.running");
            false
        }
        Phase::Compensating {
            remaining, current, ..
        } if remaining.is_empty() && current.is_none() => {
            took("instance.failed.compensating");
            // The queue built at failure time is rebuilt by the same rule from the
            // unchanged completions: anything in it was compensated.
            !compensation::queue(fold.state, fold.definition).is_empty()
        }
        Phase::NotStarted
        | Phase::Compensating { .. }
        | Phase::Completed { .. }
        | Phase::Failed { .. }
        | Phase::Cancelled { .. } => {
            return Err(fold.invalid("the instance cannot fail now"));
        }
    };
    let cancelled = step::cancel_active_steps(fold.state);
    fold.commands.extend(cancelled);
    fold.state.phase = Phase::Failed {
        error: error.clone(),
        compensated,
    };
    fold.commands.push(Command::Finish {
        status: InstanceStatus::Failed,
    });
    Ok(())
}

/// Input `Cancel`.
pub(super) fn cancel(facts: Facts, reason: &Option<String>) -> Result<Vec<EventBody>, StepError> {
    let refused = |message: &str| {
        took("instance.cancel.refused");
        Err(facts.rejected(message))
    };
    match &facts.state.phase {
        Phase::Running | Phase::Compensating { .. } => {
            took("instance.cancel");
            Ok(vec![EventBody::InstanceCancelled {
                reason: reason.clone(),
            }])
        }
        Phase::NotStarted => refused("the instance has not started"),
        Phase::Completed { .. } | Phase::Failed { .. } | Phase::Cancelled { .. } => {
            refused(&format!("the instance is {} already", facts.state.status()))
        }
    }
}

/// `instance_cancelled`.
pub(super) fn cancelled(fold: &mut Fold, reason: &Option<String>) -> Result<(), StepError> {
    match &fold.state.phase {
        Phase::Running => took("instance.cancelled.running"),
        Phase::Compensating { current, .. } => {
            took("instance.cancelled.compensating");
            if let Some(run) = current
                && run.unit.is_in_flight()
            {
                fold.commands.push(Command::AbandonWork {
                    work: WorkKey {
                        step: run.target.step.clone(),
                        item: run.target.item,
                        attempt: run.unit.attempt(),
                        compensation: true,
                        iteration: None,
                    },
                });
            }
            if let Some(CompensationRun {
                target,
                unit: Unit::Retrying { attempt, .. },
            }) = current
            {
                fold.commands.push(Command::CancelTimer {
                    timer: TimerKey::compensation_retry(&target.step, target.item, *attempt),
                });
            }
        }
        Phase::NotStarted
        | Phase::Completed { .. }
        | Phase::Failed { .. }
        | Phase::Cancelled { .. } => {
            return Err(fold.invalid("the instance is not running"));
        }
    }
    let cancelled = step::cancel_active_steps(fold.state);
    fold.commands.extend(cancelled);
    fold.state.phase = Phase::Cancelled {
        reason: reason.clone(),
    };
    fold.commands.push(Command::Finish {
        status: InstanceStatus::Cancelled,
    });
    Ok(())
}

/// Input `RetryStep`.
pub(super) fn retry_step(facts: Facts, step: &StepId) -> Result<Vec<EventBody>, StepError> {
    let state = facts.state;
    let refused = |message: &str| {
        took("instance.retry_step.refused");
        facts.rejected(message)
    };
    match &state.phase {
        Phase::Failed {
            compensated: false, ..
        } => {}
        Phase::Failed {
            compensated: true, ..
        } => {
            return Err(refused(
                "the instance's compensations have run; its steps cannot be retried",
            ));
        }
        Phase::NotStarted
        | Phase::Running
        | Phase::Compensating { .. }
        | Phase::Completed { .. }
        | Phase::Cancelled { .. } => {
            return Err(refused(&format!(
                "only a failed instance can retry a step; this one is {}",
                state.status()
            )));
        }
    }
    match state.steps.get(step) {
        // A failure that the instance went on from did not fail it: retrying that
        // step alone would leave the failure that did in place, with nothing left
        // to run (found by the machine's property test).
        Some(StepState::Failed {
            continued: true, ..
        }) => Err(refused(&format!(
            "step \"{step}\" failed with on_error: continue and did not fail the instance; retry the step that did"
        ))),
        Some(step_state @ StepState::Failed { .. }) => {
            took("instance.retry_step");
            Ok(vec![EventBody::StepRetryRequested {
                step: step.clone(),
                attempt: step_state.attempts() + 1,
            }])
        }
        Some(other) => Err(refused(&format!(
            "step \"{step}\" is {:?}, not failed",
            other.status()
        ))),
        None => Err(StepError::UnknownStep {
            instance: state.id.clone(),
            step: step.clone(),
        }),
    }
}

/// `step_retry_requested`.
pub(super) fn retry_requested(
    fold: &mut Fold,
    step: &StepId,
    attempt: u32,
) -> Result<(), StepError> {
    if !matches!(
        fold.state.phase,
        Phase::Failed {
            compensated: false,
            ..
        }
    ) {
        return Err(
            fold.invalid("only a failed instance with nothing compensated can retry a step")
        );
    }
    let event = fold.event;
    let instance = fold.state.id.clone();
    let step_state = step_state_mut(fold.state, step)?;
    if !matches!(step_state, StepState::Failed { .. }) {
        return Err(super::lookups::invalid(
            &instance,
            event,
            "the step has not failed",
        ));
    }
    took("instance.retry_requested");
    *step_state = StepState::Pending { attempt };
    for other in fold.state.steps.values_mut() {
        if let StepState::Cancelled { attempts } = other {
            *other = StepState::Pending {
                attempt: *attempts + 1,
            };
        }
    }
    fold.state.phase = Phase::Running;
    Ok(())
}
