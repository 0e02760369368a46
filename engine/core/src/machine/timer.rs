//! Durable timers and sleep steps: which timers are current, and what a current timer's
//! firing causes, by its purpose (a retry, a compensation's retry, a sleep's end, an
//! approval's due, a wait step's timeout, a repeat's interval, whose rows are `repeat`'s).
//! A timer that is no longer current (its step moved on, its attempt was abandoned, it
//! fired already) changes nothing.
//!
//! | id | state | event or input | effect |
//! |---|---|---|---|
//! | `timer.fire.stale` | the timer is not current | input `TimerFired` | nothing |
//! | `timer.fire.retry` | the unit retries with the timer's attempt | input `TimerFired` (retry) | `timer_fired`, then `step_scheduled` or `step_failed` for the unit (see `step`) |
//! | `timer.fire.compensation_retry` | the compensation retries with the timer's attempt | input `TimerFired` (compensation retry) | `timer_fired`, then `compensation_started` or `compensation_failed` (see `compensation`) |
//! | `timer.fire.approval_due` | waiting on the approval (or the fan-out item on its approval) at the timer's attempt and level | input `TimerFired` (approval due) | `timer_fired`, then by `on_timeout` (see `approval`) |
//! | `timer.fire.wait_timeout` | the wait step (or the fan-out item) waits with the timer's attempt | input `TimerFired` (wait timeout) | `timer_fired`, then by `on_timeout` (see `wait`) |
//! | `timer.fired` | the timer is current | `timer_fired` | unchanged (the event that follows moves the state) |
//! | `sleep.schedule` | pending sleep step whose needs let it run | derived | `step_scheduled` with `wake_at` (its duration from now, or its `until` rendered) |
//! | `sleep.scheduled` | pending sleep step | `step_scheduled` with `wake_at` | sleeping; `StartTimer` (sleep) |
//! | `sleep.wake` | sleeping | input `TimerFired` (sleep) | `timer_fired`, then `step_succeeded`, output `{woke_at}` |
//! | `sleep.succeeded` | sleeping | `step_succeeded` | succeeded; sleep timer cancelled |

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::command::Command;
use crate::definition::{Sleep, StepDefinition};
use crate::event::{EventBody, TimerKey, TimerPurpose};
use crate::expr::Budget;
use crate::id::StepId;
use crate::state::{InstanceState, Phase, StepState, Unit, Work};

use super::coverage::took;
use super::expressions::wake_at;
use super::lookups::unit_of;
use super::{Facts, Fold, StepError, approval, compensation, repeat, wait, work};

/// Whether `timer` is one the state still waits for.
pub(super) fn is_current(state: &InstanceState, timer: &TimerKey) -> bool {
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
        TimerPurpose::ApprovalDue if timer.item.is_some() => {
            state.phase == Phase::Running
                && matches!(
                    unit_of(state, &timer.step, timer.item),
                    Some(Unit::Approval { attempt, level })
                        if *attempt == timer.attempt && Some(*level) == timer.level
                )
        }
        TimerPurpose::WaitTimeout if timer.item.is_some() => {
            state.phase == Phase::Running
                && matches!(
                    unit_of(state, &timer.step, timer.item),
                    Some(Unit::Wait { attempt, timeout_at: Some(_), .. }) if *attempt == timer.attempt
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
        TimerPurpose::RepeatInterval => repeat::interval_is_current(state, timer),
        TimerPurpose::CompensationRetry => matches!(
            &state.phase,
            Phase::Compensating { current: Some(run), .. }
                if run.target.step == timer.step
                    && run.target.item == timer.item
                    && matches!(run.unit, Unit::Retrying { attempt, .. } if attempt == timer.attempt)
        ),
    }
}

/// Input `TimerFired`: `timer_fired` and what the timer's purpose causes.
pub(super) fn timer_fired(facts: Facts, timer: &TimerKey) -> Result<Vec<EventBody>, StepError> {
    let Facts {
        state,
        input,
        definition,
        budget,
    } = facts;
    if !is_current(state, timer) {
        took("timer.fire.stale");
        return Ok(Vec::new());
    }
    let fired = EventBody::TimerFired {
        timer: timer.clone(),
    };
    let follow_up = match timer.purpose {
        TimerPurpose::Retry => {
            took("timer.fire.retry");
            let (step, item, attempt) = (&timer.step, timer.item, timer.attempt);
            work::schedule_unit(state, definition, step, item, attempt, budget)
        }
        TimerPurpose::CompensationRetry => match &state.phase {
            Phase::Compensating {
                current: Some(run), ..
            } => {
                took("timer.fire.compensation_retry");
                compensation::start(state, definition, &run.target, timer.attempt, budget)
            }
            any_phase!() => return Ok(Vec::new()),
        },
        TimerPurpose::Sleep => {
            took("sleep.wake");
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
            took("timer.fire.approval_due");
            approval::timed_out(state, definition, timer, input.at)?
        }
        TimerPurpose::WaitTimeout => {
            took("timer.fire.wait_timeout");
            wait::timed_out(state, definition, timer)?
        }
        TimerPurpose::RepeatInterval => {
            // The next run is derived once the interval is over.
            took("repeat.wake");
            return Ok(vec![fired]);
        }
    };
    Ok(vec![fired, follow_up])
}

/// `timer_fired`: only a current timer may fire; the event that follows moves the state.
pub(super) fn fired(fold: &mut Fold, timer: &TimerKey) -> Result<(), StepError> {
    if !is_current(fold.state, timer) {
        return Err(fold.invalid("the timer is not current"));
    }
    took("timer.fired");
    if timer.purpose == TimerPurpose::RepeatInterval {
        repeat::woke(fold.state, &timer.step);
    }
    Ok(())
}

/// The `step_scheduled` of a sleep step that became ready, or the message of the failure
/// when its wake-up instant cannot be made.
pub(super) fn schedule_sleep(
    state: &InstanceState,
    step: &StepDefinition,
    sleep: &Sleep,
    attempt: u32,
    at: DateTime<Utc>,
    budget: Budget,
) -> Result<EventBody, String> {
    let wake_at = wake_at(state, sleep, at, budget)?;
    took("sleep.schedule");
    Ok(EventBody::StepScheduled {
        step: step.id.clone(),
        attempt,
        item: None,
        arguments: None,
        items: None,
        wake_at: Some(wake_at),
        timeout_at: None,
    })
}

/// `step_scheduled` of a pending sleep step.
pub(super) fn sleep_scheduled(
    step_state: &mut StepState,
    step: &StepId,
    attempt: u32,
    wake_at: DateTime<Utc>,
    commands: &mut Vec<Command>,
) {
    took("sleep.scheduled");
    *step_state = StepState::Active {
        work: Work::Sleep { wake_at },
    };
    commands.push(Command::StartTimer {
        timer: TimerKey::sleep(step, attempt),
        fire_at: wake_at,
    });
}
