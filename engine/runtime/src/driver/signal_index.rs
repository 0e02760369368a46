//! The signal index rows of a commit: an instance's current waits (from the core's
//! `current_waits`) are compared with those its last commit wrote, and written again, in
//! the same batch as its events, only when they changed. So the index is exactly as
//! current as the instances it points to, and an instance that does not wait costs
//! nothing here.

use gridflow_core::expr::Budget;
use gridflow_core::machine::{CurrentWait, current_waits};
use gridflow_core::{Definition, InstanceId, InstanceState};
use gridflow_store::{SignalKey, SignalWaitRecord, SignalWaitsWrite};

/// The rows to write for `instance` when its waits are no longer `written` (which then
/// become the new ones); `None` when they did not change.
pub(super) fn changed_rows(
    instance: &InstanceId,
    written: &mut Vec<CurrentWait>,
    state: &InstanceState,
    definition: &Definition,
    budget: Budget,
) -> Option<SignalWaitsWrite> {
    // `current_waits` walks the steps and evaluates keys only for the waits it finds, so
    // an instance that does not wait costs one pass over its steps here.
    let now = current_waits(state, definition, budget);
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
