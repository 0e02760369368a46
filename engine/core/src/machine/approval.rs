//! Approval steps: the request, users' decisions and delegations (checked before any event
//! is made), the due timer with its `on_timeout`, and escalation through `escalate_to`.
//! Who may decide and how decisions settle an approval is [`crate::approval`]'s.
//!
//! Assignees (`users`, `groups`) may be expressions, rendered when the approval is
//! requested; on a fan-out step (`for_each`) each item has its own approval (events with
//! `item`), its title, assignees and form rendered with `item` and `index` in scope, and
//! every row below applies to it as to a step's approval (see `items` for how items
//! settle). The due rows apply per item too, the item's outcome or failure naming it.
//!
//! | id | state | event or input | effect |
//! |---|---|---|---|
//! | `approval.request` | pending approval step whose needs let it run | derived | `approval_requested` with the rendered title and `due_at` |
//! | `approval.requested` | pending approval step | `approval_requested` | waiting on the approval at level 0; `StartTimer` (approval due) if it has a due |
//! | `approval.decide` | open approval; an assignee who has not decided; data that satisfies the form | input `Decide` | `approval_decided` |
//! | `approval.decide.refused` | anything else | input `Decide` | rejected (409), forbidden (403) or invalid decision (422) |
//! | `approval.decided` | open approval of this attempt; the user has not decided | `approval_decided` | decision kept |
//! | `approval.delegate` | open approval; an assignee hands it to another user who may receive it | input `Delegate` | `approval_delegated` |
//! | `approval.delegate.refused` | anything else | input `Delegate` | rejected (409), forbidden (403) or invalid decision (422) |
//! | `approval.delegated` | open approval of this attempt | `approval_delegated` | delegation kept; the delegate becomes an assignee |
//! | `approval.settled` | waiting on an approval that its decisions settle | derived | `step_succeeded`, output `{decision, user, comment, data}` |
//! | `approval.succeeded` | waiting on the approval of this attempt | `step_succeeded` | succeeded; due timer cancelled; the approval approved or rejected by the output's decision |
//! | `approval.due.approve` | waiting; the current level's due fired; `on_timeout: approve` | input `TimerFired` (approval due) | `step_succeeded`, approved by the system |
//! | `approval.due.reject` | the same, `on_timeout: reject` | input `TimerFired` (approval due) | `step_succeeded`, rejected by the system |
//! | `approval.due.fail` | the same, `on_timeout: fail`, or `escalate` past the last level or with a due out of range | input `TimerFired` (approval due) | `step_failed` (code `timeout`) |
//! | `approval.due.escalate` | the same, `on_timeout: escalate` with a next level | input `TimerFired` (approval due) | `approval_escalated` with the next level's assignees and due |
//! | `approval.escalated` | waiting on the approval at the level before | `approval_escalated` | the next level in charge; `StartTimer` (approval due at that level) if it has a due |
//! | `approval.item.request` | ready item of an approval fan-out within the concurrency limit | derived | `approval_requested` (item), its title and assignees rendered with `item` and `index` |
//! | `approval.item.requested` | ready item of this attempt | `approval_requested` (item) | item waiting on its own approval at level 0; `StartTimer` (the item's approval due) if it has a due |
//! | `approval.item.decided` | open approval of the item, this attempt; the user has not decided | `approval_decided` (item) | decision kept |
//! | `approval.item.delegated` | open approval of the item, this attempt | `approval_delegated` (item) | delegation kept; the delegate becomes an assignee |
//! | `approval.item.escalated` | the item waiting on its approval at the level before | `approval_escalated` (item) | the next level in charge of the item; `StartTimer` (the item's approval due at that level) if it has a due |

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::approval::{
    self as rules, ApprovalState, ApprovalStatus, Decision, Delegation, Outcome, Refusal, Verdict,
};
use crate::artifact::Artifact;
use crate::command::Command;
use crate::definition::{Approval, Definition, OnApprovalTimeout, StepDefinition, StepKind};
use crate::event::{ErrorInfo, EventBody, TimerKey};
use crate::expr::{self, Budget};
use crate::id::StepId;
use crate::state::{InstanceState, Phase, StepState, Unit, Work};

use super::coverage::took;
use super::expressions::{Reads, has_expression, render_names, scope_for};
use super::lookups::{fan_out_item, invalid, require_running, step_state_mut, unit, unit_mut};
use super::{Facts, Fold, StepError};

/// The `approval_requested` of an approval step that became ready (or of one fan-out
/// item, with `item` and `index` in scope), or the code and message of the failure when
/// its title, assignees or due cannot be made.
pub(super) fn request(
    state: &InstanceState,
    step: &StepDefinition,
    approval: &Approval,
    attempt: u32,
    item: Option<(u32, &Value)>,
    at: DateTime<Utc>,
    budget: Budget,
) -> Result<EventBody, (&'static str, String)> {
    let title_template = Value::String(approval.title.clone());
    let title_scope = scope_for(state, Reads::Template(&title_template), item, None);
    let title = match expr::render(&title_template, &title_scope.within(budget)) {
        Ok(Value::String(title)) => title,
        Ok(other) => other.to_string(),
        Err(message) => return Err(("expression", format!("approval.title: {message}"))),
    };
    let users = render_names(state, &approval.users, item, budget)
        .map_err(|message| ("expression", format!("approval.users: {message}")))?;
    let groups = render_names(state, &approval.groups, item, budget)
        .map_err(|message| ("expression", format!("approval.groups: {message}")))?;
    if users.is_empty() && groups.is_empty() {
        return Err((
            "expression",
            "approval.users and approval.groups name no one: nobody could decide".to_owned(),
        ));
    }
    let due_at = match approval.due.map(chrono::Duration::from_std).transpose() {
        Ok(due) => due.map(|due| at + due),
        Err(error) => return Err(("invalid_definition", format!("approval.due: {error}"))),
    };
    let artifacts = super::binding::render(state, approval, item, budget)?;
    took(match item {
        None => "approval.request",
        Some(_) => "approval.item.request",
    });
    Ok(EventBody::ApprovalRequested {
        step: step.id.clone(),
        attempt,
        item: item.map(|(index, _)| index),
        title,
        users,
        groups,
        quorum: approval.quorum.max(1),
        due_at,
        artifacts,
    })
}

/// `approval_requested`.
#[allow(clippy::too_many_arguments)] // One argument per field of the event.
pub(super) fn requested(
    fold: &mut Fold,
    step: &StepId,
    attempt: u32,
    item: Option<u32>,
    title: &str,
    users: &[String],
    groups: &[String],
    quorum: u32,
    due_at: Option<DateTime<Utc>>,
    artifacts: &Option<Vec<Artifact>>,
) -> Result<(), StepError> {
    require_running(fold.state, fold.event)?;
    let event = fold.event;
    let instance = fold.state.id.clone();
    let step_state = step_state_mut(fold.state, step)?;
    match item {
        None if matches!(step_state, StepState::Pending { .. }) => {
            took("approval.requested");
            *step_state = StepState::Active {
                work: Work::Approval { attempt, level: 0 },
            };
        }
        Some(index) => match unit_mut(step_state, Some(index)) {
            Some(unit) if *unit.get() == (Unit::Ready { attempt }) => {
                took("approval.item.requested");
                unit.set(Unit::Approval { attempt, level: 0 });
            }
            _ => return Err(invalid(&instance, event, "the item is not ready")),
        },
        None => return Err(invalid(&instance, event, "the step is not pending")),
    }
    let requested = ApprovalState {
        attempt,
        title: title.to_owned(),
        users: users.to_vec(),
        groups: groups.to_vec(),
        quorum,
        level: 0,
        due_at,
        requested_at: event.at,
        decisions: Vec::new(),
        delegations: Vec::new(),
        status: ApprovalStatus::Pending,
        outcome: None,
        artifacts: artifacts.clone(),
    };
    match item {
        None => {
            fold.state.approvals.insert(step.clone(), requested);
        }
        Some(index) => {
            let items = fold.state.item_approvals.entry(step.clone()).or_default();
            items.insert(index, requested);
        }
    }
    if let Some(due_at) = due_at {
        fold.commands
            .push(due_timer(step, item, attempt, 0, due_at));
    }
    Ok(())
}

/// Input `Decide`.
#[allow(clippy::too_many_arguments)] // One argument per field of the input.
pub(super) fn decide(
    facts: Facts,
    step: &StepId,
    attempt: u32,
    item: Option<u32>,
    user: &str,
    groups: &[String],
    decision: Verdict,
    comment: &Option<String>,
    data: &Value,
) -> Result<Vec<EventBody>, StepError> {
    let checked = check_decision(facts, step, attempt, item, user, groups, decision, data);
    took(match checked {
        Ok(()) => "approval.decide",
        Err(_) => "approval.decide.refused",
    });
    checked?;
    // The decision records what it decides on: the artifacts the approval binds.
    let artifacts = approval_of(facts.state, step, item).and_then(|open| open.artifacts.clone());
    Ok(vec![EventBody::ApprovalDecided {
        step: step.clone(),
        attempt,
        item,
        user: user.to_owned(),
        decision,
        comment: comment.clone(),
        data: data.clone(),
        artifacts,
    }])
}

#[allow(clippy::too_many_arguments)] // The input's fields.
fn check_decision(
    facts: Facts,
    step: &StepId,
    attempt: u32,
    item: Option<u32>,
    user: &str,
    groups: &[String],
    decision: Verdict,
    data: &Value,
) -> Result<(), StepError> {
    let state = facts.state;
    let approval_definition = definition(state, facts.definition, step)?;
    let approval = open(state, step, attempt, item).map_err(|message| facts.rejected(&message))?;
    rules::check_decider(
        step,
        approval,
        approval_definition,
        &state.started_by,
        user,
        groups,
    )
    .map_err(|refusal| refused(state, refusal))?;
    if let Some(form) = &approval_definition.form
        && (decision == Verdict::Approve || !data.is_null())
    {
        let form = render_form(facts, step, item, form)?;
        // Absent data is checked as an empty object, so that a form without
        // required fields accepts a decision that sends none.
        let checked = if data.is_null() {
            json!({})
        } else {
            data.clone()
        };
        let violations = rules::form_violations(&form, &checked);
        if !violations.is_empty() {
            return Err(StepError::InvalidDecision {
                instance: state.id.clone(),
                message: format!(
                    "the decision's data does not satisfy the form of approval \"{step}\""
                ),
                violations,
            });
        }
    }
    Ok(())
}

/// `approval_decided`.
#[allow(clippy::too_many_arguments)] // One argument per field of the event.
pub(super) fn decided(
    fold: &mut Fold,
    step: &StepId,
    attempt: u32,
    item: Option<u32>,
    user: &str,
    decision: Verdict,
    comment: &Option<String>,
    data: &Value,
) -> Result<(), StepError> {
    require_running(fold.state, fold.event)?;
    let event = fold.event;
    let instance = fold.state.id.clone();
    match approval_of_mut(fold.state, step, item) {
        Some(approval)
            if approval.attempt == attempt
                && approval.status == ApprovalStatus::Pending
                && !approval.has_decided(user) =>
        {
            took(match item {
                None => "approval.decided",
                Some(_) => "approval.item.decided",
            });
            approval.decisions.push(Decision {
                user: user.to_owned(),
                decision,
                comment: comment.clone(),
                data: data.clone(),
                at: event.at,
            });
            Ok(())
        }
        Some(_) | None => Err(invalid(
            &instance,
            event,
            "no open approval takes this decision",
        )),
    }
}

/// Input `Delegate`.
pub(super) fn delegate(
    facts: Facts,
    step: &StepId,
    attempt: u32,
    item: Option<u32>,
    from: &str,
    groups: &[String],
    to: &str,
) -> Result<Vec<EventBody>, StepError> {
    let checked = check_delegation(facts, step, attempt, item, from, groups, to);
    took(match checked {
        Ok(()) => "approval.delegate",
        Err(_) => "approval.delegate.refused",
    });
    checked?;
    Ok(vec![EventBody::ApprovalDelegated {
        step: step.clone(),
        attempt,
        item,
        from: from.to_owned(),
        to: to.to_owned(),
    }])
}

fn check_delegation(
    facts: Facts,
    step: &StepId,
    attempt: u32,
    item: Option<u32>,
    from: &str,
    groups: &[String],
    to: &str,
) -> Result<(), StepError> {
    let state = facts.state;
    let approval_definition = definition(state, facts.definition, step)?;
    let approval = open(state, step, attempt, item).map_err(|message| facts.rejected(&message))?;
    rules::check_decider(
        step,
        approval,
        approval_definition,
        &state.started_by,
        from,
        groups,
    )
    .map_err(|refusal| refused(state, refusal))?;
    if to.trim().is_empty() || to == from {
        return Err(StepError::InvalidDecision {
            instance: state.id.clone(),
            message: format!("approval \"{step}\": delegate to another user"),
            violations: vec![format!("to: {to:?} is not another user")],
        });
    }
    if to == state.started_by && !approval_definition.allow_self_approval {
        return Err(StepError::Forbidden {
            instance: state.id.clone(),
            message: format!(
                "user \"{to}\" started the instance and may not receive its approval \"{step}\""
            ),
        });
    }
    if approval.has_decided(to) {
        return Err(facts.rejected(&format!(
            "user \"{to}\" has decided approval \"{step}\" already"
        )));
    }
    Ok(())
}

/// `approval_delegated`.
pub(super) fn delegated(
    fold: &mut Fold,
    step: &StepId,
    attempt: u32,
    item: Option<u32>,
    from: &str,
    to: &str,
) -> Result<(), StepError> {
    require_running(fold.state, fold.event)?;
    let event = fold.event;
    let instance = fold.state.id.clone();
    match approval_of_mut(fold.state, step, item) {
        Some(approval)
            if approval.attempt == attempt && approval.status == ApprovalStatus::Pending =>
        {
            took(match item {
                None => "approval.delegated",
                Some(_) => "approval.item.delegated",
            });
            approval.delegations.push(Delegation {
                from: from.to_owned(),
                to: to.to_owned(),
                at: event.at,
            });
            if !approval.users.iter().any(|user| user == to) {
                approval.users.push(to.to_owned());
            }
            Ok(())
        }
        Some(_) | None => Err(invalid(
            &instance,
            event,
            "no open approval takes this delegation",
        )),
    }
}

/// `approval_escalated`.
#[allow(clippy::too_many_arguments)] // One argument per field of the event.
pub(super) fn escalated(
    fold: &mut Fold,
    step: &StepId,
    attempt: u32,
    item: Option<u32>,
    level: u32,
    users: &[String],
    groups: &[String],
    due_at: Option<DateTime<Utc>>,
) -> Result<(), StepError> {
    require_running(fold.state, fold.event)?;
    let event = fold.event;
    let instance = fold.state.id.clone();
    let at_level = match (fold.state.steps.get(step), item) {
        (
            Some(StepState::Active {
                work:
                    Work::Approval {
                        attempt: current,
                        level: current_level,
                    },
            }),
            None,
        ) if *current == attempt => Some(*current_level),
        (Some(step_state), Some(index)) => match unit(step_state, Some(index)) {
            Some(Unit::Approval {
                attempt: current,
                level: current_level,
            }) if *current == attempt => Some(*current_level),
            _ => None,
        },
        (Some(_) | None, _) => None,
    };
    if at_level.map(|current| current + 1) != Some(level) {
        return Err(invalid(
            &instance,
            event,
            "the approval is not at the level before",
        ));
    }
    match (fold.state.steps.get_mut(step), item) {
        (
            Some(StepState::Active {
                work:
                    Work::Approval {
                        level: current_level,
                        ..
                    },
            }),
            None,
        ) => *current_level = level,
        (Some(step_state), Some(index)) => {
            if let Some(slot) = unit_mut(step_state, Some(index)) {
                slot.set(Unit::Approval { attempt, level });
            }
        }
        (Some(_) | None, _) => {}
    }
    let Some(approval) = approval_of_mut(fold.state, step, item) else {
        return Err(invalid(&instance, event, "the step has no approval"));
    };
    took(match item {
        None => "approval.escalated",
        Some(_) => "approval.item.escalated",
    });
    approval.level = level;
    approval.users = users.to_vec();
    approval.groups = groups.to_vec();
    approval.due_at = due_at;
    if let Some(due_at) = due_at {
        fold.commands
            .push(due_timer(step, item, attempt, level, due_at));
    }
    Ok(())
}

/// The `step_succeeded` of an approval step whose approval its decisions settled.
pub(super) fn settled(state: &InstanceState, step: &StepId, attempt: u32) -> Option<EventBody> {
    let outcome = state.approvals.get(step)?.settled()?;
    took("approval.settled");
    Some(EventBody::StepSucceeded {
        step: step.clone(),
        attempt,
        item: None,
        output: json!(outcome),
    })
}

/// On `step_succeeded` (of the step, or of one fan-out item): a still pending approval of
/// `step` (and `item`) takes the output's decision.
pub(super) fn settle(state: &mut InstanceState, step: &StepId, item: Option<u32>, output: &Value) {
    if let Some(approval) = approval_of_mut(state, step, item)
        && approval.status == ApprovalStatus::Pending
    {
        let outcome: Option<Outcome> = serde_json::from_value(output.clone()).ok();
        approval.status = match outcome.as_ref().map(|outcome| outcome.decision.as_str()) {
            Some("approved") => ApprovalStatus::Approved,
            Some(_) | None => ApprovalStatus::Rejected,
        };
        approval.outcome = outcome;
    }
}

/// Closes the approval of `step` (and those of its fan-out items) with `status` if still
/// pending.
pub(super) fn close(state: &mut InstanceState, step: &StepId, status: ApprovalStatus) {
    let items = state
        .item_approvals
        .get_mut(step)
        .into_iter()
        .flat_map(|items| items.values_mut());
    for approval in state.approvals.get_mut(step).into_iter().chain(items) {
        if approval.status == ApprovalStatus::Pending {
            approval.status = status;
        }
    }
}

/// What an approval's due passing does, by its `on_timeout`.
pub(super) fn timed_out(
    state: &InstanceState,
    definition: &Definition,
    timer: &TimerKey,
    at: DateTime<Utc>,
) -> Result<EventBody, StepError> {
    let approval_definition = self::definition(state, definition, &timer.step)?;
    let artifacts =
        approval_of(state, &timer.step, timer.item).and_then(|open| open.artifacts.clone());
    let system_outcome = |decision: &str| EventBody::StepSucceeded {
        step: timer.step.clone(),
        attempt: timer.attempt,
        item: timer.item,
        output: json!(Outcome {
            decision: decision.to_owned(),
            user: crate::event::SYSTEM_ACTOR.to_owned(),
            comment: Some(format!(
                "{decision} automatically: the approval was not decided in time"
            )),
            data: Value::Null,
            artifacts: artifacts.clone(),
        }),
    };
    let fail = |message: String| {
        took("approval.due.fail");
        EventBody::StepFailed {
            step: timer.step.clone(),
            attempt: timer.attempt,
            item: timer.item,
            error: ErrorInfo::permanent("timeout", message),
        }
    };
    Ok(match approval_definition.on_timeout() {
        OnApprovalTimeout::Approve => {
            took("approval.due.approve");
            system_outcome("approved")
        }
        OnApprovalTimeout::Reject => {
            took("approval.due.reject");
            system_outcome("rejected")
        }
        OnApprovalTimeout::Fail => fail(format!(
            "approval {} was not decided by its due time",
            named(timer)
        )),
        OnApprovalTimeout::Escalate => {
            let level = timer.level.unwrap_or(0) + 1;
            match approval_definition
                .escalation_levels()
                .get(level as usize - 1)
            {
                None => fail(format!(
                    "approval {} was not decided by its due time at the last escalation level",
                    named(timer)
                )),
                Some(next) => {
                    let due = next.due.or(approval_definition.due);
                    let due_at = due
                        .map(|due| {
                            chrono::Duration::from_std(due)
                                .map(|due| at + due)
                                .map_err(|error| format!("due out of range: {error}"))
                        })
                        .transpose();
                    match due_at {
                        Ok(due_at) => {
                            took("approval.due.escalate");
                            EventBody::ApprovalEscalated {
                                step: timer.step.clone(),
                                attempt: timer.attempt,
                                item: timer.item,
                                level,
                                users: next.users.clone(),
                                groups: next.groups.clone(),
                                due_at,
                            }
                        }
                        Err(message) => fail(format!("approval {}: {message}", named(timer))),
                    }
                }
            }
        }
    })
}

/// The step a timer belongs to, quoted, with its fan-out item if any: `"review"` or
/// `"review" (item 2)`.
pub(super) fn named(timer: &TimerKey) -> String {
    match timer.item {
        None => format!("\"{}\"", timer.step),
        Some(item) => format!("\"{}\" (item {item})", timer.step),
    }
}

/// The due timer of an approval (or of a fan-out item's) at `level`.
fn due_timer(
    step: &StepId,
    item: Option<u32>,
    attempt: u32,
    level: u32,
    fire_at: DateTime<Utc>,
) -> Command {
    Command::StartTimer {
        timer: due_timer_key(step, item, attempt, level),
        fire_at,
    }
}

/// The key of the due timer of an approval (or of a fan-out item's) at `level`.
pub(super) fn due_timer_key(
    step: &StepId,
    item: Option<u32>,
    attempt: u32,
    level: u32,
) -> TimerKey {
    match item {
        None => TimerKey::approval_due(step, attempt, level),
        Some(index) => TimerKey::item_approval_due(step, index, attempt, level),
    }
}

/// The approval of `step` (and fan-out item `item`), if requested.
pub(super) fn approval_of<'s>(
    state: &'s InstanceState,
    step: &StepId,
    item: Option<u32>,
) -> Option<&'s ApprovalState> {
    match item {
        None => state.approvals.get(step),
        Some(index) => state.item_approvals.get(step)?.get(&index),
    }
}

/// [`approval_of`], to change.
fn approval_of_mut<'s>(
    state: &'s mut InstanceState,
    step: &StepId,
    item: Option<u32>,
) -> Option<&'s mut ApprovalState> {
    match item {
        None => state.approvals.get_mut(step),
        Some(index) => state.item_approvals.get_mut(step)?.get_mut(&index),
    }
}

/// The open approval of `step` (and `item`) for `attempt`, or why there is none (a 409).
fn open<'s>(
    state: &'s InstanceState,
    step: &StepId,
    attempt: u32,
    item: Option<u32>,
) -> Result<&'s ApprovalState, String> {
    let approval = approval_of(state, step, item)
        .filter(|approval| approval.attempt == attempt)
        .ok_or_else(|| match item {
            None => format!("step \"{step}\" has no approval for attempt {attempt}"),
            Some(index) => {
                format!("step \"{step}\" has no approval for item {index} of attempt {attempt}")
            }
        })?;
    if approval.status != ApprovalStatus::Pending {
        return Err(format!(
            "approval \"{step}\" is {} already",
            approval.status.as_str()
        ));
    }
    if state.phase != Phase::Running {
        return Err(format!(
            "the instance is {}; its approvals are closed",
            state.status()
        ));
    }
    Ok(approval)
}

/// The approval's `form`, rendered with the item (and `index`) of a fan-out item in scope
/// when it holds expressions.
fn render_form(
    facts: Facts,
    step: &StepId,
    item: Option<u32>,
    form: &Value,
) -> Result<Value, StepError> {
    if !has_expression(form) {
        return Ok(form.clone());
    }
    let state = facts.state;
    let item = item.and_then(|index| fan_out_item(state, step, index).map(|value| (index, value)));
    let scope = scope_for(state, Reads::Template(form), item, None).within(facts.budget);
    expr::render(form, &scope).map_err(|message| StepError::InvalidDecision {
        instance: state.id.clone(),
        message: format!("the form of approval \"{step}\" does not render"),
        violations: vec![format!("form: {message}")],
    })
}

fn refused(state: &InstanceState, refusal: Refusal) -> StepError {
    match refusal {
        Refusal::Forbidden(message) => StepError::Forbidden {
            instance: state.id.clone(),
            message,
        },
        Refusal::Conflict(message) => StepError::Rejected {
            instance: state.id.clone(),
            message,
        },
    }
}

/// The `approval` block of `step`, or a rejection naming the step when it has none.
fn definition<'d>(
    state: &InstanceState,
    definition: &'d Definition,
    step: &StepId,
) -> Result<&'d Approval, StepError> {
    match definition.step(step).and_then(StepDefinition::kind) {
        Some(StepKind::Approval(approval)) => Ok(approval),
        Some(_) | None => Err(StepError::Rejected {
            instance: state.id.clone(),
            message: format!("step \"{step}\" is not an approval step"),
        }),
    }
}
