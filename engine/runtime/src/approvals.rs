//! Approvals on the engine handle: listing, reading, deciding and delegating them.
//!
//! The approvals read model is written by the driver with every commit, from the instance
//! state the same batch writes (`approval_rows`), so the table never disagrees with the
//! history. A decision
//! looks its approval up in the read model (for the instance, step and attempt), then goes
//! through the driver like any other input: the core checks who may decide, and the reply
//! comes once the decision (and whatever it caused, such as the next step's dispatch) is
//! durable.

use serde_json::Value;

use gridflow_core::machine::InputBody;
use gridflow_core::{ApprovalStatus, Verdict};
use gridflow_store::{ApprovalFilter, Page};

use crate::engine::Engine;
use crate::error::Result;
use crate::view::ApprovalView;

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
    /// decision is durable. Not an assignee or self-approval: [`crate::Error::Forbidden`]; a
    /// closed approval or a second decision: [`crate::Error::Conflict`]; data that violates the
    /// approval's form: [`crate::Error::Invalid`].
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
                item: record.item,
                user: approver.user.to_owned(),
                groups: approver.groups.to_vec(),
                decision,
                comment,
                data,
            },
            DecisionRequest::Delegate { to } => InputBody::Delegate {
                step: record.step.clone(),
                attempt: record.attempt,
                item: record.item,
                from: approver.user.to_owned(),
                groups: approver.groups.to_vec(),
                to,
            },
        };
        self.operate(&record.instance_id, approver.user, body)
            .await?;
        self.approval(id).await
    }
}
