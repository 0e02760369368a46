//! One step: its condition, fan-out, action and compensation (a known action whose `with`
//! fits the action's argument schema), approval title, assignees, form and bind, wait
//! correlation, sleep instant and child workflow input. `item` and `index` are in scope in
//! a fan-out's `with`, `compensate`, approval and `correlate`.

use serde_json::Value;

use super::super::path::Path;
use super::super::suggest::suggest;
use super::super::wording::Noun;
use super::Checker;
use super::expression::Scope;
use super::schemas::{compile_embedded_schema, template_schema_errors};
use crate::definition::{Sleep, StepDefinition};
use crate::expr;

impl<'a> Checker<'a> {
    /// Everything of one step but its needs.
    pub(super) fn check_step(&mut self, index: usize, step: &'a StepDefinition) {
        let at = Self::step_path(index);
        let base = Scope::step(index, &[], false);

        self.check_kind_fields(&at, step);
        if let Some(when) = &step.when {
            self.check_condition(when, &at.key("when"), &base, "when");
        }
        if let Some(for_each) = &step.for_each {
            self.check_for_each(for_each, &at.key("for_each"), &base);
        }
        let item = if step.for_each.is_some() {
            &["item", "index"][..]
        } else {
            &[][..]
        };
        if step.for_each.is_some() && step.sleep.is_some() {
            self.errors.push(
                &at.key("for_each"),
                "for_each works on action, approval, wait and workflow steps, not on sleep",
            );
        }

        if let Some(action) = &step.action {
            let mut with_names = item.to_vec();
            if step.repeat.is_some() {
                with_names.push("iteration");
            }
            let with_scope = Scope::step(index, &with_names, false);
            self.check_action(
                action,
                step.with.as_ref(),
                &at.key("action"),
                &at.key("with"),
                &with_scope,
            );
        }
        if let Some(compensation) = &step.compensate {
            let mut extra = vec!["output"];
            extra.extend_from_slice(item);
            let scope = Scope::step(index, &extra, true);
            let at_compensate = at.key("compensate");
            self.check_action(
                &compensation.action,
                compensation.with.as_ref(),
                &at_compensate.key("action"),
                &at_compensate.key("with"),
                &scope,
            );
        }
        if let Some(approval) = &step.approval {
            let at_approval = at.key("approval");
            let item_scope = Scope::step(index, item, false);
            self.check_template(
                &Value::String(approval.title.clone()),
                &at_approval.key("title"),
                &item_scope,
            );
            for (key, names) in [("users", &approval.users), ("groups", &approval.groups)] {
                for (position, entry) in names.entries() {
                    let at_entry = match position {
                        Some(position) => at_approval.key(key).index(position),
                        None => at_approval.key(key),
                    };
                    self.check_template(&Value::String(entry.to_owned()), &at_entry, &item_scope);
                }
            }
            if let Some(form) = &approval.form {
                let at_form = at_approval.key("form");
                self.check_template(form, &at_form, &item_scope);
                compile_embedded_schema(form, &at_form, self.errors);
            }
            if let Some(bind) = &approval.bind {
                self.check_bind(bind, &at_approval.key("bind"), &item_scope);
            }
        }
        if let Some(wait) = &step.wait {
            self.check_event_name(&wait.signal, &at.key("wait").key("signal"), "signal");
        }
        if let Some(wait) = &step.wait
            && let Some(correlate) = &wait.correlate
        {
            let mut names = vec!["event"];
            names.extend_from_slice(item);
            self.check_condition(
                correlate,
                &at.key("wait").key("correlate"),
                &Scope::step(index, &names, false),
                "correlate",
            );
        }
        if let Some(Sleep::Until { until }) = &step.sleep {
            let at_until = at.key("sleep").key("until");
            if expr::is_template(until) {
                self.check_template(&Value::String(until.clone()), &at_until, &base);
            } else if chrono::DateTime::parse_from_rfc3339(until.trim()).is_err() {
                self.errors.push(
                    &at_until,
                    format!(
                        "{until:?} is not an RFC 3339 instant: write e.g. 2026-12-01T09:00:00Z, or a \"${{...}}\" expression"
                    ),
                );
            }
        }
        if let Some(child) = &step.workflow {
            if child.id == self.definition.id {
                self.errors.push(
                    &at.key("workflow").key("id"),
                    format!(
                        "workflow {:?} cannot start itself as a child (it would never end)",
                        child.id.as_str()
                    ),
                );
            }
            if let Some(input) = &child.input {
                let mut names: Vec<&'static str> = if step.for_each.is_some() {
                    vec!["item", "index"]
                } else {
                    Vec::new()
                };
                if step.repeat.is_some() {
                    names.push("iteration");
                }
                let scope = Scope::step(index, &names, false);
                self.check_template(input, &at.key("workflow").key("input"), &scope);
            }
        }
        self.check_join_and_repeat(index, step);
    }

    /// An action name and its arguments.
    fn check_action(
        &mut self,
        action: &str,
        with: Option<&Value>,
        at_action: &Path,
        at_with: &Path,
        scope: &Scope,
    ) {
        if let Some(arguments) = with {
            self.check_template(arguments, at_with, scope);
        }
        let Some(argument_schema) = self.catalog.argument_schema(action) else {
            let known = self.catalog.actions();
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            let hint = match suggest(action, &known) {
                Some(close) => format!(" (did you mean {close:?}?)"),
                None => match action.split_once('.') {
                    Some((connector, _)) => {
                        let siblings: Vec<&str> = known
                            .iter()
                            .copied()
                            .filter(|name| {
                                name.split_once('.')
                                    .is_some_and(|(prefix, _)| prefix == connector)
                            })
                            .collect();
                        if siblings.is_empty() {
                            String::new()
                        } else {
                            format!(" (actions of {connector}: {})", siblings.join(", "))
                        }
                    }
                    None => " (actions are written connector.action, e.g. core.echo)".to_owned(),
                },
            };
            self.errors
                .push(at_action, format!("unknown action {action:?}{hint}"));
            return;
        };
        if !self.argument_validators.contains_key(action) {
            let compiled = jsonschema::validator_for(argument_schema).ok();
            self.argument_validators.insert(action.to_owned(), compiled);
        }
        let Some(Some(validator)) = self.argument_validators.get(action) else {
            self.errors.push(
                at_action,
                format!("action {action:?} has an argument schema that does not compile; report this to the connector's maintainers"),
            );
            return;
        };
        let empty = Value::Object(serde_json::Map::new());
        let arguments = with.unwrap_or(&empty);
        for (at, message) in template_schema_errors(
            validator,
            argument_schema,
            arguments,
            Noun::Argument(action),
        ) {
            self.errors.push(&at_with.join(&at), message);
        }
    }
}

impl<'a> Checker<'a> {
    /// `retry` and `compensate`, which only action and workflow steps take.
    fn check_kind_fields(&mut self, at: &Path, step: &'a StepDefinition) {
        if step.action.is_none() && step.workflow.is_none() {
            let fields = [
                ("retry", step.retry.is_some()),
                ("compensate", step.compensate.is_some()),
            ];
            for (field, _) in fields.iter().filter(|(_, present)| *present) {
                self.errors.push(
                at,
                format!(
                    "{field:?} is only allowed on action and workflow steps (steps with \"action\" or \"workflow\")"
                ),
            );
            }
        }
    }

    /// An approval's `bind`: one expression (it must yield artifacts, not text).
    fn check_bind(&mut self, bind: &str, at_bind: &Path, scope: &Scope) {
        match (expr::single_expression(bind), expr::expressions(bind)) {
            (Some(source), _) => self.check_expression(source, at_bind, scope),
            (None, Err(message)) => self.errors.push(at_bind, message),
            (None, Ok(_)) => self.errors.push(
                at_bind,
                "bind must be one \"${...}\" expression that yields an artifact {system, asset_id, version, sha256, size, content_type, file_name} or a list of them (e.g. \"${steps.fetch.output.content}\")",
            ),
        }
    }

    /// A `for_each`: a list, or one expression that yields one.
    fn check_for_each(&mut self, for_each: &'a Value, at_for_each: &Path, base: &Scope) {
        match for_each {
            Value::String(text) => match (expr::single_expression(text), expr::expressions(text)) {
                (Some(source), _) => self.check_expression(source, at_for_each, base),
                (None, Err(message)) => self.errors.push(at_for_each, message),
                (None, Ok(_)) => self.errors.push(
                    at_for_each,
                    "for_each must be a list, or one \"${...}\" expression that yields a list",
                ),
            },
            other @ (Value::Null
            | Value::Bool(_)
            | Value::Number(_)
            | Value::Array(_)
            | Value::Object(_)) => self.check_template(other, at_for_each, base),
        }
    }
}
