//! Fan-out items of approval and wait steps (`for_each` on an approval or a wait): one
//! approval or one wait per item, each with its own assignees, due and escalation, or its
//! own `correlate` and timeout, `item` and `index` in scope. Items take concurrency slots
//! while they wait, like action items while they run.
//!
//! An item's approval lives in [`InstanceState::item_approvals`] (kept after it is
//! decided); an item's wait is the item's unit ([`Unit::Wait`]), so the waits of an
//! instance are its active wait steps and the waiting units of its wait fan-outs. A kept
//! signal goes to the first waiting item (in item order) whose `correlate` holds for it,
//! and only to that one. One rejection rejects its item only; the step succeeds once every
//! item is decided, its output the items' outcomes in item order (a wait fan-out's: the
//! received payloads, null for items that timed out). `steps.<id>.decision` of a fan-out
//! approval step is `approved` when every item was approved, else `rejected`.
//!
//! | id | state | event or input | effect |
//! |---|---|---|---|
//! | `item.unstartable` | ready item of an approval or wait fan-out whose title, assignees or timeout cannot be made | derived | `step_failed` (item, code `expression` or `invalid_definition`) |
//! | `approval.item.settled` | item waiting on an approval that its decisions settle | derived | `step_succeeded` (item), output `{decision, user, comment, data}` |
//! | `approval.item.succeeded` | item waiting on its approval, this attempt | `step_succeeded` (item) | item succeeded; its approval approved or rejected by the output's decision; due timer cancelled |
//! | `wait.item.schedule` | ready item of a wait fan-out within the concurrency limit | derived | `step_scheduled` (item) with the item's `timeout_at` |
//! | `wait.item.scheduled` | ready item of this attempt | `step_scheduled` (item) | item waiting for its signal; `StartTimer` (the item's wait timeout) if the step has a timeout |
//! | `wait.item.consume` | item waiting; a kept signal of its name whose `correlate` holds with `item`, `index` and `event` bound | derived | `step_succeeded` (item), output `{signal, payload, timed_out: false}` |
//! | `wait.item.succeeded` | item waiting for its signal, this attempt | `step_succeeded` (item) | item succeeded; the kept signal it received consumed; timeout timer cancelled |

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::command::Command;
use crate::definition::{StepDefinition, StepKind, Wait};
use crate::event::{ErrorInfo, EventBody, TimerKey};
use crate::expr::{self, Budget};
use crate::id::StepId;
use crate::state::{InstanceState, StepState, Unit, Work};

use super::coverage::took;
use super::expressions::{Reads, scope_for};
use super::{approval, wait};

/// For an active approval or wait fan-out: the first item whose approval its decisions
/// settle, or the first waiting item that a kept signal matches.
pub(super) fn settled_item(
    state: &InstanceState,
    step: &StepDefinition,
    items: &[Value],
    units: &[Unit],
    budget: Budget,
) -> Option<EventBody> {
    match step.kind()? {
        StepKind::Approval(_) => units.iter().enumerate().find_map(|(index, unit)| {
            let Unit::Approval { attempt, .. } = unit else {
                return None;
            };
            let index = index as u32;
            let outcome = approval::approval_of(state, &step.id, Some(index))?.settled()?;
            took("approval.item.settled");
            Some(EventBody::StepSucceeded {
                step: step.id.clone(),
                attempt: *attempt,
                item: Some(index),
                output: json!(outcome),
            })
        }),
        StepKind::Wait(wait) => {
            if !state.signals.iter().any(|kept| kept.name == wait.signal) {
                return None;
            }
            units.iter().enumerate().find_map(|(index, unit)| {
                let Unit::Wait {
                    attempt, signal, ..
                } = unit
                else {
                    return None;
                };
                let item = (index as u32, items.get(index)?);
                let kept = state.signals.iter().find(|kept| {
                    &kept.name == signal && correlates(state, wait, item, &kept.payload, budget)
                })?;
                took("wait.item.consume");
                Some(EventBody::StepSucceeded {
                    step: step.id.clone(),
                    attempt: *attempt,
                    item: Some(item.0),
                    output: json!({"signal": signal, "payload": kept.payload, "timed_out": false}),
                })
            })
        }
        StepKind::Action { .. } | StepKind::Sleep(_) | StepKind::Workflow(_) => None,
    }
}

/// Whether a wait's `correlate` (true when it has none) holds for fan-out item `item`
/// with `event` bound to `payload`; an expression that fails does not hold.
pub(super) fn correlates(
    state: &InstanceState,
    wait: &Wait,
    item: (u32, &Value),
    payload: &Value,
    budget: Budget,
) -> bool {
    match &wait.correlate {
        None => true,
        Some(correlate) => {
            let scope = scope_for(state, Reads::Condition(correlate), Some(item), None)
                .within(budget)
                .with("event", payload.clone());
            expr::condition(correlate, &scope).unwrap_or(false)
        }
    }
}

/// The event that starts ready item `index` of an approval or wait fan-out: its
/// `approval_requested` or `step_scheduled`, or its `step_failed` when that cannot be made.
pub(super) fn start_item(
    state: &InstanceState,
    step: &StepDefinition,
    items: &[Value],
    index: u32,
    attempt: u32,
    at: DateTime<Utc>,
    budget: Budget,
) -> Option<EventBody> {
    let item = (index, items.get(index as usize)?);
    let started = match step.kind()? {
        StepKind::Approval(definition) => {
            approval::request(state, step, definition, attempt, Some(item), at, budget)
        }
        StepKind::Wait(definition) => wait::timeout_at(definition, at).map(|timeout_at| {
            took("wait.item.schedule");
            EventBody::StepScheduled {
                step: step.id.clone(),
                attempt,
                item: Some(index),
                arguments: None,
                items: None,
                wake_at: None,
                timeout_at,
            }
        }),
        StepKind::Action { .. } | StepKind::Sleep(_) | StepKind::Workflow(_) => return None,
    };
    Some(started.unwrap_or_else(|(code, message)| {
        took("item.unstartable");
        EventBody::StepFailed {
            step: step.id.clone(),
            attempt,
            item: Some(index),
            error: ErrorInfo::permanent(code, message),
        }
    }))
}

/// `step_scheduled` of ready item `index` of a wait fan-out.
pub(super) fn wait_scheduled(
    step: &StepId,
    index: u32,
    attempt: u32,
    signal: &str,
    timeout_at: Option<DateTime<Utc>>,
    commands: &mut Vec<Command>,
) -> Unit {
    took("wait.item.scheduled");
    if let Some(timeout_at) = timeout_at {
        commands.push(Command::StartTimer {
            timer: TimerKey::item_wait_timeout(step, index, attempt),
            fire_at: timeout_at,
        });
    }
    Unit::Wait {
        attempt,
        signal: signal.to_owned(),
        timeout_at,
    }
}

/// On `step_succeeded` of a waiting item (its unit as it was): settles its approval or
/// consumes the kept signal it received, and cancels its timer.
pub(super) fn item_succeeded(
    state: &mut InstanceState,
    step: &StepId,
    index: u32,
    was: &Unit,
    output: &Value,
    commands: &mut Vec<Command>,
) {
    match was {
        Unit::Approval { attempt, level } => {
            took("approval.item.succeeded");
            approval::settle(state, step, Some(index), output);
            commands.push(Command::CancelTimer {
                timer: approval::due_timer_key(step, Some(index), *attempt, *level),
            });
        }
        Unit::Wait {
            attempt,
            signal,
            timeout_at,
        } => {
            took("wait.item.succeeded");
            if output.get("timed_out") != Some(&Value::Bool(true)) {
                let payload = output.get("payload").unwrap_or(&Value::Null);
                if let Some(position) = state
                    .signals
                    .iter()
                    .position(|kept| &kept.name == signal && &kept.payload == payload)
                {
                    state.signals.remove(position);
                }
            }
            if timeout_at.is_some() {
                commands.push(Command::CancelTimer {
                    timer: TimerKey::item_wait_timeout(step, index, *attempt),
                });
            }
        }
        Unit::Ready { .. }
        | Unit::Scheduled { .. }
        | Unit::Running { .. }
        | Unit::Retrying { .. }
        | Unit::Succeeded { .. }
        | Unit::Failed { .. } => {}
    }
}

/// A fan-out step's output from its items' outputs: a wait fan-out's is the received
/// payloads (null for items that timed out), any other's the outputs themselves.
pub(super) fn step_output(step: &StepDefinition, outputs: Vec<Value>) -> Value {
    match step.kind() {
        Some(StepKind::Wait(_)) => Value::Array(
            outputs
                .into_iter()
                .map(|mut output| {
                    output
                        .get_mut("payload")
                        .map(Value::take)
                        .unwrap_or_default()
                })
                .collect(),
        ),
        Some(
            StepKind::Action { .. }
            | StepKind::Approval(_)
            | StepKind::Sleep(_)
            | StepKind::Workflow(_),
        )
        | None => Value::Array(outputs),
    }
}

/// Whether the waiting items of active wait fan-out `step` include one for signal `name`
/// whose `correlate` holds for `payload`.
pub(super) fn item_waits_for(
    state: &InstanceState,
    step: &StepDefinition,
    wait: &Wait,
    name: &str,
    payload: &Value,
    budget: Budget,
) -> bool {
    let Some(StepState::Active {
        work: Work::FanOut { items, units },
    }) = state.steps.get(&step.id)
    else {
        return false;
    };
    units
        .iter()
        .zip(items)
        .enumerate()
        .any(|(index, (unit, item))| {
            matches!(unit, Unit::Wait { signal, .. } if signal == name)
                && correlates(state, wait, (index as u32, item), payload, budget)
        })
}

/// A fan-out approval step's decision for `steps.<id>.decision` (see
/// [`crate::approval::step_decision`]); null before it succeeded.
pub(super) fn fan_out_decision(state: &InstanceState, step: &StepId) -> Value {
    crate::approval::step_decision(state, step).map_or(Value::Null, Value::String)
}
