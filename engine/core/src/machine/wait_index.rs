//! An instance's current waits as the signal index stores them: which signal each active
//! wait step waits for and, when its `correlate` has the shape `event.<path> == <other>`,
//! the key a signal must carry at that path (`other` evaluated in the instance). The
//! runtime writes these rows in the commit that makes the state, so that a signal finds
//! the instances waiting for it by name and key instead of reading every instance.
//!
//! No transition rows: nothing here changes the state.

use crate::definition::{Definition, StepKind};
use crate::expr::{self, Budget};
use crate::id::StepId;
use crate::state::{InstanceState, Phase, StepState, Unit, Work};

use super::expressions::{Reads, scope_for};

/// One active wait of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentWait {
    /// The wait step.
    pub step: StepId,
    /// The signal it waits for.
    pub signal: String,
    /// The key a matching signal carries, when its `correlate` has an indexable shape and
    /// a value an index serves; `None`: any signal of the name is a candidate, and its
    /// `correlate` (if any) decides.
    pub key: Option<WaitKey>,
}

/// What a correlated signal must carry to match: `value` at `path` in its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitKey {
    /// The payload path, `partner_id` or `partner.id`.
    pub path: String,
    /// The key of the value there ([`expr::correlation_key`]).
    pub value: String,
}

/// The waits of `state` now, in step order (a wait fan-out's waiting items in item
/// order, one entry per distinct key): none unless the instance runs.
pub fn current_waits(
    state: &InstanceState,
    definition: &Definition,
    budget: Budget,
) -> Vec<CurrentWait> {
    if state.phase != Phase::Running {
        return Vec::new();
    }
    let mut waits = Vec::new();
    for (step, step_state) in &state.steps {
        match step_state {
            StepState::Active {
                work: Work::Wait { signal, .. },
            } => waits.push(CurrentWait {
                step: step.clone(),
                signal: signal.clone(),
                key: wait_key(state, definition, step, None, budget),
            }),
            // Only a wait fan-out with waiting items is looked into, so that the units
            // of an action fan-out are never walked here.
            StepState::Active {
                work: Work::FanOut { items, units },
            } if units.any_waiting()
                && matches!(
                    definition.step(step).and_then(|step| step.kind()),
                    Some(StepKind::Wait(_))
                ) =>
            {
                for (index, unit) in units.iter().enumerate() {
                    let Unit::Wait { signal, .. } = unit else {
                        continue;
                    };
                    let item = items.get(index).map(|item| (index as u32, item));
                    let wait = CurrentWait {
                        step: step.clone(),
                        signal: signal.clone(),
                        key: wait_key(state, definition, step, item, budget),
                    };
                    if !waits.contains(&wait) {
                        waits.push(wait);
                    }
                }
            }
            StepState::Pending { .. }
            | StepState::Active { .. }
            | StepState::Succeeded { .. }
            | StepState::Failed { .. }
            | StepState::Skipped { .. }
            | StepState::Cancelled { .. } => {}
        }
    }
    waits
}

/// The key of wait step `step`, if its `correlate` is `event.<path> == <other>` and
/// `other` evaluates to a value that has a key.
fn wait_key(
    state: &InstanceState,
    definition: &Definition,
    step: &StepId,
    item: Option<(u32, &serde_json::Value)>,
    budget: Budget,
) -> Option<WaitKey> {
    let Some(StepKind::Wait(wait)) = definition.step(step)?.kind() else {
        return None;
    };
    let equality = expr::event_equality(wait.correlate.as_deref()?)?;
    let scope = scope_for(state, Reads::Condition(&equality.other), item, None).within(budget);
    let value = expr::evaluate(&equality.other, &scope).ok()?;
    Some(WaitKey {
        path: equality.path,
        value: expr::correlation_key(&value)?,
    })
}
