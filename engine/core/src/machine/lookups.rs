//! Lookups that every room uses: a step's definition and state, one unit of an action or
//! fan-out step, and the errors for what is missing or not allowed.
//!
//! No transition rows: nothing here changes the state.

use crate::definition::{Definition, StepDefinition};
use crate::event::Event;
use crate::id::{InstanceId, StepId};
use crate::state::{InstanceState, Phase, StepState, Unit, Units, Work};

use super::StepError;

/// `event` is not allowed: `detail` says what the state of `instance` was.
pub(super) fn invalid(instance: &InstanceId, event: &Event, detail: &str) -> StepError {
    StepError::InvalidTransition {
        instance: instance.clone(),
        state: detail.to_owned(),
        event: event.body.type_and_data().0,
    }
}

/// Events about steps need a running instance.
pub(super) fn require_running(state: &InstanceState, event: &Event) -> Result<(), StepError> {
    if state.phase == Phase::Running {
        Ok(())
    } else {
        Err(invalid(
            &state.id,
            event,
            &format!("the instance is {}", state.status()),
        ))
    }
}

/// The instance's definition has no step `step` (nondeterminism).
pub(super) fn unknown_step(state: &InstanceState, step: &StepId) -> StepError {
    StepError::UnknownStep {
        instance: state.id.clone(),
        step: step.clone(),
    }
}

/// The definition of `step`.
pub(super) fn step_definition<'d>(
    state: &InstanceState,
    definition: &'d Definition,
    step: &StepId,
) -> Result<&'d StepDefinition, StepError> {
    definition
        .step(step)
        .ok_or_else(|| unknown_step(state, step))
}

/// The state of `step`, to change.
pub(super) fn step_state_mut<'s>(
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

/// The unit of an active step: its action's (no `item`) or one fan-out item's.
pub(super) fn unit(step_state: &StepState, item: Option<u32>) -> Option<&Unit> {
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
        ) => units.get(item as usize),
        _ => None,
    }
}

/// One unit of an active step, to change: its action's, or one fan-out item's (changed
/// through [`Units::set`], which keeps the fan-out's tally).
pub(super) enum UnitSlot<'s> {
    /// The action of a plain step.
    Action(&'s mut Unit),
    /// Item `.1` of a fan-out.
    Item(&'s mut Units, u32),
}

impl UnitSlot<'_> {
    /// The unit as it is.
    pub(super) fn get(&self) -> &Unit {
        match self {
            UnitSlot::Action(unit) => unit,
            UnitSlot::Item(units, index) => &units[*index as usize],
        }
    }

    /// Replaces the unit.
    pub(super) fn set(self, unit: Unit) {
        match self {
            UnitSlot::Action(slot) => *slot = unit,
            UnitSlot::Item(units, index) => {
                units.set(index, unit);
            }
        }
    }
}

/// [`unit`], to change.
pub(super) fn unit_mut(step_state: &mut StepState, item: Option<u32>) -> Option<UnitSlot<'_>> {
    match (step_state, item) {
        (
            StepState::Active {
                work: Work::Action { unit },
            },
            None,
        ) => Some(UnitSlot::Action(unit)),
        (
            StepState::Active {
                work: Work::FanOut { units, .. },
            },
            Some(item),
        ) if (item as usize) < units.len() => Some(UnitSlot::Item(units, item)),
        _ => None,
    }
}

/// The unit of `step` (and `item`) in the instance, if the step is active.
pub(super) fn unit_of<'s>(
    state: &'s InstanceState,
    step: &StepId,
    item: Option<u32>,
) -> Option<&'s Unit> {
    unit(state.steps.get(step)?, item)
}

/// The value of fan-out item `item` of `step`, if the step is an active fan-out.
pub(super) fn fan_out_item<'s>(
    state: &'s InstanceState,
    step: &StepId,
    item: u32,
) -> Option<&'s serde_json::Value> {
    match state.steps.get(step)? {
        StepState::Active {
            work: Work::FanOut { items, .. },
        } => items.get(item as usize),
        any_step_state!() => None,
    }
}
