//! The approvals read model's rows, derived from an instance's state: the driver adds the
//! rows that a cycle's events changed to the batch that writes those events.

use chrono::{DateTime, Utc};
use serde_json::Value;

use gridflow_core::approval::approval_id;
use gridflow_core::{Event, EventBody, InstanceState};
use gridflow_store::ApprovalRecord;

/// The read-model rows of the approvals that `events` changed, from the state after them.
pub(crate) fn changed_approval_rows(
    state: &InstanceState,
    events: &[Event],
    now: DateTime<Utc>,
) -> Vec<ApprovalRecord> {
    if state.approvals.is_empty() {
        return Vec::new();
    }
    let mut all = false;
    let mut steps = Vec::new();
    for event in events {
        match &event.body {
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
            | EventBody::StepSucceeded { .. }
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
            | EventBody::InstanceRerun { .. }
            | EventBody::InstanceMigrated { .. } => {}
        }
    }
    state
        .approvals
        .iter()
        .filter(|(step, _)| all || steps.contains(step))
        .map(|(step, approval)| ApprovalRecord {
            id: approval_id(&state.id, step, approval.attempt),
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
        })
        .collect()
}
