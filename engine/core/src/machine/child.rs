//! Workflow steps: units whose work is a child instance (DESIGN.md §2).
//!
//! A workflow step is scheduled like an action step: one unit, or one unit per item of
//! its `for_each`, each unit's "arguments" being the rendered `input` of its child (with
//! `item` and `index` bound for an item). Dispatching a unit is a `StartChild` command
//! instead of a `Dispatch`; the child's id is derived from the parent and the unit
//! ([`child_id`]), so a start repeated after a crash finds the child instead of making a
//! second one. The runtime reports the child's start (`child_started`, with the child's id
//! and resolved version, so that replay needs no catalogue) and its end as the unit's
//! outcome (`ActionSucceeded` with the child's output, `ActionFailed` when it failed or
//! was cancelled), so retries, `on_error` and `compensate` apply as for actions. A unit
//! abandoned while its child runs (the parent cancelled, another item or step failed)
//! also cancels the child (`CancelChild`).
//!
//! | id | state | event or input | effect |
//! |---|---|---|---|
//! | `child.schedule` | pending workflow step whose needs let it run | derived | `step_scheduled` with the child's rendered input, or the resolved items of its `for_each` |
//! | `child.start` | not started | input `StartChild` | `instance_started` naming the parent's unit |
//! | `child.unit.start` | running instance, workflow unit scheduled for this attempt | input `ChildStarted` | `child_started` |
//! | `child.unit.start.stale` | anything else | input `ChildStarted` | nothing |
//! | `child.unit.started` | scheduled workflow unit | `child_started` | running unit |
//! | `child.cancel` | a workflow unit in flight abandoned by any event but its own outcome | (any event) | `CancelChild` beside its `AbandonWork` |

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::command::{ChildStart, Command, WorkKey};
use crate::definition::{ChildWorkflow, Definition, StepDefinition};
use crate::event::{Event, EventBody, ParentRef};
use crate::expr::{self, Budget};
use crate::history::HISTORY_VERSION;
use crate::id::{DefinitionId, InstanceId, StepId};
use crate::state::{InstanceState, Phase, StepState, Unit, Work};

use super::coverage::took;
use super::expressions::{Reads, resolve_items, scope_for};
use super::lookups::{fan_out_item, unit_of};
use super::{Facts, Fold, StepError};

/// The id of the child instance that attempt `work.attempt` of a workflow unit of
/// `parent` starts: a UUID (version 8) from the SHA-256 of the parent and the unit. When
/// the parent's id is a UUIDv7, its 48-bit millisecond timestamp is kept, so children sort
/// near their parent in lists ordered by id.
pub fn child_id(parent: &InstanceId, work: &WorkKey) -> InstanceId {
    let mut hasher = Sha256::new();
    let item = work
        .item
        .map_or_else(|| "-".to_owned(), |item| item.to_string());
    let attempt = work.attempt.to_string();
    for part in [
        "gridflow child",
        parent.as_str(),
        work.step.as_str(),
        item.as_str(),
        attempt.as_str(),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    // The run of a repeated step, so that each run's child is a new one.
    if let Some(iteration) = work.iteration {
        hasher.update(format!("r{iteration}").as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    let hex: String = parent.as_str().chars().filter(|c| *c != '-').collect();
    if hex.len() == 32 && hex.as_bytes()[12] == b'7' {
        for (index, byte) in bytes.iter_mut().take(6).enumerate() {
            if let Ok(value) = u8::from_str_radix(&hex[index * 2..index * 2 + 2], 16) {
                *byte = value;
            }
        }
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    InstanceId::from(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// Whether `state` still awaits the child of `work`: the instance runs and the unit is
/// scheduled or running at that attempt. The runtime starts a child only then.
pub fn awaits_child(state: &InstanceState, work: &WorkKey) -> bool {
    !work.compensation
        && state.phase == Phase::Running
        && unit_of(state, &work.step, work.item)
            .is_some_and(|unit| unit.is_in_flight() && unit.attempt() == work.attempt)
}

/// Whether a running instance only waits: every active step is a workflow step (its
/// units wait for children, or for a slot among them) or blocked on an approval, a
/// signal or a timer. The runtime then keeps it in no memory, as a waiting instance.
pub fn awaits_only_children(state: &InstanceState, definition: &Definition) -> bool {
    let mut any_child = false;
    let only_waits = state.phase == Phase::Running
        && state.steps.iter().all(|(id, step_state)| match step_state {
            StepState::Active { work } => {
                let child = definition
                    .step(id)
                    .is_some_and(|step| step.workflow.is_some());
                any_child |= child;
                child
                    || matches!(
                        work,
                        Work::Sleep { .. }
                            | Work::Approval { .. }
                            | Work::Wait { .. }
                            | Work::Action {
                                unit: Unit::Retrying { .. }
                            }
                    )
            }
            StepState::Pending { .. }
            | StepState::Succeeded { .. }
            | StepState::Failed { .. }
            | StepState::Skipped { .. }
            | StepState::Cancelled { .. } => true,
        });
    only_waits && any_child
}

/// For a pending workflow step whose needs let it run: its `step_scheduled`, with the
/// child's rendered input, or the resolved items of its `for_each`.
pub(super) fn schedule(
    state: &InstanceState,
    step: &StepDefinition,
    attempt: u32,
    budget: Budget,
) -> Result<EventBody, (&'static str, String)> {
    let (arguments, items) = match &step.for_each {
        Some(for_each) => match resolve_items(state, for_each, budget) {
            Ok(items) => (None, Some(items)),
            Err(message) => return Err(("expression", format!("for_each: {message}"))),
        },
        None => match render_input(state, step, None, budget) {
            Ok(input) => (Some(input), None),
            Err(message) => return Err(("expression", format!("workflow.input: {message}"))),
        },
    };
    took("child.schedule");
    Ok(EventBody::StepScheduled {
        step: step.id.clone(),
        attempt,
        item: None,
        arguments,
        items,
        wake_at: None,
        timeout_at: None,
    })
}

/// The child's input of a workflow unit: the step's `workflow.input` rendered, with `item`
/// and `index` bound for a fan-out item; `{}` without one.
pub(super) fn render_input(
    state: &InstanceState,
    step: &StepDefinition,
    item: Option<u32>,
    budget: Budget,
) -> Result<Value, String> {
    let Some(template) = step
        .workflow
        .as_ref()
        .and_then(|child| child.input.as_ref())
    else {
        return Ok(json!({}));
    };
    let value =
        item.and_then(|index| fan_out_item(state, &step.id, index).map(|value| (index, value)));
    let mut scope = scope_for(state, Reads::Template(template), value, None);
    // The run's number, for a step with `repeat`, as for an action's `with`.
    scope.set(
        "iteration",
        json!(super::repeat::current_iteration(state, &step.id)),
    );
    expr::render(template, &scope.within(budget))
}

/// The command that starts the child of one workflow unit.
pub(super) fn start_command(
    instance: &InstanceId,
    step: &StepDefinition,
    child: &ChildWorkflow,
    item: Option<u32>,
    attempt: u32,
    input: &Option<Value>,
) -> Command {
    let work = WorkKey {
        step: step.id.clone(),
        item,
        attempt,
        compensation: false,
        iteration: None,
    };
    Command::StartChild(ChildStart {
        child: child_id(instance, &work),
        idempotency_key: work.idempotency_key(instance),
        work,
        definition: child.id.clone(),
        version: child.version,
        input: input.clone().unwrap_or_else(|| json!({})),
    })
}

/// Input `StartChild`: the child's `instance_started`, naming its parent's unit.
pub(super) fn start(
    facts: Facts,
    version: u32,
    input: &Value,
    parent: &ParentRef,
) -> Result<Vec<EventBody>, StepError> {
    if facts.state.phase != Phase::NotStarted {
        return Err(facts.rejected("the instance has started already"));
    }
    took("child.start");
    Ok(vec![EventBody::InstanceStarted {
        definition: facts.definition.id.clone(),
        version,
        input: input.clone(),
        history_version: HISTORY_VERSION,
        parent: Some(parent.clone()),
    }])
}

/// Input `ChildStarted`: `child_started` when the unit awaits its start, else nothing.
pub(super) fn child_started_facts(
    facts: Facts,
    work: &WorkKey,
    child: &InstanceId,
    definition: &DefinitionId,
    version: u32,
) -> Result<Vec<EventBody>, StepError> {
    let state = facts.state;
    let scheduled = !work.compensation
        && state.phase == Phase::Running
        && matches!(
            unit_of(state, &work.step, work.item),
            Some(Unit::Scheduled { attempt }) if *attempt == work.attempt
        );
    if !scheduled {
        took("child.unit.start.stale");
        return Ok(Vec::new());
    }
    took("child.unit.start");
    Ok(vec![EventBody::ChildStarted {
        step: work.step.clone(),
        attempt: work.attempt,
        item: work.item,
        child: child.clone(),
        definition: definition.clone(),
        version,
    }])
}

/// `child_started`: the unit runs until its child ends.
pub(super) fn started(
    fold: &mut Fold,
    step: &StepId,
    attempt: u32,
    item: Option<u32>,
) -> Result<(), StepError> {
    super::step::start_unit(
        fold,
        step,
        (attempt, item),
        "child.unit.started",
        "the workflow unit is not scheduled for this attempt",
    )
}

/// Links a child instance to its parent's unit (from its `instance_started`).
pub(super) fn link_parent(state: &mut InstanceState, parent: &Option<ParentRef>) {
    state.parent = parent.clone();
}

/// `commands` with a `CancelChild` beside each `AbandonWork` of a workflow unit, unless
/// `event` is that unit's own outcome (its child has ended already).
pub(super) fn with_cancels(
    instance: &InstanceId,
    definition: &Definition,
    event: &Event,
    commands: Vec<Command>,
) -> Vec<Command> {
    let is_workflow = |step: &StepId| {
        definition
            .step(step)
            .is_some_and(|step| step.workflow.is_some())
    };
    if !commands.iter().any(|command| {
        matches!(command, Command::AbandonWork { work } if !work.compensation && is_workflow(&work.step))
    }) {
        return commands;
    }
    let own_outcome = if let EventBody::StepSucceeded {
        step,
        attempt,
        item: None,
        ..
    }
    | EventBody::StepFailed {
        step,
        attempt,
        item: None,
        ..
    } = &event.body
    {
        Some((step, *attempt))
    } else {
        None
    };
    let mut out = Vec::with_capacity(commands.len() + 1);
    for command in commands {
        let cancel = match &command {
            Command::AbandonWork { work }
                if !work.compensation
                    && is_workflow(&work.step)
                    && (work.item.is_some() || own_outcome != Some((&work.step, work.attempt))) =>
            {
                took("child.cancel");
                Some(Command::CancelChild {
                    work: work.clone(),
                    child: child_id(instance, work),
                })
            }
            Command::AbandonWork { .. }
            | Command::Dispatch(_)
            | Command::StartTimer { .. }
            | Command::CancelTimer { .. }
            | Command::Finish { .. }
            | Command::StartChild(_)
            | Command::CancelChild { .. } => None,
        };
        out.push(command);
        out.extend(cancel);
    }
    out
}
