//! The approvals read model's rows, derived from an instance's state: the driver adds the
//! rows that a cycle's events changed to the batch that writes those events. A fan-out
//! approval step has one row per item (its `item` set), each written when an event about
//! that item (or the whole step) changed it.

use chrono::{DateTime, Utc};
use serde_json::Value;

use gridflow_core::approval::{approval_id, item_approval_id};
use gridflow_core::{Event, EventBody, InstanceState, StepId};
use gridflow_store::ApprovalRecord;

/// The read-model rows of the approvals that `events` changed, from the state after them.
pub(crate) fn changed_approval_rows(
    state: &InstanceState,
    events: &[Event],
    now: DateTime<Utc>,
) -> Vec<ApprovalRecord> {
    if state.approvals.is_empty() && state.item_approvals.is_empty() {
        return Vec::new();
    }
    let mut all = false;
    let mut steps = Vec::new();
    // Fan-out items whose approval changed (their step's other items did not).
    let mut items: Vec<(&StepId, u32)> = Vec::new();
    for event in events {
        match &event.body {
            EventBody::ApprovalRequested {
                step,
                item: Some(item),
                ..
            }
            | EventBody::ApprovalDecided {
                step,
                item: Some(item),
                ..
            }
            | EventBody::ApprovalEscalated {
                step,
                item: Some(item),
                ..
            }
            | EventBody::ApprovalDelegated {
                step,
                item: Some(item),
                ..
            }
            | EventBody::StepSucceeded {
                step,
                item: Some(item),
                ..
            } => items.push((step, *item)),
            EventBody::ApprovalRequested { step, .. }
            | EventBody::ApprovalDecided { step, .. }
            | EventBody::ApprovalEscalated { step, .. }
            | EventBody::ApprovalDelegated { step, .. }
            | EventBody::StepSucceeded {
                step, item: None, ..
            } => steps.push(step.clone()),
            // A failure may cancel every other active step, and with it open approvals.
            EventBody::StepFailed { item: None, .. }
            | EventBody::InstanceCancelled { .. }
            | EventBody::InstanceFailed { .. } => all = true,
            EventBody::InstanceStarted { .. }
            | EventBody::StepScheduled { .. }
            | EventBody::StepStarted { .. }
            | EventBody::StepFailed { .. }
            | EventBody::StepRetryScheduled { .. }
            | EventBody::StepSkipped { .. }
            | EventBody::TimerFired { .. }
            | EventBody::CompensationStarted { .. }
            | EventBody::CompensationSucceeded { .. }
            | EventBody::CompensationFailed { .. }
            | EventBody::StepRetryRequested { .. }
            | EventBody::InstanceCompleted { .. }
            | EventBody::SignalReceived { .. }
            | EventBody::StepIterationSucceeded { .. }
            | EventBody::StepRepeatScheduled { .. }
            | EventBody::ChildStarted { .. }
            | EventBody::InstanceRerun { .. }
            | EventBody::InstanceMigrated { .. } => {}
        }
    }
    let steps_approvals = state
        .approvals
        .iter()
        .map(|(step, approval)| (step, None, approval));
    let items_approvals = state.item_approvals.iter().flat_map(|(step, items)| {
        items
            .iter()
            .map(move |(item, approval)| (step, Some(*item), approval))
    });
    steps_approvals
        .chain(items_approvals)
        .filter(|(step, item, _)| match item {
            None => all || steps.contains(step),
            Some(item) => all || steps.contains(step) || items.contains(&(*step, *item)),
        })
        .map(|(step, item, approval)| ApprovalRecord {
            id: match item {
                None => approval_id(&state.id, step, approval.attempt),
                Some(item) => item_approval_id(&state.id, step, approval.attempt, item),
            },
            item,
            instance_id: state.id.clone(),
            step: step.clone(),
            attempt: approval.attempt,
            title: approval.title.clone(),
            status: approval.status,
            users: approval.users.clone(),
            groups: approval.groups.clone(),
            quorum: approval.quorum,
            level: approval.level,
            decisions: serde_json::to_value(&approval.decisions)
                .unwrap_or_else(|_| Value::Array(Vec::new())),
            due_at: approval.due_at,
            created_at: approval.requested_at,
            updated_at: now,
            artifacts: approval
                .artifacts
                .as_ref()
                .and_then(|artifacts| serde_json::to_value(artifacts).ok()),
        })
        .collect()
}
