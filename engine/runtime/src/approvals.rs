//! Approvals and signals on the engine handle, and the approvals read model the driver
//! writes with every commit.
//!
//! The read-model rows are derived from the instance state the same batch writes
//! ([`changed_approval_rows`]), so the table never disagrees with the history. A decision
//! looks its approval up in the read model (for the instance, step and attempt), then goes
//! through the driver like any other input: the core checks who may decide, and the reply
//! comes once the decision (and whatever it caused, such as the next step's dispatch) is
//! durable.

use chrono::{DateTime, Utc};
use serde_json::Value;

use gridflow_core::approval::approval_id;
use gridflow_core::machine::{InputBody, StepError};
use gridflow_core::{
    ApprovalStatus, Event, EventBody, InstanceId, InstanceState, RecordedEvent, Verdict,
};
use gridflow_store::{ApprovalFilter, ApprovalRecord, InstanceFilter, Page};

use crate::engine::Engine;
use crate::error::{Detail, Error, Result};
use crate::view::{ApprovalView, decode_state};

/// What a user does with an approval.
#[derive(Debug, Clone, PartialEq)]
pub enum DecisionRequest {
    /// Approve or reject, with an optional comment and form data.
    Decide {
        /// Approve or reject.
        decision: Verdict,
        /// Free text.
        comment: Option<String>,
        /// Form data (null when absent).
        data: Value,
    },
    /// Hand the decision to another user.
    Delegate {
        /// The delegate.
        to: String,
    },
}

/// The user acting on approvals: their name and groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver<'a> {
    /// User name.
    pub user: &'a str,
    /// The user's groups.
    pub groups: &'a [String],
}

impl Engine {
    /// The approvals assigned to `approver` (by user or one of their groups), newest first,
    /// with `status` when given.
    pub async fn list_approvals(
        &self,
        approver: &Approver<'_>,
        status: Option<ApprovalStatus>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<ApprovalView>> {
        let filter = ApprovalFilter {
            status,
            user: approver.user.to_owned(),
            groups: approver.groups.to_vec(),
        };
        let page = self
            .shared
            .store
            .list_approvals(&filter, cursor, limit.clamp(1, 500))
            .await?;
        Ok(Page {
            items: page.items.iter().map(ApprovalView::from).collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// One approval.
    pub async fn approval(&self, id: &str) -> Result<ApprovalView> {
        Ok(ApprovalView::from(&self.shared.store.approval(id).await?))
    }

    /// Decides or delegates an approval as `approver`; returns the approval once the
    /// decision is durable. Not an assignee or self-approval: [`Error::Forbidden`]; a
    /// closed approval or a second decision: [`Error::Conflict`]; data that violates the
    /// approval's form: [`Error::Invalid`].
    pub async fn decide(
        &self,
        id: &str,
        approver: &Approver<'_>,
        request: DecisionRequest,
    ) -> Result<ApprovalView> {
        let record = self.shared.store.approval(id).await?;
        let body = match request {
            DecisionRequest::Decide {
                decision,
                comment,
                data,
            } => InputBody::Decide {
                step: record.step.clone(),
                attempt: record.attempt,
                user: approver.user.to_owned(),
                groups: approver.groups.to_vec(),
                decision,
                comment,
                data,
            },
            DecisionRequest::Delegate { to } => InputBody::Delegate {
                step: record.step.clone(),
                attempt: record.attempt,
                from: approver.user.to_owned(),
                groups: approver.groups.to_vec(),
                to,
            },
        };
        self.operate(&record.instance_id, approver.user, body)
            .await?;
        self.approval(id).await
    }

    /// Delivers signal `name` to one instance; it is kept until a wait step for it is
    /// reached if none waits now. A finished instance refuses it ([`Error::Conflict`]).
    pub async fn signal(
        &self,
        instance: &InstanceId,
        name: &str,
        payload: Value,
        actor: &str,
    ) -> Result<()> {
        // The instance's existence is checked first so that an unknown id is a 404.
        self.shared.store.instance(instance).await?;
        self.operate(
            instance,
            actor,
            InputBody::Signal {
                name: name.to_owned(),
                payload,
                correlated: false,
            },
        )
        .await
    }

    /// Delivers signal `name` to every instance that waits on a wait step for it now and
    /// whose `correlate` holds with `event` bound to `payload`; returns those instances.
    ///
    /// It reads every running or waiting instance's state to find the candidates, so its
    /// cost grows with the number of unfinished instances.
    pub async fn signal_matching(
        &self,
        name: &str,
        payload: &Value,
        actor: &str,
    ) -> Result<Vec<InstanceId>> {
        self.signal_matching_unless(name, payload, actor, None)
            .await
    }

    /// [`Engine::signal_matching`], leaving out the waiting instances whose history
    /// `already` says has had this signal (a change delivered again after a crash).
    pub(crate) async fn signal_matching_unless(
        &self,
        name: &str,
        payload: &Value,
        actor: &str,
        already: Option<&AlreadyReceived<'_>>,
    ) -> Result<Vec<InstanceId>> {
        let mut candidates = Vec::new();
        for status in [
            gridflow_core::InstanceStatus::Waiting,
            gridflow_core::InstanceStatus::Running,
        ] {
            let filter = InstanceFilter {
                status: Some(status),
                definition: None,
            };
            let mut cursor: Option<String> = None;
            loop {
                let page = self
                    .shared
                    .store
                    .list_instances(&filter, cursor.as_deref(), 500)
                    .await?;
                for record in &page.items {
                    let state = decode_state(record)?;
                    if waits_on(&state, name) {
                        candidates.push(record.id.clone());
                    }
                }
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        let mut delivered = Vec::new();
        for instance in candidates {
            if let Some(already) = already
                && already(&self.shared.store.history(&instance).await?)
            {
                tracing::info!(signal = name, %instance, "signal already delivered; not again");
                continue;
            }
            let body = InputBody::Signal {
                name: name.to_owned(),
                payload: payload.clone(),
                correlated: true,
            };
            match self.operate(&instance, actor, body).await {
                Ok(()) => delivered.push(instance),
                // Not waiting any more, or `correlate` does not hold: not for this one.
                Err(Error::Conflict(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(delivered)
    }
}

/// Says from an instance's history whether it has had a signal already.
pub(crate) type AlreadyReceived<'a> = dyn Fn(&[RecordedEvent]) -> bool + Sync + 'a;

/// Whether a wait step of `state` waits for signal `name` now.
fn waits_on(state: &InstanceState, name: &str) -> bool {
    state.steps.values().any(|step| {
        matches!(
            step,
            gridflow_core::StepState::Active {
                work: gridflow_core::Work::Wait { signal, .. }
            } if signal == name
        )
    })
}

/// The runtime error for a refusal of the core that is the caller's doing.
pub(crate) fn refusal_error(refusal: StepError) -> Error {
    match refusal {
        StepError::Forbidden { message, .. } => Error::Forbidden(message),
        StepError::InvalidDecision {
            message,
            violations,
            ..
        } => Error::Invalid {
            message,
            details: violations
                .into_iter()
                .map(|violation| match violation.split_once(": ") {
                    Some((path, message)) => Detail {
                        path: path.to_owned(),
                        message: message.to_owned(),
                    },
                    None => Detail {
                        path: String::new(),
                        message: violation,
                    },
                })
                .collect(),
        },
        other @ (StepError::InvalidTransition { .. }
        | StepError::UnknownStep { .. }
        | StepError::Rejected { .. }) => Error::Internal(other.to_string()),
    }
}

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
            | EventBody::SignalReceived { .. } => {}
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
