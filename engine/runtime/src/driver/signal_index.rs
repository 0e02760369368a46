//! The signal index rows of a commit: an instance's current waits (from the core's
//! `current_waits`) are compared with those its last commit wrote, and written again, in
//! the same batch as its events, only when they changed. So the index is exactly as
//! current as the instances it points to, and an instance that does not wait costs
//! nothing here.

use gridflow_core::expr::Budget;
use gridflow_core::machine::{CurrentWait, current_waits};
use gridflow_core::{Definition, InstanceId, InstanceState};
use gridflow_store::{SignalKey, SignalWaitRecord, SignalWaitsWrite};

/// The waits of `state` now.
pub(super) fn waits_of(
    state: &InstanceState,
    definition: &Definition,
    budget: Budget,
) -> Vec<CurrentWait> {
    current_waits(state, definition, budget)
}

/// The rows to write for `instance` when its waits are no longer `written` (which then
/// become the new ones); `None` when they did not change.
pub(super) fn changed_rows(
    instance: &InstanceId,
    written: &mut Vec<CurrentWait>,
    state: &InstanceState,
    definition: &Definition,
    budget: Budget,
) -> Option<SignalWaitsWrite> {
    // Cheap for the instances that neither waited nor wait now.
    if written.is_empty() && !has_active_wait(state) {
        return None;
    }
    let now = waits_of(state, definition, budget);
    if &now == written {
        return None;
    }
    let waits = now
        .iter()
        .map(|wait| SignalWaitRecord {
            instance_id: instance.clone(),
            step: wait.step.clone(),
            signal: wait.signal.clone(),
            key: wait.key.as_ref().map(|key| SignalKey {
                path: key.path.clone(),
                value: key.value.clone(),
            }),
        })
        .collect();
    *written = now;
    Some(SignalWaitsWrite {
        instance_id: instance.clone(),
        waits,
    })
}

fn has_active_wait(state: &InstanceState) -> bool {
    use gridflow_core::{StepState, Work};
    state.steps.values().any(|step| match step {
        StepState::Active {
            work: Work::Wait { .. },
        } => true,
        // A fan-out's tally says in O(1) whether any item waits.
        StepState::Active {
            work: Work::FanOut { units, .. },
        } => units.any_waiting(),
        StepState::Active { .. }
        | StepState::Pending { .. }
        | StepState::Succeeded { .. }
        | StepState::Failed { .. }
        | StepState::Skipped { .. }
        | StepState::Cancelled { .. } => false,
    })
}
