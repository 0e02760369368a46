//! Approval steps: who may decide, when an approval is settled, what escalation does.
//!
//! An approval step, once reached, records `approval_requested` and waits. Its details
//! live in [`ApprovalState`] (kept in [`crate::InstanceState::approvals`] after the step
//! finished, so that later expressions read `steps.<id>.decision`, `comment`, `data` and
//! `user`, and so that the approvals read model can be derived from the state alone).
//! A fan-out approval step (`for_each`) has one such approval per item, in
//! [`crate::InstanceState::item_approvals`], each decided on its own.
//!
//! Allowed transitions of one approval (anything else is refused, see [`Refusal`]):
//!
//! | event | from | to |
//! |---|---|---|
//! | `approval_requested` | step pending | pending, assignees of level 0, due timer started |
//! | `approval_decided` | pending, by an eligible user who has not decided | pending, decision recorded |
//! | `approval_delegated` | pending, by an eligible user | pending, delegate assigned, delegator no longer eligible |
//! | `timer_fired` (approval due), `on_timeout: escalate` | pending, a next level exists | `approval_escalated`: pending, assignees of the next level, new due timer |
//! | `step_succeeded` | pending and settled (quorum of approvals, or one rejection), or due passed with `approve`/`reject` | approved or rejected |
//! | `step_failed` | pending, due passed with `fail`, or the last escalation level's due passed | failed |
//! | `step_failed` (other step), `instance_cancelled` | pending | cancelled |
//!
//! Rules:
//! - Eligible: the user is listed in `users`, or belongs to one of `groups`, and has not
//!   delegated the approval away. The user who started the instance is never eligible
//!   unless `allow_self_approval: true` (403).
//! - One decision per user (409 for a second one); a decision on an approval that is no
//!   longer pending is 409.
//! - Settled: the first rejection rejects; `quorum` approvals approve. The settling
//!   decision (its user, comment and data) is the approval's outcome.
//! - `form`: an `approve` decision's `data` (checked as `{}` when absent) must satisfy it;
//!   a `reject` decision's `data` must too when it is given (422 listing every violation).
//! - Escalation replaces the assignees by the next level's; decisions already made still
//!   count. Each level has its own `due` (the approval's when absent). When the last
//!   level's due passes too, the step fails with code `timeout`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::artifact::Artifact;
use crate::definition::Approval;
use crate::id::{InstanceId, StepId};

/// A user's decision on an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Approve.
    Approve,
    /// Reject.
    Reject,
}

impl Verdict {
    /// `approve` or `reject`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
        }
    }
}

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Open for decisions.
    Pending,
    /// Approved (by quorum, or by `on_timeout: approve`).
    Approved,
    /// Rejected (by one rejection, or by `on_timeout: reject`).
    Rejected,
    /// Its step failed (due passed with `fail`, or the escalation chain ran out).
    Failed,
    /// Its instance was cancelled or failed while it was open.
    Cancelled,
}

impl ApprovalStatus {
    /// The lowercase name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::Failed => "failed",
            ApprovalStatus::Cancelled => "cancelled",
        }
    }

    /// The status named `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        [
            ApprovalStatus::Pending,
            ApprovalStatus::Approved,
            ApprovalStatus::Rejected,
            ApprovalStatus::Failed,
            ApprovalStatus::Cancelled,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// One recorded decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Who decided.
    pub user: String,
    /// What.
    pub decision: Verdict,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Form data.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
    /// When.
    pub at: DateTime<Utc>,
}

/// One recorded delegation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegation {
    /// The user who handed the decision on.
    pub from: String,
    /// The delegate.
    pub to: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// How an approval was settled; it is also the approval step's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// `approved` or `rejected`.
    pub decision: String,
    /// The user whose decision settled it (`system` for `on_timeout`).
    pub user: String,
    /// That decision's comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// That decision's data.
    #[serde(default)]
    pub data: Value,
    /// The artifacts the approval's `bind` named: what was approved (or rejected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Vec<Artifact>>,
}

/// The state of one approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalState {
    /// Attempt of the step this approval belongs to.
    pub attempt: u32,
    /// Rendered title.
    pub title: String,
    /// Assigned users (delegates included).
    pub users: Vec<String>,
    /// Assigned groups.
    pub groups: Vec<String>,
    /// Approvals needed.
    pub quorum: u32,
    /// Escalation level in charge: 0 for the step's own assignees.
    pub level: u32,
    /// When the current level's time runs out.
    pub due_at: Option<DateTime<Utc>>,
    /// When the approval was requested.
    pub requested_at: DateTime<Utc>,
    /// Decisions, in order.
    pub decisions: Vec<Decision>,
    /// Delegations, in order.
    pub delegations: Vec<Delegation>,
    /// Where it stands.
    pub status: ApprovalStatus,
    /// How it was settled, once approved or rejected.
    pub outcome: Option<Outcome>,
    /// The artifacts its `bind` named when it was requested; `None` without `bind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Vec<Artifact>>,
}

impl ApprovalState {
    /// Whether `user`, with `groups`, may decide (or delegate) now, ignoring the
    /// self-approval rule.
    pub fn is_assignee(&self, user: &str, groups: &[String]) -> bool {
        let delegated_away = self
            .delegations
            .iter()
            .any(|delegation| delegation.from == user);
        !delegated_away
            && (self.users.iter().any(|assigned| assigned == user)
                || groups.iter().any(|group| self.groups.contains(group)))
    }

    /// Whether `user` has decided already.
    pub fn has_decided(&self, user: &str) -> bool {
        self.decisions.iter().any(|decision| decision.user == user)
    }

    /// The outcome the recorded decisions settle, if they settle one: the first rejection
    /// rejects, the `quorum`-th approval approves.
    pub fn settled(&self) -> Option<Outcome> {
        let outcome = |decision: &Decision, text: &str| Outcome {
            decision: text.to_owned(),
            user: decision.user.clone(),
            comment: decision.comment.clone(),
            data: decision.data.clone(),
            artifacts: self.artifacts.clone(),
        };
        if let Some(rejection) = self
            .decisions
            .iter()
            .find(|decision| decision.decision == Verdict::Reject)
        {
            return Some(outcome(rejection, "rejected"));
        }
        let approvals: Vec<&Decision> = self
            .decisions
            .iter()
            .filter(|decision| decision.decision == Verdict::Approve)
            .collect();
        if approvals.len() >= self.quorum.max(1) as usize {
            return approvals.last().map(|last| outcome(last, "approved"));
        }
        None
    }
}

/// The id of an approval: `<instance>:<step>:<attempt>`, unique across instances.
pub fn approval_id(instance: &InstanceId, step: &StepId, attempt: u32) -> String {
    format!("{instance}:{step}:{attempt}")
}

/// The decision of approval step `step` as expressions and views read it: its approval's
/// outcome; for a fan-out approval step (`for_each`), once it succeeded, `approved` when
/// every item was approved (also for no items), else `rejected`. `None` before it is
/// settled, and for steps that are not approval steps.
pub fn step_decision(state: &crate::InstanceState, step: &StepId) -> Option<String> {
    if state.item_approvals.contains_key(step) {
        let Some(crate::StepState::Succeeded {
            output: Value::Array(outcomes),
            ..
        }) = state.steps.get(step)
        else {
            return None;
        };
        let all_approved = outcomes
            .iter()
            .all(|outcome| outcome.get("decision").and_then(Value::as_str) == Some("approved"));
        return Some(if all_approved { "approved" } else { "rejected" }.to_owned());
    }
    let outcome = state.approvals.get(step)?.outcome.as_ref()?;
    Some(outcome.decision.clone())
}

/// The id of a fan-out item's approval: `<instance>:<step>:<attempt>:<item>`.
pub fn item_approval_id(instance: &InstanceId, step: &StepId, attempt: u32, item: u32) -> String {
    format!("{instance}:{step}:{attempt}:{item}")
}

/// Why a decision or delegation is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The user may not decide (not an assignee, self-approval): 403.
    Forbidden(String),
    /// The approval's state refuses it (closed, decided already): 409.
    Conflict(String),
}

/// Checks that `user` (with `groups`) may decide `approval` of `step` now.
pub fn check_decider(
    step: &StepId,
    approval: &ApprovalState,
    definition: &Approval,
    started_by: &str,
    user: &str,
    groups: &[String],
) -> Result<(), Refusal> {
    if approval.status != ApprovalStatus::Pending {
        return Err(Refusal::Conflict(format!(
            "approval \"{step}\" is {} already",
            approval.status.as_str()
        )));
    }
    if user == started_by && !definition.allow_self_approval {
        return Err(Refusal::Forbidden(format!(
            "user \"{user}\" started the instance and may not decide its approval \"{step}\""
        )));
    }
    if approval.has_decided(user) {
        return Err(Refusal::Conflict(format!(
            "user \"{user}\" has decided approval \"{step}\" already"
        )));
    }
    if !approval.is_assignee(user, groups) {
        return Err(Refusal::Forbidden(format!(
            "user \"{user}\" is not an assignee of approval \"{step}\""
        )));
    }
    Ok(())
}

/// Every violation of `form` by `data`, each as `<path>: <message>`; empty when valid or
/// when the form itself does not compile (validation refuses such definitions).
pub fn form_violations(form: &Value, data: &Value) -> Vec<String> {
    let Ok(validator) = jsonschema::validator_for(form) else {
        return Vec::new();
    };
    validator
        .iter_errors(data)
        .map(|error| {
            let path = error.instance_path().to_string();
            let path = if path.is_empty() {
                "data".to_owned()
            } else {
                format!("data{}", path.replace('/', "."))
            };
            format!("{path}: {error}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn approval(quorum: u32) -> ApprovalState {
        ApprovalState {
            attempt: 1,
            title: "t".to_owned(),
            users: vec!["ann".to_owned()],
            groups: vec!["brand".to_owned()],
            quorum,
            level: 0,
            due_at: None,
            requested_at: Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap(),
            decisions: Vec::new(),
            delegations: Vec::new(),
            status: ApprovalStatus::Pending,
            outcome: None,
            artifacts: None,
        }
    }

    fn decide(approval: &mut ApprovalState, user: &str, verdict: Verdict) {
        approval.decisions.push(Decision {
            user: user.to_owned(),
            decision: verdict,
            comment: Some(format!("{user} says {}", verdict.as_str())),
            data: Value::Null,
            at: approval.requested_at,
        });
    }

    #[test]
    fn quorum_approvals_settle_and_the_last_one_is_the_outcome() {
        let mut state = approval(2);
        decide(&mut state, "ann", Verdict::Approve);
        assert_eq!(state.settled(), None);
        decide(&mut state, "bob", Verdict::Approve);
        let outcome = state.settled().unwrap();
        assert_eq!(outcome.decision, "approved");
        assert_eq!(outcome.user, "bob");
    }

    #[test]
    fn one_rejection_settles_whatever_the_quorum() {
        let mut state = approval(3);
        decide(&mut state, "ann", Verdict::Approve);
        decide(&mut state, "bob", Verdict::Reject);
        assert_eq!(state.settled().unwrap().decision, "rejected");
    }

    #[test]
    fn assignees_are_users_or_group_members_who_did_not_delegate() {
        let mut state = approval(1);
        assert!(state.is_assignee("ann", &[]));
        assert!(state.is_assignee("cid", &["brand".to_owned()]));
        assert!(!state.is_assignee("cid", &["other".to_owned()]));
        state.delegations.push(Delegation {
            from: "ann".to_owned(),
            to: "dan".to_owned(),
            at: state.requested_at,
        });
        assert!(!state.is_assignee("ann", &[]));
    }

    #[test]
    fn form_violations_name_the_path() {
        let form = json!({"type": "object", "required": ["budget"],
            "properties": {"budget": {"type": "integer"}}});
        assert!(form_violations(&form, &json!({"budget": 3})).is_empty());
        let violations = form_violations(&form, &json!({"budget": "lots"}));
        assert_eq!(violations.len(), 1);
        assert!(violations[0].starts_with("data.budget: "), "{violations:?}");
        assert_eq!(form_violations(&form, &Value::Null).len(), 1);
    }
}
