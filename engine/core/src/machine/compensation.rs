//! Compensation: after a step fails the instance, the `compensate` actions of the
//! succeeded steps (and fan-out items) run one at a time, latest completion first, each
//! retried by its step's policy; a compensation that fails for good is recorded and the
//! rest still run. When none is left, the instance fails (see `instance`).
//!
//! | id | state | event or input | effect |
//! |---|---|---|---|
//! | `compensation.start` | compensating, nothing in flight and a completion left (derived), or a compensation's retry timer fired | derived, or input `TimerFired` | `compensation_started` with `compensate.with` rendered against the step's output |
//! | `compensation.start.unrenderable` | the same, `compensate.with` does not render | derived, or input `TimerFired` | `compensation_failed` (code `expression`) |
//! | `compensation.started.first` | compensating, nothing in flight, this completion next, attempt 1 | `compensation_started` | compensation scheduled; `Dispatch` (compensation) |
//! | `compensation.started.retry` | this compensation retrying with this attempt | `compensation_started` | compensation scheduled; `Dispatch` (compensation) |
//! | `compensation.outcome` | this compensation in flight for this attempt | input `ActionSucceeded` or `ActionFailed` (compensation) | `compensation_succeeded`, or `step_retry_scheduled` (compensation) if the policy allows, else `compensation_failed` |
//! | `compensation.outcome.stale` | anything else | input `ActionSucceeded` or `ActionFailed` (compensation) | nothing |
//! | `compensation.retrying` | this compensation in flight for this attempt | `step_retry_scheduled` (compensation) | retrying with the next attempt; `StartTimer` (compensation retry) |
//! | `compensation.finished` | this compensation in flight for this attempt | `compensation_succeeded` or `compensation_failed` | nothing in flight; the next completion follows |
//! | `compensation.failed.before_start` | nothing in flight, this completion next | `compensation_failed` (its arguments did not render) | the completion leaves the queue |

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::command::{Command, WorkKey};
use crate::definition::Definition;
use crate::event::{ErrorInfo, EventBody, TimerKey};
use crate::expr::{self, Budget};
use crate::id::StepId;
use crate::state::{CompensationRun, Completion, InstanceState, Phase, StepState, Unit};

use super::coverage::took;
use super::expressions::{Reads, scope_for};
use super::lookups::step_definition;
use super::{Fold, StepError, work};

/// Succeeded steps and items with a `compensate` action, latest completion first.
pub(super) fn queue(state: &InstanceState, definition: &Definition) -> Vec<Completion> {
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

/// Whether `work` is the compensation in flight.
fn in_flight(state: &InstanceState, work: &WorkKey) -> bool {
    matches!(
        &state.phase,
        Phase::Compensating { current: Some(run), .. }
            if run.target.step == work.step
                && run.target.item == work.item
                && run.unit.is_in_flight()
                && run.unit.attempt() == work.attempt
    )
}

/// `compensation_started` with rendered arguments, or `compensation_failed` when they
/// cannot be rendered.
pub(super) fn start(
    state: &InstanceState,
    definition: &Definition,
    target: &Completion,
    attempt: u32,
    budget: Budget,
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
            let mut scope = scope_for(state, Reads::Template(template), None, None)
                .within(budget)
                .with("output", output);
            if let Some(index) = target.item {
                scope.set("index", json!(index));
            }
            expr::render(template, &scope)
        }
    };
    match rendered {
        Ok(arguments) => {
            took("compensation.start");
            EventBody::CompensationStarted {
                step: target.step.clone(),
                attempt,
                item: target.item,
                arguments,
            }
        }
        Err(message) => {
            took("compensation.start.unrenderable");
            EventBody::CompensationFailed {
                step: target.step.clone(),
                attempt,
                item: target.item,
                error: ErrorInfo::permanent("expression", format!("compensate.with: {message}")),
            }
        }
    }
}

/// Input `ActionSucceeded` of a compensation.
pub(super) fn succeeded_facts(
    state: &InstanceState,
    work: &WorkKey,
    output: &Value,
) -> Vec<EventBody> {
    if !in_flight(state, work) {
        took("compensation.outcome.stale");
        return Vec::new();
    }
    took("compensation.outcome");
    vec![EventBody::CompensationSucceeded {
        step: work.step.clone(),
        attempt: work.attempt,
        item: work.item,
        output: output.clone(),
    }]
}

/// Input `ActionFailed` of a compensation: a retry at `fire_at` if `retries`, else its
/// failure.
pub(super) fn failed_facts(
    state: &InstanceState,
    work: &WorkKey,
    error: &ErrorInfo,
    retries: bool,
    fire_at: DateTime<Utc>,
) -> Vec<EventBody> {
    if !in_flight(state, work) {
        took("compensation.outcome.stale");
        return Vec::new();
    }
    took("compensation.outcome");
    vec![if retries {
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
    }]
}

/// `step_retry_scheduled` of a compensation.
pub(super) fn retry_scheduled(
    fold: &mut Fold,
    step: &StepId,
    attempt: u32,
    item: Option<u32>,
    error: &ErrorInfo,
    fire_at: DateTime<Utc>,
) -> Result<(), StepError> {
    match &mut fold.state.phase {
        Phase::Compensating {
            current: Some(run), ..
        } if run.target.is(step, item)
            && run.unit.is_in_flight()
            && run.unit.attempt() == attempt =>
        {
            took("compensation.retrying");
            run.unit = Unit::Retrying {
                attempt: attempt + 1,
                fire_at,
                error: error.clone(),
            };
        }
        any_phase!() => {
            return Err(fold.invalid("no such compensation is in flight"));
        }
    }
    fold.commands.push(Command::StartTimer {
        timer: TimerKey::compensation_retry(step, item, attempt + 1),
        fire_at,
    });
    Ok(())
}

/// `compensation_started`.
pub(super) fn started(
    fold: &mut Fold,
    step: &StepId,
    attempt: u32,
    item: Option<u32>,
    arguments: &Value,
) -> Result<(), StepError> {
    let instance = fold.state.id.clone();
    let step_definition = step_definition(fold.state, fold.definition, step)?;
    match &mut fold.state.phase {
        Phase::Compensating {
            remaining,
            current: current @ None,
            ..
        } if remaining.first().is_some_and(|next| next.is(step, item)) && attempt == 1 => {
            took("compensation.started.first");
            let target = remaining.remove(0);
            *current = Some(CompensationRun {
                target,
                unit: Unit::Scheduled { attempt: 1 },
            });
        }
        Phase::Compensating {
            current: Some(run), ..
        } if run.target.is(step, item)
            && matches!(run.unit, Unit::Retrying { attempt: next, .. } if next == attempt) =>
        {
            took("compensation.started.retry");
            run.unit = Unit::Scheduled { attempt };
        }
        any_phase!() => return Err(fold.invalid("this compensation is not next")),
    }
    let arguments = Some(arguments.clone());
    let dispatch = work::dispatch(&instance, step_definition, item, attempt, &arguments, true)?;
    fold.commands.push(dispatch);
    Ok(())
}

/// `compensation_succeeded`, or `compensation_failed` (`failed`).
pub(super) fn finished(
    fold: &mut Fold,
    step: &StepId,
    attempt: u32,
    item: Option<u32>,
    failed: bool,
) -> Result<(), StepError> {
    match &mut fold.state.phase {
        Phase::Compensating { current, .. }
            if current.as_ref().is_some_and(|run| {
                run.target.is(step, item)
                    && run.unit.is_in_flight()
                    && run.unit.attempt() == attempt
            }) =>
        {
            took("compensation.finished");
            *current = None;
        }
        Phase::Compensating {
            remaining,
            current: None,
            ..
        } if failed && remaining.first().is_some_and(|next| next.is(step, item)) => {
            took("compensation.failed.before_start");
            remaining.remove(0);
        }
        any_phase!() => {
            return Err(fold.invalid("no such compensation is in flight"));
        }
    }
    Ok(())
}
