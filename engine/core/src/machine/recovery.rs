//! Recovery, audited: an operator's re-run of a finished instance, and moving a running
//! instance to another version of its definition (migration). The rules are in
//! `docs/design/migration.md`.
//!
//! A re-run makes the named step and every step downstream of it (through `needs`,
//! transitively) pending again with their next attempts, and the steps the failure
//! cancelled too; the steps upstream keep their outputs. Without a step, only the output
//! is evaluated again. It may replace the start input and the rendered `with` of the
//! action steps it re-runs. A failed instance whose compensations ran is refused: a re-run
//! would build on work the compensations undid. A cancelled one is refused too.
//!
//! A migration is checked against the instance's state ([`migration_problems`]); its event
//! is folded with the version it moves to, and so is everything after it (replay switches
//! definitions at that event).
//!
//! | id | state | event or input | effect |
//! |---|---|---|---|
//! | `recovery.rerun` | completed, or failed with nothing compensated; the request fits the definition; every failed step runs again | input `Rerun` | `instance_rerun` with the steps it resets |
//! | `recovery.rerun.refused` | anything else (running, cancelled, compensated, a failed step that would not run again, an unknown step) | input `Rerun` | rejected |
//! | `recovery.rerun_started` | completed, or failed with nothing compensated | `instance_rerun` | running; the reset steps pending with their next attempts and their completions dropped; input and re-run arguments replaced |
//! | `recovery.arguments` | an action step (no fan-out) with re-run arguments, scheduled | derived, or input `TimerFired` (retry) | `step_scheduled` with those arguments instead of its rendered `with` |
//! | `recovery.migrate` | running; every started step is in the new version (after the mapping), of the same kind and fan-out; no active step renamed | input `Migrate` | `instance_migrated` |
//! | `recovery.migrate.refused` | anything else | input `Migrate` | rejected, with every reason |
//! | `recovery.migrated` | running on `from_version` | `instance_migrated` (folded with the new version) | steps renamed by the mapping, steps the new version lacks (pending or skipped) dropped, its new steps pending; runs on `to_version` |

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::definition::{Definition, StepDefinition, StepKind};
use crate::event::EventBody;
use crate::expr::Budget;
use crate::id::StepId;
use crate::state::{InstanceState, Phase, StepState};

use super::coverage::took;
use super::expressions::render_arguments;
use super::{Facts, Fold, Input, InputBody, StepError};

/// The definition that an input's events fold with: a migration's new version, otherwise
/// the instance's own.
pub(super) fn definition_after<'d>(input: &'d Input, definition: &'d Definition) -> &'d Definition {
    if let InputBody::Migrate { to, .. } = &input.body {
        to
    } else {
        definition
    }
}

/// The arguments of an action step's unit: its re-run arguments when a re-run gave some,
/// otherwise its rendered `with`.
pub(super) fn arguments(
    state: &InstanceState,
    step: &StepId,
    with: Option<&Value>,
    budget: Budget,
) -> Result<Value, String> {
    match state.reruns.arguments.get(step) {
        Some(arguments) => {
            took("recovery.arguments");
            Ok(arguments.clone())
        }
        None => render_arguments(state, step, with, None, budget),
    }
}

/// What a re-run resets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RerunPlan {
    /// The steps made pending again, in definition order.
    pub steps_reset: Vec<StepId>,
}

/// Why a re-run is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RerunRefusal {
    /// The request does not fit the definition: every problem as `(path, message)`, the
    /// path into the request (`from_step`, `arguments.<step>`).
    Invalid(Vec<(String, String)>),
    /// The instance's state refuses it (running, cancelled, compensated, …).
    Conflict(String),
}

/// Checks a re-run of `state` from `from_step` with `arguments`, and says what it resets.
///
/// Problems of the request itself come first ([`RerunRefusal::Invalid`]); then the state's
/// refusal ([`RerunRefusal::Conflict`]).
pub fn rerun_plan(
    state: &InstanceState,
    definition: &Definition,
    from_step: Option<&StepId>,
    arguments: &BTreeMap<StepId, Value>,
) -> Result<RerunPlan, RerunRefusal> {
    let mut problems = Vec::new();
    let mut reset = BTreeSet::new();
    if let Some(from_step) = from_step {
        match definition.position(from_step) {
            Some(position) => reset = downstream(definition, position),
            None => problems.push((
                "from_step".to_owned(),
                format!(
                    "version {} of definition {} has no step \"{from_step}\"",
                    state.version, state.definition
                ),
            )),
        }
    }
    for (step, value) in arguments {
        if let Some(message) = argument_problem(definition, &reset, from_step, step, value) {
            problems.push((format!("arguments.{step}"), message));
        }
    }
    if !problems.is_empty() {
        return Err(RerunRefusal::Invalid(problems));
    }
    state_refusal(state).map_err(RerunRefusal::Conflict)?;
    for (step, step_state) in &state.steps {
        if matches!(step_state, StepState::Cancelled { .. })
            && let Some(position) = definition.position(step)
        {
            reset.insert(position);
        }
    }
    for (position, step) in definition.steps.iter().enumerate() {
        let Some(step_state) = state.steps.get(&step.id) else {
            continue;
        };
        let stays_failed = matches!(
            step_state,
            StepState::Failed {
                continued: false,
                ..
            }
        ) && !reset.contains(&position);
        if stays_failed {
            let id = &step.id;
            return Err(RerunRefusal::Conflict(match from_step {
                Some(from_step) => format!(
                    "step \"{id}\" failed and is not downstream of \"{from_step}\": re-run from \"{id}\" or a step upstream of it"
                ),
                None => {
                    format!("step \"{id}\" failed: name it (or a step upstream of it) in from_step")
                }
            }));
        }
    }
    Ok(RerunPlan {
        steps_reset: reset
            .into_iter()
            .map(|position| definition.steps[position].id.clone())
            .collect(),
    })
}

/// The step at `position` and every step that needs it, transitively.
fn downstream(definition: &Definition, position: usize) -> BTreeSet<usize> {
    let mut found = BTreeSet::from([position]);
    let mut next = vec![position];
    while let Some(position) = next.pop() {
        for &dependent in definition.dependents(position) {
            if found.insert(dependent) {
                next.push(dependent);
            }
        }
    }
    found
}

/// What is wrong with re-run arguments for `step`, if anything.
fn argument_problem(
    definition: &Definition,
    reset: &BTreeSet<usize>,
    from_step: Option<&StepId>,
    step: &StepId,
    value: &Value,
) -> Option<String> {
    let Some(position) = definition.position(step) else {
        return Some(format!("the definition has no step \"{step}\""));
    };
    let step_definition = &definition.steps[position];
    let kind = kind_name(step_definition);
    if kind != "action" {
        return Some(format!(
            "step \"{step}\" is {} {kind} step: only action steps take arguments",
            article(kind)
        ));
    }
    if step_definition.for_each.is_some() {
        return Some(format!(
            "step \"{step}\" fans out (for_each): its arguments are rendered per item and cannot be replaced"
        ));
    }
    if !value.is_object() {
        return Some("arguments must be an object".to_owned());
    }
    if !reset.contains(&position) {
        return Some(match from_step {
            Some(from_step) => format!(
                "step \"{step}\" does not run again: it is neither \"{from_step}\" nor downstream of it"
            ),
            None => format!("step \"{step}\" does not run again: name from_step"),
        });
    }
    None
}

/// Why the state refuses any re-run, if it does.
fn state_refusal(state: &InstanceState) -> Result<(), String> {
    match &state.phase {
        Phase::Completed { .. }
        | Phase::Failed {
            compensated: false, ..
        } => Ok(()),
        Phase::Failed {
            compensated: true, ..
        } => Err(
            "the instance's compensations have run: a re-run would build on work they undid; start a new instance"
                .to_owned(),
        ),
        Phase::Cancelled { .. } => {
            Err("a cancelled instance cannot be re-run; start a new instance".to_owned())
        }
        Phase::NotStarted | Phase::Running | Phase::Compensating { .. } => Err(format!(
            "only a completed or failed instance can be re-run; this one is {}",
            state.status()
        )),
    }
}

/// Input `Rerun`.
pub(super) fn rerun(
    facts: Facts,
    from_step: &Option<StepId>,
    input: &Option<Value>,
    arguments: &BTreeMap<StepId, Value>,
) -> Result<Vec<EventBody>, StepError> {
    match rerun_plan(facts.state, facts.definition, from_step.as_ref(), arguments) {
        Ok(plan) => {
            took("recovery.rerun");
            Ok(vec![EventBody::InstanceRerun {
                from_step: from_step.clone(),
                input: input.clone(),
                arguments: arguments.clone(),
                steps_reset: plan.steps_reset,
            }])
        }
        Err(refusal) => {
            took("recovery.rerun.refused");
            Err(facts.rejected(&match refusal {
                RerunRefusal::Conflict(message) => message,
                RerunRefusal::Invalid(problems) => problems
                    .iter()
                    .map(|(path, message)| format!("{path}: {message}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            }))
        }
    }
}

/// `instance_rerun`.
pub(super) fn rerun_started(
    fold: &mut Fold,
    input: &Option<Value>,
    arguments: &BTreeMap<StepId, Value>,
    steps_reset: &[StepId],
) -> Result<(), StepError> {
    state_refusal(fold.state).map_err(|message| fold.invalid(&message))?;
    took("recovery.rerun_started");
    let state = &mut *fold.state;
    for step in steps_reset {
        let instance = state.id.clone();
        let step_state = state
            .steps
            .get_mut(step)
            .ok_or_else(|| StepError::UnknownStep {
                instance,
                step: step.clone(),
            })?;
        let used = match &*step_state {
            StepState::Pending { attempt } => attempt.saturating_sub(1),
            other @ (StepState::Active { .. }
            | StepState::Succeeded { .. }
            | StepState::Failed { .. }
            | StepState::Skipped { .. }
            | StepState::Cancelled { .. }) => other.attempts(),
        };
        // A step with `repeat` numbers each run's attempts from 1: above them all.
        let used = state
            .repeats
            .remove(step)
            .map_or(used, |progress| used.max(progress.max_attempt));
        state.item_approvals.remove(step);
        let floor = state.reruns.attempts.get(step).copied().unwrap_or(0);
        let attempt = used.max(floor) + 1;
        *step_state = StepState::Pending { attempt };
        state.reruns.attempts.insert(step.clone(), attempt);
    }
    state
        .completions
        .retain(|completion| !steps_reset.contains(&completion.step));
    if let Some(input) = input {
        state.input = input.clone();
    }
    state.reruns.arguments = arguments.clone();
    state.phase = Phase::Running;
    Ok(())
}

/// Every reason why `state`, running on `from`, cannot move to `to` (version
/// `to_version`) with `mapping` (old step id to new step id); empty when it can.
///
/// The rules: only a running or waiting instance moves, and not to the version it runs
/// on. Every step that started (active, succeeded, failed or cancelled) must exist in the
/// new version under its mapped id, with the same kind (action, approval, wait, sleep,
/// workflow) and the same fan-out (`for_each` or not); an active step keeps its id (its
/// queued work, timers and approvals are named by it). No two steps may map to one.
/// Pending and skipped steps that the new version lacks are dropped; its new steps start
/// pending.
pub fn migration_problems(
    state: &InstanceState,
    from: &Definition,
    to: &Definition,
    to_version: u32,
    mapping: &BTreeMap<StepId, StepId>,
) -> Vec<String> {
    let mut problems = Vec::new();
    match &state.phase {
        Phase::Running => {}
        Phase::Compensating { .. } => {
            problems.push("the instance is compensating a failure".to_owned())
        }
        Phase::NotStarted
        | Phase::Completed { .. }
        | Phase::Failed { .. }
        | Phase::Cancelled { .. } => {
            problems.push(format!(
                "the instance is {}: only running or waiting instances move",
                state.status()
            ));
        }
    }
    if to.id != state.definition {
        problems.push(format!(
            "version {to_version} belongs to definition {}, not {}",
            to.id, state.definition
        ));
    }
    if state.version == to_version {
        problems.push(format!("the instance runs on version {to_version} already"));
    }
    let mut targets: BTreeMap<&StepId, &StepId> = BTreeMap::new();
    for (old, step_state) in &state.steps {
        let target = mapping.get(old).unwrap_or(old);
        let present = to.step(target);
        if let Some(earlier) = targets.insert(target, old)
            && present.is_some()
        {
            problems.push(format!(
                "steps \"{earlier}\" and \"{old}\" would both become step \"{target}\""
            ));
        }
        if matches!(
            step_state,
            StepState::Pending { .. } | StepState::Skipped { .. }
        ) {
            continue;
        }
        let status = status_name(step_state);
        let Some(new_step) = present else {
            problems.push(format!(
                "step \"{old}\" is {status} and version {to_version} has no step \"{target}\""
            ));
            continue;
        };
        let old_kind = from.step(old).map_or("unknown", kind_name);
        let new_kind = kind_name(new_step);
        if old_kind != new_kind {
            problems.push(format!(
                "step \"{old}\" is {status}: it is {} {old_kind} step in version {} and {} {new_kind} step in version {to_version}",
                article(old_kind),
                state.version,
                article(new_kind)
            ));
        } else if from
            .step(old)
            .is_some_and(|old_step| old_step.for_each.is_some())
            != new_step.for_each.is_some()
        {
            problems.push(format!(
                "step \"{old}\" is {status}: it fans out (for_each) in only one of versions {} and {to_version}",
                state.version
            ));
        }
        if matches!(step_state, StepState::Active { .. }) && target != old {
            problems.push(format!(
                "step \"{old}\" is {status}: an active step cannot be renamed (to \"{target}\")"
            ));
        }
    }
    problems
}

/// Input `Migrate`.
pub(super) fn migrate(
    facts: Facts,
    to_version: u32,
    to: &Definition,
    mapping: &BTreeMap<StepId, StepId>,
) -> Result<Vec<EventBody>, StepError> {
    let problems = migration_problems(facts.state, facts.definition, to, to_version, mapping);
    if !problems.is_empty() {
        took("recovery.migrate.refused");
        return Err(facts.rejected(&problems.join("; ")));
    }
    took("recovery.migrate");
    Ok(vec![EventBody::InstanceMigrated {
        from_version: facts.state.version,
        to_version,
        mapping: mapping
            .iter()
            .filter(|(old, new)| old != new && facts.state.steps.contains_key(*old))
            .map(|(old, new)| (old.clone(), new.clone()))
            .collect(),
    }])
}

/// `instance_migrated`, folded with the definition of `to_version`.
pub(super) fn migrated(
    fold: &mut Fold,
    from_version: u32,
    to_version: u32,
    mapping: &BTreeMap<StepId, StepId>,
) -> Result<(), StepError> {
    if fold.state.phase != Phase::Running || fold.state.version != from_version {
        return Err(fold.invalid(&format!(
            "the instance is {} on version {}, not running on version {from_version}",
            fold.state.status(),
            fold.state.version
        )));
    }
    let definition = fold.definition;
    let rename = |step: &StepId| mapping.get(step).unwrap_or(step).clone();
    let mut steps = BTreeMap::new();
    for (old, step_state) in &fold.state.steps {
        let target = rename(old);
        if definition.step(&target).is_none() {
            if matches!(
                step_state,
                StepState::Pending { .. } | StepState::Skipped { .. }
            ) {
                continue;
            }
            return Err(fold.invalid(&format!(
                "step \"{old}\" has started and version {to_version} has no step \"{target}\""
            )));
        }
        if steps.insert(target.clone(), step_state.clone()).is_some() {
            return Err(fold.invalid(&format!("two steps would become step \"{target}\"")));
        }
    }
    took("recovery.migrated");
    for step in &definition.steps {
        steps
            .entry(step.id.clone())
            .or_insert(StepState::Pending { attempt: 1 });
    }
    let state = &mut *fold.state;
    state.steps = steps;
    for completion in &mut state.completions {
        completion.step = rename(&completion.step);
    }
    state.approvals = std::mem::take(&mut state.approvals)
        .into_iter()
        .map(|(step, approval)| (rename(&step), approval))
        .filter(|(step, _)| definition.step(step).is_some())
        .collect();
    let reruns = &mut state.reruns;
    reruns.arguments = std::mem::take(&mut reruns.arguments)
        .into_iter()
        .map(|(step, arguments)| (rename(&step), arguments))
        .filter(|(step, _)| definition.step(step).is_some())
        .collect();
    reruns.attempts = std::mem::take(&mut reruns.attempts)
        .into_iter()
        .map(|(step, attempt)| (rename(&step), attempt))
        .filter(|(step, _)| definition.step(step).is_some())
        .collect();
    state.version = to_version;
    Ok(())
}

/// `action`, `approval`, `wait`, `sleep`, `workflow`, or `unknown`.
fn kind_name(step: &StepDefinition) -> &'static str {
    match step.kind() {
        Some(StepKind::Action { .. }) => "action",
        Some(StepKind::Approval(_)) => "approval",
        Some(StepKind::Wait(_)) => "wait",
        Some(StepKind::Sleep(_)) => "sleep",
        Some(StepKind::Workflow(_)) => "workflow",
        None => "unknown",
    }
}

fn article(kind: &str) -> &'static str {
    if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// The step's status as users read it (`succeeded`, `waiting`, …).
fn status_name(step_state: &StepState) -> String {
    serde_json::to_value(step_state.status())
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{:?}", step_state.status()))
}
