//! The work of one unit: a unit's `step_scheduled` with its arguments rendered, and the
//! `Dispatch` command that runs its action (or its step's `compensate` action), or for a
//! workflow unit the `StartChild` command (`child`). A leaf of
//! the machine: steps, compensations and timers all schedule and dispatch through it.
//!
//! | id | state | event or input | effect |
//! |---|---|---|---|
//! | `unit.scheduled` | ready or retrying unit, of this attempt | `step_scheduled` (unit) | unit scheduled; `Dispatch` |
//! | `unit.schedule` | a ready fan-out item within the concurrency limit (derived), or a unit whose retry timer fired | derived, or input `TimerFired` (retry) | `step_scheduled` (unit) with its arguments rendered |
//! | `unit.schedule.unrenderable` | the same, its arguments do not render | derived, or input `TimerFired` (retry) | `step_failed` (unit, code `expression`) |

use serde_json::{Value, json};

use crate::command::{Command, Dispatch, WorkKey};
use crate::definition::{Definition, StepDefinition};
use crate::event::{ErrorInfo, EventBody};
use crate::expr::Budget;
use crate::id::{InstanceId, StepId};
use crate::state::InstanceState;

use super::coverage::took;
use super::expressions::render_arguments;
use super::lookups::fan_out_item;
use super::{StepError, child};

/// `step_scheduled` for one unit with its arguments rendered, or `step_failed` when the
/// arguments cannot be rendered.
pub(super) fn schedule_unit(
    state: &InstanceState,
    definition: &Definition,
    step_id: &StepId,
    item: Option<u32>,
    attempt: u32,
    budget: Budget,
) -> EventBody {
    let step = definition.step(step_id);
    let with = step.and_then(|step| step.with.as_ref());
    let item_value =
        item.and_then(|index| fan_out_item(state, step_id, index).map(|value| (index, value)));
    let rendered = match step {
        Some(step) if step.workflow.is_some() => child::render_input(state, step, item, budget),
        Some(_) | None if item_value.is_none() => {
            super::recovery::arguments(state, step_id, with, budget)
        }
        Some(_) | None => render_arguments(state, step_id, with, item_value, budget),
    };
    match rendered {
        Ok(arguments) => {
            took("unit.schedule");
            EventBody::StepScheduled {
                step: step_id.clone(),
                attempt,
                item,
                arguments: Some(arguments),
                items: None,
                wake_at: None,
                timeout_at: None,
            }
        }
        Err(message) => {
            took("unit.schedule.unrenderable");
            let field = match step {
                Some(step) if step.workflow.is_some() => "workflow.input",
                Some(_) | None => "with",
            };
            EventBody::StepFailed {
                step: step_id.clone(),
                attempt,
                item,
                error: ErrorInfo::permanent("expression", format!("{field}: {message}")),
            }
        }
    }
}

/// The command that runs one unit of `step` (its action, or its `compensate` action).
pub(super) fn dispatch(
    instance: &InstanceId,
    step: &StepDefinition,
    item: Option<u32>,
    attempt: u32,
    arguments: &Option<Value>,
    compensation: bool,
) -> Result<Command, StepError> {
    if let (Some(child), false) = (&step.workflow, compensation) {
        return Ok(child::start_command(
            instance, step, child, item, attempt, arguments,
        ));
    }
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
        iteration: None,
    };
    Ok(Command::Dispatch(Dispatch {
        idempotency_key: work.idempotency_key(instance),
        work,
        action,
        arguments: arguments.clone().unwrap_or_else(|| json!({})),
        timeout: step.attempt_timeout(),
        // Set by `binding` after the event, from the state.
        approved: None,
    }))
}
