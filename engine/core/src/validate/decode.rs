//! Decoding: turning a document into a typed [`Definition`](crate::definition::Definition)
//! without losing errors on the way.
//!
//! A YAML syntax error is put in plain words with its line and column. Durations that do
//! not parse are reported at their exact path and removed, so that the rest of the
//! document still deserializes and gets its semantic checks. A deserialization error that
//! the schema did not already explain is placed at the first step or trigger that fails on
//! its own.

use serde_json::Value;

use super::DefinitionError;
use super::path::{Errors, Path};
use crate::definition::{StepDefinition, Trigger};
use crate::duration;

/// A YAML syntax error, at the document root, naming its line and column.
pub(super) fn yaml_error(error: &serde_saphyr::Error) -> DefinitionError {
    let detail = plain_yaml_message(&first_line(&error.to_string()));
    let message = match error.location() {
        Some(location) => format!(
            "line {}, column {}: {detail}",
            location.line(),
            location.column()
        ),
        None => detail,
    };
    DefinitionError {
        path: String::new(),
        message: format!("invalid YAML: {message}"),
    }
}

/// The first line of a message, trimmed.
fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_owned()
}

/// A YAML parser message without the location it repeats (the caller puts it first) and
/// without advice aimed at programmers.
fn plain_yaml_message(message: &str) -> String {
    let mut text = message.trim();
    text = text.strip_prefix("error: ").unwrap_or(text);
    if text.starts_with("line ")
        && let Some((_, rest)) = text.split_once(": ")
    {
        text = rest;
    }
    if let Some(position) = text.find(" at line ") {
        text = &text[..position];
    }
    if let Some(position) = text.find(", set DuplicateKeyPolicy") {
        text = &text[..position];
    }
    text.to_owned()
}

/// Reports every duration that does not parse, and removes it from `document`.
pub(super) fn check_durations(document: &mut Value, errors: &mut Errors) {
    check_trigger_durations(document, errors);
    let Some(steps) = document.get_mut("steps").and_then(Value::as_array_mut) else {
        return;
    };
    for (index, step) in steps.iter_mut().enumerate() {
        let at = Path::root().key("steps").index(index);
        let Some(step) = step.as_object_mut() else {
            continue;
        };
        check_duration_field(step, "timeout", &at, errors);
        if let Some(sleep) = step.get("sleep")
            && !sleep.is_object()
        {
            check_duration_field(step, "sleep", &at, errors);
        }
        for (parent, fields) in [
            ("retry", &["initial_interval", "max_interval"][..]),
            ("approval", &["due"][..]),
            ("wait", &["timeout"][..]),
            ("repeat", &["interval"][..]),
        ] {
            if let Some(object) = step.get_mut(parent).and_then(Value::as_object_mut) {
                for field in fields {
                    check_duration_field(object, field, &at.key(parent), errors);
                }
            }
        }
        match step
            .get_mut("approval")
            .and_then(|approval| approval.get_mut("escalate_to"))
        {
            Some(Value::Object(escalation)) => check_duration_field(
                escalation,
                "due",
                &at.key("approval").key("escalate_to"),
                errors,
            ),
            Some(Value::Array(levels)) => {
                for (level_index, level) in levels.iter_mut().enumerate() {
                    if let Some(level) = level.as_object_mut() {
                        check_duration_field(
                            level,
                            "due",
                            &at.key("approval").key("escalate_to").index(level_index),
                            errors,
                        );
                    }
                }
            }
            Some(_) | None => {}
        }
    }
}

/// The `expiring_within` of each `rights` trigger.
fn check_trigger_durations(document: &mut Value, errors: &mut Errors) {
    let Some(triggers) = document.get_mut("triggers").and_then(Value::as_array_mut) else {
        return;
    };
    for (index, trigger) in triggers.iter_mut().enumerate() {
        if let Some(rights) = trigger.get_mut("rights").and_then(Value::as_object_mut) {
            let at = Path::root().key("triggers").index(index).key("rights");
            check_duration_field(rights, "expiring_within", &at, errors);
        }
    }
}

fn check_duration_field(
    object: &mut serde_json::Map<String, Value>,
    field: &str,
    at: &Path,
    errors: &mut Errors,
) {
    let valid = match object.get(field) {
        None => return,
        Some(Value::String(text)) => match duration::parse(text) {
            Ok(_) => true,
            Err(message) => {
                errors.push(&at.key(field), message);
                false
            }
        },
        // Other shapes (negative numbers, bools, ...) are reported by the schema.
        Some(Value::Number(number)) => number.as_f64().is_some_and(|seconds| seconds >= 0.0),
        Some(_) => false,
    };
    if !valid {
        object.remove(field);
    }
}

/// Places a deserialization error: the first step or trigger that fails on its own, or
/// the root.
pub(super) fn locate_deserialize_error(
    document: &Value,
    error: serde_json::Error,
) -> (Path, String) {
    first_failing::<StepDefinition>(document, "steps")
        .or_else(|| first_failing::<Trigger>(document, "triggers"))
        .unwrap_or_else(|| (Path::root(), plain_serde_message(&error)))
}

/// The first item of the list `field` that does not deserialize as a `T` on its own.
fn first_failing<T: serde::de::DeserializeOwned>(
    document: &Value,
    field: &str,
) -> Option<(Path, String)> {
    document
        .get(field)?
        .as_array()?
        .iter()
        .enumerate()
        .find_map(|(index, item)| {
            T::deserialize(item).err().map(|error| {
                (
                    Path::root().key(field).index(index),
                    plain_serde_message(&error),
                )
            })
        })
}

/// A serde message with its backticks turned into the double quotes of our messages.
fn plain_serde_message(error: &serde_json::Error) -> String {
    error.to_string().replace('`', "\"")
}
