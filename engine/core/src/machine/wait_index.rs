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
use crate::state::{InstanceState, Phase, StepState, Work};

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

/// The waits of `state` now, in step order: none unless the instance runs.
pub fn current_waits(
    state: &InstanceState,
    definition: &Definition,
    budget: Budget,
) -> Vec<CurrentWait> {
    if state.phase != Phase::Running {
        return Vec::new();
    }
    state
        .steps
        .iter()
        .filter_map(|(step, step_state)| match step_state {
            StepState::Active {
                work: Work::Wait { signal, .. },
            } => Some(CurrentWait {
                step: step.clone(),
                signal: signal.clone(),
                key: wait_key(state, definition, step, budget),
            }),
            StepState::Pending { .. }
            | StepState::Active { .. }
            | StepState::Succeeded { .. }
            | StepState::Failed { .. }
            | StepState::Skipped { .. }
            | StepState::Cancelled { .. } => None,
        })
        .collect()
}

/// The key of wait step `step`, if its `correlate` is `event.<path> == <other>` and
/// `other` evaluates to a value that has a key.
fn wait_key(
    state: &InstanceState,
    definition: &Definition,
    step: &StepId,
    budget: Budget,
) -> Option<WaitKey> {
    let Some(StepKind::Wait(wait)) = definition.step(step)?.kind() else {
        return None;
    };
    let equality = expr::event_equality(wait.correlate.as_deref()?)?;
    let scope = scope_for(state, Reads::Condition(&equality.other), None, None).within(budget);
    let value = expr::evaluate(&equality.other, &scope).ok()?;
    Some(WaitKey {
        path: equality.path,
        value: expr::correlation_key(&value)?,
    })
}
