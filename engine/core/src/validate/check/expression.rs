//! Expressions: each `${...}` (or bare CEL condition) parses, and reads only the names
//! bound where it sits ([`Scope`]) and the steps that exist and have run by then: a step's
//! expressions read the steps upstream of it, the instance output reads any step, and a
//! trigger's input reads none. A step is read through its fields
//! ([`expr::STEP_FIELDS`]); any other field is an error.

use serde_json::Value;

use super::super::graph;
use super::super::path::Path;
use super::super::suggest::suggestion;
use super::Checker;
use crate::expr;

/// Names of CEL types, which expressions may use as values (`type(x) == string`).
const CEL_TYPE_NAMES: [&str; 10] = [
    "bool",
    "bytes",
    "double",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "type",
    "uint",
];

/// Names every step-level expression may read. `event` is only bound where an inbound
/// event is at hand: a trigger's input and a wait's `correlate`.
pub(super) const STEP_NAMES: [&str; 3] = ["input", "steps", "instance"];

/// Which steps an expression may read.
#[derive(Debug, Clone, Copy)]
pub(super) enum StepAccess {
    /// Any step of the definition (the instance output).
    Any,
    /// The steps that this step needs, directly or not; with `own` also itself.
    Upstream { step: usize, own: bool },
    /// None (trigger input).
    Nothing,
}

/// Where an expression sits: what it may read.
#[derive(Debug, Clone)]
pub(super) struct Scope {
    /// The names it may read.
    pub(super) names: Vec<&'static str>,
    /// The steps it may read.
    pub(super) steps: StepAccess,
}

impl Scope {
    /// The scope of an expression of step `step`, which may also read `extra` names.
    pub(super) fn step(step: usize, extra: &[&'static str], own: bool) -> Self {
        let mut names = STEP_NAMES.to_vec();
        names.extend_from_slice(extra);
        Self {
            names,
            steps: StepAccess::Upstream { step, own },
        }
    }
}

impl Checker<'_> {
    /// A condition: one `${...}` or bare CEL.
    pub(super) fn check_condition(&mut self, text: &str, at: &Path, scope: &Scope, field: &str) {
        if expr::is_template(text) {
            match (expr::single_expression(text), expr::expressions(text)) {
                (Some(source), _) => self.check_expression(source, at, scope),
                (None, Err(message)) => self.errors.push(at, message),
                (None, Ok(_)) => self.errors.push(
                    at,
                    format!(
                        "{field} must be one \"${{...}}\" expression (or bare CEL) that yields true or false, without text around it"
                    ),
                ),
            }
        } else {
            self.check_expression(text, at, scope);
        }
    }

    /// Every `${...}` in every string of `template`, each reported at its own path.
    pub(super) fn check_template(&mut self, template: &Value, at: &Path, scope: &Scope) {
        match template {
            Value::String(text) if expr::is_template(text) => match expr::expressions(text) {
                Ok(sources) => {
                    for source in sources {
                        self.check_expression(&source, at, scope);
                    }
                }
                Err(message) => self.errors.push(at, message),
            },
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    self.check_template(item, &at.index(index), scope);
                }
            }
            Value::Object(entries) => {
                for (key, item) in entries {
                    self.check_template(item, &at.key(key), scope);
                }
            }
            Value::String(_) | Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// One CEL expression: it parses, and reads only names and steps that it can.
    pub(super) fn check_expression(&mut self, source: &str, at: &Path, scope: &Scope) {
        let references = match expr::references(source) {
            Ok(references) => references,
            Err(message) => {
                self.errors.push(at, message);
                return;
            }
        };
        let shown = expr::abbreviate(source);
        for name in &references.names {
            if scope.names.contains(&name.as_str()) || CEL_TYPE_NAMES.contains(&name.as_str()) {
                continue;
            }
            let available = scope.names.join(", ");
            let message = match name.as_str() {
                "item" | "index" => format!(
                    "expression {shown:?}: {name:?} is only set in a step with for_each (its with, compensate, approval and correlate)"
                ),
                "output" => format!(
                    "expression {shown:?}: \"output\" is only set in compensate, where it is the compensated step's output"
                ),
                "iteration" => format!(
                    "expression {shown:?}: \"iteration\" is only set in the with, workflow.input and repeat.until of a step with repeat, where it is the run's number (from 1)"
                ),
                other if expr::SCOPE_NAMES.contains(&other) => format!(
                    "expression {shown:?}: {other:?} is not available here (available: {available})"
                ),
                other => format!(
                    "expression {shown:?}: unknown name {other:?} (available: {available}){}",
                    suggestion(other, &scope.names)
                ),
            };
            self.errors.push(at, message);
        }
        if !references.names.contains("steps") {
            return;
        }
        for (step_name, field) in &references.step_fields {
            if self.index_of.contains_key(step_name.as_str())
                && !expr::STEP_FIELDS.contains(&field.as_str())
            {
                self.errors.push(
                    at,
                    format!(
                        "expression {shown:?}: step {step_name:?} has no field {field:?} (fields: {}){}",
                        expr::STEP_FIELDS.join(", "),
                        suggestion(field, &expr::STEP_FIELDS)
                    ),
                );
            }
        }
        for step_name in &references.steps {
            let Some(&target) = self.index_of.get(step_name.as_str()) else {
                let ids = self.step_ids();
                let dashed = ids
                    .iter()
                    .find(|id| id.starts_with(&format!("{step_name}-")));
                let hint = match dashed {
                    Some(id) => {
                        format!(" (an id with dashes is written steps['{id}'] in an expression)")
                    }
                    None => suggestion(step_name, &ids),
                };
                self.errors.push(
                    at,
                    format!("expression {shown:?}: unknown step {step_name:?}{hint}"),
                );
                continue;
            };
            match scope.steps {
                StepAccess::Any => {}
                StepAccess::Nothing => {}
                StepAccess::Upstream { step, own } => {
                    if target == step && !own {
                        self.errors.push(
                            at,
                            format!(
                                "expression {shown:?}: a step cannot read its own result here (compensate can, as \"output\")"
                            ),
                        );
                    } else if target != step && !self.needs[step].contains(&target) {
                        // Told apart from an upstream read for all reads at once, at the end.
                        self.reads
                            .push((graph::Read { step, target }, self.errors.count()));
                        self.errors.push(
                            at,
                            format!(
                                "expression {shown:?}: reads step {step_name:?}, which step {:?} does not need; add {step_name:?} to its needs (directly or through another step)",
                                self.definition.steps[step].id.as_str()
                            ),
                        );
                    }
                }
            }
        }
    }
}
