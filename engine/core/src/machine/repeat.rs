//! Steps with `repeat` (DESIGN.md §2): a run that succeeded is judged by the step's
//! `until`, and the step succeeds, runs again (at once or after its `interval`, on a
//! durable timer) or fails once `max` runs did not satisfy it.
//!
//! Nothing here depends on the step's kind. A run ends as the kind ends a step, with a
//! `step_succeeded`; before that event is recorded, [`expand`] turns it into
//! `step_iteration_succeeded` (the run's output, kept for `steps.<id>.iterations`) and
//! what follows: the `step_succeeded` itself, a `step_repeat_scheduled`, or a
//! `step_failed`. The next run starts from a pending step, through the path that
//! schedules its kind (derive's `repeat.run`), without looking at its needs or `when`
//! again. Each run numbers its attempts from 1; the run's number is in the work key and
//! the idempotency key (`<instance>:<step>:r<iteration>:<attempt>`), put there by
//! [`after_event`] on every command of the step's work, so that an outcome of another run
//! is stale.
//!
//! | id | state | event or input | effect |
//! |---|---|---|---|
//! | `repeat.until` | a run of a repeat step succeeded, its `until` holds | the run's `step_succeeded`, before it is recorded | `step_iteration_succeeded`, then `step_succeeded` with the run's output |
//! | `repeat.again` | the same, `until` false, fewer than `max` runs | the same | `step_iteration_succeeded`, then `step_repeat_scheduled` (the next run; `fire_at` after `interval`, if any) |
//! | `repeat.exhausted.fail` | the same, `max` runs, `on_exhausted: fail` | the same | `step_iteration_succeeded`, then `step_failed` (code `repeat_exhausted`) |
//! | `repeat.exhausted.continue` | the same, `on_exhausted: continue` | the same | `step_iteration_succeeded`, then `step_succeeded` with the last run's output |
//! | `repeat.until.unevaluable` | the same, `until` cannot be evaluated (or `interval` is out of range) | the same | `step_iteration_succeeded`, then `step_failed` (code `expression` or `invalid_definition`) |
//! | `repeat.iteration_succeeded` | active repeat step, this run | `step_iteration_succeeded` | the run's output kept (the step stays active until the next event) |
//! | `repeat.scheduled` | active repeat step whose run's output is kept | `step_repeat_scheduled` | pending for the next run (attempts from 1); `StartTimer` (repeat interval) if it has a `fire_at` |
//! | `repeat.run` | pending repeat step between runs, its interval over | derived | the next run scheduled as its kind is (`step_scheduled`, ...), needs and `when` not looked at again |
//! | `repeat.wake` | pending repeat step waiting for the interval before this run | input `TimerFired` (repeat interval) | `timer_fired` |
//! | `repeat.woke` | the same | `timer_fired` (repeat interval) | the interval is over |
//! | `repeat.outcome.stale` | an outcome for another run than the step's current one | input `ActionStarted`, `ActionSucceeded` or `ActionFailed` | nothing |
//! | `repeat.retry` | failed repeat step whose last run succeeded (`repeat_exhausted`) | `step_retry_requested` | the retried run is the next run |
//! | `repeat.stopped` | a repeat step waiting for its interval; the instance stops running | any event | its interval timer cancelled |

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::command::{Command, WorkKey};
use crate::definition::{Definition, OnExhausted, Repeat};
use crate::event::{ErrorInfo, EventBody, TimerKey};
use crate::expr::{self, Budget};
use crate::id::StepId;
use crate::state::{InstanceState, Phase, RepeatProgress, StepState};

use super::coverage::took;
use super::expressions::until_scope;
use super::lookups::{invalid, require_running, step_state_mut};
use super::{Fold, StepError};

/// The number of the run of `step` under way or next (1 before any run succeeded).
pub(super) fn current_iteration(state: &InstanceState, step: &StepId) -> u32 {
    state
        .repeats
        .get(step)
        .map_or(1, |progress| progress.iteration)
}

/// Where a pending step stands between two runs of its repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BetweenRuns {
    /// Its interval is not over yet.
    Waiting,
    /// The next run may start.
    Ready,
}

/// Whether the pending `step` is between two runs of its repeat (it is once a run
/// succeeded), and whether it may run again.
pub(super) fn between_runs(state: &InstanceState, step: &StepId) -> Option<BetweenRuns> {
    let progress = state.repeats.get(step)?;
    Some(if progress.wake_at.is_some() {
        BetweenRuns::Waiting
    } else {
        BetweenRuns::Ready
    })
}

/// The events that record `body`: `body` itself, unless it ends a run of a step with
/// `repeat`; then the run's `step_iteration_succeeded` and what its `until` decides.
pub(super) fn expand(
    state: &InstanceState,
    definition: &Definition,
    at: DateTime<Utc>,
    body: EventBody,
    budget: Budget,
) -> Vec<EventBody> {
    let EventBody::StepSucceeded {
        step,
        attempt,
        item: None,
        output,
    } = &body
    else {
        return vec![body];
    };
    let repeat = match definition.step(step) {
        Some(step_definition) if step_definition.for_each.is_none() => {
            match &step_definition.repeat {
                Some(repeat) => repeat,
                None => return vec![body],
            }
        }
        Some(_) | None => return vec![body],
    };
    if !matches!(state.steps.get(step), Some(StepState::Active { .. })) {
        return vec![body];
    }
    let iteration = current_iteration(state, step);
    let ran = EventBody::StepIterationSucceeded {
        step: step.clone(),
        attempt: *attempt,
        iteration,
        output: output.clone(),
    };
    let failed = |code: &str, message: String| EventBody::StepFailed {
        step: step.clone(),
        attempt: *attempt,
        item: None,
        error: ErrorInfo::permanent(code, message),
    };
    let scope = until_scope(state, step, &repeat.until, iteration, output).within(budget);
    let next = match expr::condition(&repeat.until, &scope) {
        Ok(true) => {
            took("repeat.until");
            body
        }
        Ok(false) if iteration < repeat.max => match next_run_at(repeat, at) {
            Ok(fire_at) => {
                took("repeat.again");
                EventBody::StepRepeatScheduled {
                    step: step.clone(),
                    iteration: iteration + 1,
                    fire_at,
                }
            }
            Err(message) => {
                took("repeat.until.unevaluable");
                failed("invalid_definition", message)
            }
        },
        Ok(false) => match repeat.on_exhausted {
            OnExhausted::Continue => {
                took("repeat.exhausted.continue");
                body
            }
            OnExhausted::Fail => {
                took("repeat.exhausted.fail");
                failed(
                    "repeat_exhausted",
                    format!(
                        "repeat.until did not hold after {iteration} run{}",
                        if iteration == 1 { "" } else { "s" }
                    ),
                )
            }
        },
        Err(message) => {
            took("repeat.until.unevaluable");
            failed("expression", format!("repeat.until: {message}"))
        }
    };
    vec![ran, next]
}

/// When the next run starts: after `interval`, or at once (`None`).
fn next_run_at(repeat: &Repeat, at: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, String> {
    let Some(interval) = repeat.interval else {
        return Ok(None);
    };
    chrono::Duration::from_std(interval)
        .ok()
        .and_then(|interval| at.checked_add_signed(interval))
        .map(Some)
        .ok_or_else(|| format!("repeat.interval: {interval:?} is out of range"))
}

/// `step_iteration_succeeded`.
pub(super) fn iteration_succeeded(
    fold: &mut Fold,
    step: &StepId,
    iteration: u32,
    output: &Value,
) -> Result<(), StepError> {
    require_running(fold.state, fold.event)?;
    let repeats = fold
        .definition
        .step(step)
        .is_some_and(|step| step.repeat.is_some());
    let active = matches!(fold.state.steps.get(step), Some(StepState::Active { .. }));
    if !repeats || !active || current_iteration(fold.state, step) != iteration {
        return Err(fold.invalid("the step is not running this run of its repeat"));
    }
    took("repeat.iteration_succeeded");
    let attempts = fold.state.steps.get(step).map_or(0, StepState::attempts);
    let progress = fold
        .state
        .repeats
        .entry(step.clone())
        .or_insert_with(|| RepeatProgress {
            iteration,
            outputs: Vec::new(),
            wake_at: None,
            max_attempt: 0,
        });
    progress.outputs.push(output.clone());
    progress.max_attempt = progress.max_attempt.max(attempts);
    Ok(())
}

/// `step_repeat_scheduled`.
pub(super) fn repeat_scheduled(
    fold: &mut Fold,
    step: &StepId,
    iteration: u32,
    fire_at: Option<DateTime<Utc>>,
) -> Result<(), StepError> {
    require_running(fold.state, fold.event)?;
    let event = fold.event;
    let instance = fold.state.id.clone();
    let kept = fold.state.repeats.get(step).is_some_and(|progress| {
        progress.iteration + 1 == iteration && progress.outputs.len() as u32 == progress.iteration
    });
    let first = fold.state.reruns.attempts.get(step).copied().unwrap_or(1);
    let step_state = step_state_mut(fold.state, step)?;
    if !kept || !matches!(step_state, StepState::Active { .. }) {
        return Err(invalid(
            &instance,
            event,
            "the step has not finished the run before",
        ));
    }
    took("repeat.scheduled");
    // Attempts start from 1, or above every attempt used before the last re-run.
    *step_state = StepState::Pending { attempt: first };
    if let Some(progress) = fold.state.repeats.get_mut(step) {
        progress.iteration = iteration;
        progress.wake_at = fire_at;
    }
    if let Some(fire_at) = fire_at {
        fold.commands.push(Command::StartTimer {
            timer: TimerKey::repeat_interval(step, iteration),
            fire_at,
        });
    }
    Ok(())
}

/// Whether an interval timer is the one the state waits for.
pub(super) fn interval_is_current(state: &InstanceState, timer: &TimerKey) -> bool {
    state.phase == Phase::Running
        && matches!(
            state.steps.get(&timer.step),
            Some(StepState::Pending { .. })
        )
        && state.repeats.get(&timer.step).is_some_and(|progress| {
            progress.wake_at.is_some() && progress.iteration == timer.attempt
        })
}

/// `timer_fired` of a current interval timer: the interval is over.
pub(super) fn woke(state: &mut InstanceState, step: &StepId) {
    took("repeat.woke");
    if let Some(progress) = state.repeats.get_mut(step) {
        progress.wake_at = None;
    }
}

/// Whether an outcome reported for `work` belongs to another run than the step's
/// current one (or names a run where the step has none).
pub(super) fn is_stale_outcome(
    state: &InstanceState,
    definition: &Definition,
    work: &WorkKey,
) -> bool {
    let stale = work.iteration != expected_iteration(state, definition, work);
    if stale {
        took("repeat.outcome.stale");
    }
    stale
}

/// The run a unit of work of its step belongs to: `None` unless the step repeats.
fn expected_iteration(
    state: &InstanceState,
    definition: &Definition,
    work: &WorkKey,
) -> Option<u32> {
    let repeats = definition
        .step(&work.step)
        .is_some_and(|step| step.repeat.is_some());
    (repeats && !work.compensation).then(|| current_iteration(state, &work.step))
}

/// What every event does to steps with `repeat`, whatever its room: the commands of a
/// repeat step's work name its run; an operator retry of an exhausted repeat runs the
/// next run; an instance that stops running cancels the interval timers.
pub(super) fn after_event(fold: &mut Fold) {
    let state = &*fold.state;
    let definition = fold.definition;
    for command in &mut fold.commands {
        let work = match command {
            Command::Dispatch(dispatch) => &mut dispatch.work,
            Command::StartChild(start) => &mut start.work,
            Command::AbandonWork { work } | Command::CancelChild { work, .. } => work,
            Command::StartTimer { .. } | Command::CancelTimer { .. } | Command::Finish { .. } => {
                continue;
            }
        };
        if work.iteration.is_none() {
            work.iteration = expected_iteration(state, definition, work);
        }
        match command {
            Command::Dispatch(dispatch) => {
                dispatch.idempotency_key = dispatch.work.idempotency_key(&state.id);
            }
            // Each run of a repeated workflow step has its own child.
            Command::StartChild(start) => {
                start.idempotency_key = start.work.idempotency_key(&state.id);
                start.child = super::child::child_id(&state.id, &start.work);
            }
            Command::AbandonWork { .. }
            | Command::CancelChild { .. }
            | Command::StartTimer { .. }
            | Command::CancelTimer { .. }
            | Command::Finish { .. } => {}
        }
    }
    if let EventBody::StepRetryRequested { step, .. } = &fold.event.body
        && let Some(progress) = fold.state.repeats.get_mut(step)
        && progress.outputs.len() as u32 >= progress.iteration
    {
        took("repeat.retry");
        progress.iteration += 1;
    }
    if fold.state.phase != Phase::Running {
        for (step, progress) in &mut fold.state.repeats {
            if progress.wake_at.take().is_some() {
                took("repeat.stopped");
                fold.commands.push(Command::CancelTimer {
                    timer: TimerKey::repeat_interval(step, progress.iteration),
                });
            }
        }
    }
}
