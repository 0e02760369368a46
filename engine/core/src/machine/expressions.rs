//! What expressions see ([`scope`], DESIGN.md §2), and rendering what the machine
//! evaluates: a step's arguments, a fan-out's items, a sleep's wake-up instant.
//!
//! Every `steps.<id>` holds all the fields of [`crate::expr::STEP_FIELDS`], null where they
//! do not apply (a skipped approval's `decision`), never "no such key". A step with
//! `repeat` also binds `iteration` in its `with`, and its `until` sees the run's output
//! ([`until_scope`]).
//!
//! The machine builds a scope for the expressions at hand ([`scope_for`]): `steps` holds
//! only the steps they name (`steps.a`, `steps['a']`), so that evaluating a step's `with`
//! costs what it reads, not what the instance holds; an expression that reads `steps` as a
//! whole or by a computed key sees every step.
//!
//! No transition rows: nothing here changes the state.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::definition::{Names, Sleep};
use crate::expr::{self, Budget, Scope};
use crate::id::StepId;
use crate::state::{InstanceState, StepState};

/// What an evaluation reads: a template (strings with `${...}`, at any depth) or a
/// condition (`"${...}"` or bare CEL).
#[derive(Debug, Clone, Copy)]
pub(super) enum Reads<'a> {
    /// A template.
    Template(&'a Value),
    /// A condition.
    Condition(&'a str),
}

/// The steps that `reads` names, or `None` when it may read any (or cannot be parsed:
/// the evaluation then reports the error); and whether it may read `input` (a fan-out's
/// items often come from the input: an item's arguments should not copy them all).
fn steps_read(reads: Reads<'_>) -> (Option<BTreeSet<String>>, bool) {
    let mut input = false;
    let steps = steps_and_input_read(reads, &mut input);
    let input = input || steps.is_none();
    (steps, input)
}

fn steps_and_input_read(reads: Reads<'_>, input: &mut bool) -> Option<BTreeSet<String>> {
    fn add(steps: &mut BTreeSet<String>, expression: &str) -> Option<()> {
        let references = expr::references(expression).ok()?;
        if references.all_steps {
            return None;
        }
        if references.names.contains("input") {
            steps.insert(INPUT_MARK.to_owned());
        }
        steps.extend(references.steps);
        Some(())
    }
    fn add_text(steps: &mut BTreeSet<String>, text: &str) -> Option<()> {
        if text.contains("${") {
            for expression in expr::expressions(text).ok()? {
                add(steps, &expression)?;
            }
        }
        Some(())
    }
    fn add_value(steps: &mut BTreeSet<String>, value: &Value) -> Option<()> {
        match value {
            Value::String(text) => add_text(steps, text),
            Value::Array(items) => items.iter().try_for_each(|item| add_value(steps, item)),
            Value::Object(map) => map.values().try_for_each(|item| add_value(steps, item)),
            Value::Null | Value::Bool(_) | Value::Number(_) => Some(()),
        }
    }
    let mut steps = BTreeSet::new();
    match reads {
        Reads::Template(template) => add_value(&mut steps, template)?,
        Reads::Condition(text) if expr::is_template(text) => {
            add_text(&mut steps, text)?;
        }
        Reads::Condition(text) => add(&mut steps, text)?,
    }
    *input = steps.remove(INPUT_MARK);
    Some(steps)
}

/// Noted among the steps read while collecting them when `input` is read (no step id
/// contains a space).
const INPUT_MARK: &str = " input";

/// The scope for evaluating `reads`: [`scope`] with `steps` cut to the steps it names.
pub(super) fn scope_for(
    state: &InstanceState,
    reads: Reads<'_>,
    item: Option<(u32, &Value)>,
    output: Option<&Value>,
) -> Scope {
    match steps_read(reads) {
        (None, _) => scope(state, item, output),
        (Some(named), reads_input) => {
            let steps = named
                .iter()
                .filter_map(|id| {
                    let (id, step_state) = state.steps.get_key_value(&StepId::from(id.as_str()))?;
                    Some((id.to_string(), step_entry(state, id, step_state)))
                })
                .collect();
            with_names(state, steps, item, output, reads_input)
        }
    }
}

/// The names expressions see (DESIGN.md §2), with every step in `steps`; a fan-out item
/// binds `index` and `item`.
pub fn scope(state: &InstanceState, item: Option<(u32, &Value)>, output: Option<&Value>) -> Scope {
    let steps = state
        .steps
        .iter()
        .map(|(id, step_state)| (id.to_string(), step_entry(state, id, step_state)))
        .collect();
    with_names(state, steps, item, output, true)
}

/// What `steps.<id>` holds: every field, null where it does not apply (DESIGN.md §2).
fn step_entry(state: &InstanceState, id: &StepId, step_state: &StepState) -> Value {
    let outcome = state
        .approvals
        .get(id)
        .and_then(|approval| approval.outcome.as_ref());
    let iterations = state.repeats.get(id).map_or(Value::Null, |progress| {
        Value::Array(progress.outputs.clone())
    });
    // A fan-out approval step's decision sums up its items' (their own fields are in
    // its output).
    let decision = if state.item_approvals.contains_key(id) {
        super::items::fan_out_decision(state, id)
    } else {
        outcome.map_or(Value::Null, |outcome| json!(outcome.decision))
    };
    json!({
        "status": state.step_status(id).unwrap_or_else(|| step_state.status()),
        "output": step_state.output().cloned().unwrap_or(Value::Null),
        "error": step_state.error().map_or(Value::Null, |error| json!(error)),
        "decision": decision,
        "comment": outcome.map_or(Value::Null, |outcome| json!(outcome.comment)),
        "user": outcome.map_or(Value::Null, |outcome| json!(outcome.user)),
        "data": outcome.map_or(Value::Null, |outcome| outcome.data.clone()),
        "iterations": iterations,
    })
}

/// The scope of the `until` of `step`'s repeat once run `iteration` succeeded with
/// `output`: `steps.<step>.output` is that output, `steps.<step>.iterations` every run's
/// so far, and `iteration` the run's number.
pub(super) fn until_scope(
    state: &InstanceState,
    step: &StepId,
    until: &str,
    iteration: u32,
    output: &Value,
) -> Scope {
    let mut scope = scope_for(state, Reads::Condition(until), None, None);
    let mut steps = match scope.get("steps") {
        Some(Value::Object(steps)) => steps.clone(),
        Some(_) | None => serde_json::Map::new(),
    };
    if let Some(step_state) = state.steps.get(step) {
        let mut entry = step_entry(state, step, step_state);
        let mut outputs = state
            .repeats
            .get(step)
            .map_or_else(Vec::new, |progress| progress.outputs.clone());
        outputs.push(output.clone());
        entry["output"] = output.clone();
        entry["iterations"] = Value::Array(outputs);
        steps.insert(step.to_string(), entry);
    }
    scope.set("steps", Value::Object(steps));
    scope.set("iteration", json!(iteration));
    scope
}

fn with_names(
    state: &InstanceState,
    steps: serde_json::Map<String, Value>,
    item: Option<(u32, &Value)>,
    output: Option<&Value>,
    input: bool,
) -> Scope {
    let mut scope = Scope::new()
        .with(
            "input",
            if input {
                state.input.clone()
            } else {
                Value::Null
            },
        )
        .with("steps", Value::Object(steps))
        .with(
            "instance",
            json!({
                "id": state.id.as_str(),
                "started_at": crate::history::format_instant(state.started_at),
            }),
        );
    if let Some((index, item)) = item {
        scope.set("item", item.clone());
        scope.set("index", json!(index));
    }
    if let Some(output) = output {
        scope.set("output", output.clone());
    }
    scope
}

/// A step's `with` rendered (with `item` and `index` bound for a fan-out item, and
/// `iteration`, the number of the run, for a step with `repeat`); `{}` without one.
pub(super) fn render_arguments(
    state: &InstanceState,
    step: &StepId,
    with: Option<&Value>,
    item: Option<(u32, &Value)>,
    budget: Budget,
) -> Result<Value, String> {
    match with {
        None => Ok(json!({})),
        Some(template) if !has_expression(template) => Ok(template.clone()),
        Some(template) => {
            let mut scope = scope_for(state, Reads::Template(template), item, None);
            let iteration = state
                .repeats
                .get(step)
                .map_or(1, |progress| progress.iteration);
            scope.set("iteration", json!(iteration));
            expr::render(template, &scope.within(budget))
        }
    }
}

/// A fan-out's `for_each` resolved to its list of items.
pub(super) fn resolve_items(
    state: &InstanceState,
    for_each: &Value,
    budget: Budget,
) -> Result<Vec<Value>, String> {
    let resolved = if has_expression(for_each) {
        expr::render(
            for_each,
            &scope_for(state, Reads::Template(for_each), None, None).within(budget),
        )?
    } else {
        for_each.clone()
    };
    match resolved {
        Value::Array(items) => Ok(items),
        other @ (Value::Null
        | Value::Bool(_)
        | Value::Number(_)
        | Value::String(_)
        | Value::Object(_)) => Err(format!("expected a list, got {other}")),
    }
}

/// When a sleep step that starts at `at` wakes.
pub(super) fn wake_at(
    state: &InstanceState,
    sleep: &Sleep,
    at: DateTime<Utc>,
    budget: Budget,
) -> Result<DateTime<Utc>, String> {
    match sleep {
        Sleep::For(duration) => chrono::Duration::from_std(*duration)
            .map(|duration| at + duration)
            .map_err(|error| format!("duration out of range: {error}")),
        Sleep::Until { until } => {
            let until = Value::String(until.clone());
            let value = expr::render(
                &until,
                &scope_for(state, Reads::Template(&until), None, None).within(budget),
            )?;
            let text = value
                .as_str()
                .ok_or_else(|| format!("until must be an RFC 3339 instant, got {value}"))?;
            DateTime::parse_from_rfc3339(text)
                .map(|instant| instant.with_timezone(&Utc))
                .map_err(|error| format!("until {text:?} is not an RFC 3339 instant: {error}"))
        }
    }
}

/// Approval assignees (`users` or `groups`) rendered to names, in order and without
/// duplicates: each entry is a name or an expression yielding a name, a list of names,
/// or null (no one).
pub(super) fn render_names(
    state: &InstanceState,
    names: &Names,
    item: Option<(u32, &Value)>,
    budget: Budget,
) -> Result<Vec<String>, String> {
    let mut rendered: Vec<String> = Vec::new();
    let mut add = |name: String| {
        if !rendered.contains(&name) {
            rendered.push(name);
        }
    };
    for (_, entry) in names.entries() {
        if !entry.contains("${") {
            add(entry.to_owned());
            continue;
        }
        let template = Value::String(entry.to_owned());
        let value = expr::render(
            &template,
            &scope_for(state, Reads::Template(&template), item, None).within(budget),
        )?;
        let values = match value {
            Value::Null => Vec::new(),
            Value::Array(values) => values,
            other @ (Value::Bool(_) | Value::Number(_) | Value::String(_) | Value::Object(_)) => {
                vec![other]
            }
        };
        for value in values {
            match value {
                Value::String(name) if !name.trim().is_empty() => add(name),
                other @ (Value::Null
                | Value::Bool(_)
                | Value::Number(_)
                | Value::String(_)
                | Value::Array(_)
                | Value::Object(_)) => {
                    return Err(format!(
                        "{entry:?} must yield names (strings), a list of them or null; got {other}"
                    ));
                }
            }
        }
    }
    Ok(rendered)
}

/// Whether `value` holds a `${...}` anywhere.
pub(super) fn has_expression(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains("${"),
        Value::Array(items) => items.iter().any(has_expression),
        Value::Object(map) => map.values().any(has_expression),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}
