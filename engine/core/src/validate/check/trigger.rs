//! Triggers: a cron expression that parses (its problem said in one line), a known IANA
//! time zone, an event that its source emits, a `when` filter on event and rights triggers
//! only that reads only `event`, and an input whose expressions read only the inbound `event` and
//! which fits the definition's input schema.

use std::str::FromStr;

use jsonschema::Validator;

use super::super::path::Path;
use super::super::suggest::suggestion;
use super::super::wording::Noun;
use super::Checker;
use super::expression::{Scope, StepAccess};
use super::schemas::template_schema_errors;
use crate::definition::Trigger;

impl Checker<'_> {
    /// A trigger: its cron expression, time zone, and input (checked against the
    /// definition's input schema).
    pub(super) fn check_trigger(
        &mut self,
        index: usize,
        trigger: &Trigger,
        input_validator: Option<&Validator>,
    ) {
        let at = Path::root().key("triggers").index(index);
        if let Some(cron) = &trigger.cron
            && let Err(error) = cron::Schedule::from_str(cron)
        {
            self.errors.push(
                &at.key("cron"),
                format!(
                    "invalid cron expression {cron:?}: {} (write seconds minutes hours day-of-month month day-of-week [year], e.g. \"0 0 7 * * Mon-Fri\")",
                    cron_problem(cron, &error)
                ),
            );
        }
        if let Some(zone) = &trigger.timezone
            && chrono_tz::Tz::from_str(zone).is_err()
        {
            let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
            self.errors.push(
                &at.key("timezone"),
                format!(
                    "unknown time zone {zone:?}{} (use an IANA name such as Europe/Berlin or UTC)",
                    suggestion(zone, &names)
                ),
            );
        }
        if let Some(event) = &trigger.event {
            self.check_event_name(event, &at.key("event"), "event");
        }
        self.check_trigger_when(trigger, &at);
        if let Some(input) = &trigger.input {
            let scope = Scope {
                names: vec!["event"],
                steps: StepAccess::Nothing,
            };
            let at_input = at.key("input");
            self.check_template(input, &at_input, &scope);
            if let (Some(validator), Some(schema)) = (input_validator, &self.definition.input) {
                for (path, message) in template_schema_errors(validator, schema, input, Noun::Field)
                {
                    self.errors.push(&at_input.join(&path), message);
                }
            }
        }
    }
}

impl Checker<'_> {
    /// A trigger's `when`: only on event triggers, one condition that reads `event` only.
    fn check_trigger_when(&mut self, trigger: &Trigger, at: &Path) {
        let Some(when) = &trigger.when else {
            return;
        };
        let at_when = at.key("when");
        if trigger.event.is_none() && trigger.rights.is_none() {
            self.errors.push(
                &at_when,
                "\"when\" is only allowed on event and rights triggers: it filters events, and a cron tick has none (put the condition on the first step's \"when\")",
            );
            return;
        }
        let scope = Scope {
            names: vec!["event"],
            steps: StepAccess::Nothing,
        };
        self.check_condition(when, &at_when, &scope, "when");
    }
}

/// The reason a cron expression does not parse, in one line.
fn cron_problem(expression: &str, error: &cron::error::Error) -> String {
    let fields = expression.split_whitespace().count();
    if !(6..=7).contains(&fields) {
        return format!("it has {fields} fields, a cron expression has 6 or 7");
    }
    let text = error.to_string();
    let detail: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| {
            !line.is_empty() && *line != expression.trim() && !line.chars().all(|c| c == '^')
        })
        .map(|line| line.trim_end_matches('.'))
        .collect::<Vec<_>>();
    if detail.is_empty() {
        "it does not parse".to_owned()
    } else {
        lowercase_first(&detail.join("; "))
    }
}

/// The text with its first letter in lower case.
fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
