//! Wait steps and signals: a signal is kept in the state until a wait step for its name
//! consumes it, so one sent before its wait step is reached is not lost; a wait step may
//! time out and then continue or fail.
//!
//! | id | state | event or input | effect |
//! |---|---|---|---|
//! | `wait.schedule` | pending wait step whose needs let it run | derived | `step_scheduled` with the step's `timeout_at` |
//! | `wait.scheduled` | pending wait step | `step_scheduled` | waiting for its signal; `StartTimer` (wait timeout) if it has a timeout |
//! | `wait.signal` | running instance; if correlated, an active wait step for the name whose `correlate` holds | input `Signal` | `signal_received` |
//! | `wait.signal.refused` | the instance is not running, or a correlated signal no wait step takes | input `Signal` | rejected |
//! | `wait.signal_received` | running instance | `signal_received` | signal kept |
//! | `wait.consume` | waiting, a signal of its name kept | derived | `step_succeeded`, output `{signal, payload, timed_out: false}` |
//! | `wait.succeeded` | waiting, this attempt | `step_succeeded` | succeeded; the oldest kept signal of its name consumed; timeout timer cancelled |
//! | `wait.timeout.continue` | waiting; its timeout fired; `on_timeout: continue` | input `TimerFired` (wait timeout) | `step_succeeded`, output `{signal, payload: null, timed_out: true}` |
//! | `wait.timeout.fail` | the same, `on_timeout: fail` | input `TimerFired` (wait timeout) | `step_failed` (code `timeout`) |

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::command::Command;
use crate::definition::{Definition, OnWaitTimeout, StepDefinition, StepKind, Wait};
use crate::event::{ErrorInfo, EventBody, TimerKey};
use crate::expr::{self, Budget};
use crate::id::StepId;
use crate::state::{BufferedSignal, InstanceState, Phase, StepState, Work};

use super::coverage::took;
use super::expressions::{Reads, scope_for};
use super::lookups::{require_running, unknown_step};
use super::{Facts, Fold, StepError, approval, items};

/// Whether an active wait step (or a waiting item of a wait fan-out) waits for `name` and
/// its `correlate` (if any) holds with `event` bound to `payload` (and the item's `item`
/// and `index`).
pub fn waits_for(
    state: &InstanceState,
    definition: &Definition,
    name: &str,
    payload: &Value,
    budget: Budget,
) -> bool {
    definition.steps.iter().any(|step| {
        let Some(StepKind::Wait(wait)) = step.kind() else {
            return false;
        };
        if step.for_each.is_some() {
            return items::item_waits_for(state, step, wait, name, payload, budget);
        }
        let active = matches!(
            state.steps.get(&step.id),
            Some(StepState::Active { work: Work::Wait { signal, .. } }) if signal == name
        );
        active
            && match &wait.correlate {
                None => true,
                Some(correlate) => {
                    let scope = scope_for(state, Reads::Condition(correlate), None, None)
                        .within(budget)
                        .with("event", payload.clone());
                    expr::condition(correlate, &scope).unwrap_or(false)
                }
            }
    })
}

/// The `step_scheduled` of a wait step that became ready, or the code and message of the
/// failure when its timeout is out of range.
pub(super) fn schedule(
    step: &StepDefinition,
    wait: &Wait,
    attempt: u32,
    at: DateTime<Utc>,
) -> Result<EventBody, (&'static str, String)> {
    let timeout_at = timeout_at(wait, at)?;
    took("wait.schedule");
    Ok(EventBody::StepScheduled {
        step: step.id.clone(),
        attempt,
        item: None,
        arguments: None,
        items: None,
        wake_at: None,
        timeout_at,
    })
}

/// When a wait that starts at `at` times out, if it has a `timeout`.
pub(super) fn timeout_at(
    wait: &Wait,
    at: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, (&'static str, String)> {
    match wait.timeout.map(chrono::Duration::from_std).transpose() {
        Ok(timeout) => Ok(timeout.map(|timeout| at + timeout)),
        Err(error) => Err(("invalid_definition", format!("wait.timeout: {error}"))),
    }
}

/// `step_scheduled` of a pending wait step.
pub(super) fn scheduled(
    step_state: &mut StepState,
    step: &StepId,
    attempt: u32,
    signal: &str,
    timeout_at: Option<DateTime<Utc>>,
    commands: &mut Vec<Command>,
) {
    took("wait.scheduled");
    *step_state = StepState::Active {
        work: Work::Wait {
            attempt,
            signal: signal.to_owned(),
            timeout_at,
        },
    };
    if let Some(timeout_at) = timeout_at {
        commands.push(Command::StartTimer {
            timer: TimerKey::wait_timeout(step, attempt),
            fire_at: timeout_at,
        });
    }
}

/// Input `Signal`.
pub(super) fn signal(
    facts: Facts,
    name: &str,
    payload: &Value,
    correlated: bool,
) -> Result<Vec<EventBody>, StepError> {
    let state = facts.state;
    if state.phase != Phase::Running {
        took("wait.signal.refused");
        return Err(facts.rejected(&format!(
            "the instance is {}; it takes no signals",
            state.status()
        )));
    }
    if correlated && !waits_for(state, facts.definition, name, payload, facts.budget) {
        took("wait.signal.refused");
        return Err(facts.rejected(&format!(
            "no wait step waits for signal \"{name}\" matching this event"
        )));
    }
    took("wait.signal");
    Ok(vec![EventBody::SignalReceived {
        name: name.to_owned(),
        payload: payload.clone(),
    }])
}

/// `signal_received`.
pub(super) fn signal_received(
    fold: &mut Fold,
    name: &str,
    payload: &Value,
) -> Result<(), StepError> {
    require_running(fold.state, fold.event)?;
    took("wait.signal_received");
    fold.state.signals.push(BufferedSignal {
        name: name.to_owned(),
        payload: payload.clone(),
        received_at: fold.event.at,
        actor: fold.event.actor.clone(),
    });
    Ok(())
}

/// The `step_succeeded` of a waiting step for which a signal of its name is kept.
pub(super) fn kept_signal(
    state: &InstanceState,
    step: &StepId,
    attempt: u32,
    signal: &str,
) -> Option<EventBody> {
    let kept = state.signals.iter().find(|kept| kept.name == signal)?;
    took("wait.consume");
    Some(EventBody::StepSucceeded {
        step: step.clone(),
        attempt,
        item: None,
        output: json!({
            "signal": signal,
            "payload": kept.payload,
            "timed_out": false,
        }),
    })
}

/// On a wait step's `step_succeeded`: consumes the oldest kept signal of its name.
///
/// A wait step succeeds either by consuming the oldest kept signal of its name, or by
/// timing out with `on_timeout: continue` when none is kept (a kept signal is consumed as
/// soon as it or the step arrives, so none can be kept when the timeout fires).
pub(super) fn consume(state: &mut InstanceState, signal: &str) {
    if let Some(position) = state.signals.iter().position(|kept| kept.name == signal) {
        state.signals.remove(position);
    }
}

/// What a wait step's timeout firing does, by its `on_timeout`.
pub(super) fn timed_out(
    state: &InstanceState,
    definition: &Definition,
    timer: &TimerKey,
) -> Result<EventBody, StepError> {
    let wait = match definition.step(&timer.step).and_then(StepDefinition::kind) {
        Some(StepKind::Wait(wait)) => wait,
        Some(_) | None => return Err(unknown_step(state, &timer.step)),
    };
    Ok(match wait.on_timeout() {
        OnWaitTimeout::Continue => {
            took("wait.timeout.continue");
            EventBody::StepSucceeded {
                step: timer.step.clone(),
                attempt: timer.attempt,
                item: timer.item,
                output: json!({"signal": wait.signal, "payload": null, "timed_out": true}),
            }
        }
        OnWaitTimeout::Fail => {
            took("wait.timeout.fail");
            EventBody::StepFailed {
                step: timer.step.clone(),
                attempt: timer.attempt,
                item: timer.item,
                error: ErrorInfo::permanent(
                    "timeout",
                    format!(
                        "step {}: no signal \"{}\" arrived before the timeout",
                        approval::named(timer),
                        wait.signal
                    ),
                ),
            }
        }
    })
}
