//! The analyst-facing wording of JSON Schema errors: each error of the workflow schema or
//! of an action's argument schema becomes one or more messages in plain words (`missing
//! required field "id"`, `unknown argument "qurey" of action "iconik.search_assets" (did
//! you mean "query"?)`), or the schema's own `x-messages` text where it has one.

use jsonschema::ValidationError;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

use super::suggest::suggestion_or_list;

/// What the properties of the validated object are called in messages.
#[derive(Debug, Clone, Copy)]
pub(super) enum Noun<'a> {
    /// Fields of the definition itself.
    Field,
    /// Arguments of an action.
    Argument(&'a str),
}

impl Noun<'_> {
    fn word(&self) -> &'static str {
        match self {
            Noun::Field => "field",
            Noun::Argument(_) => "argument",
        }
    }

    fn suffix(&self) -> String {
        match self {
            Noun::Field => String::new(),
            Noun::Argument(action) => format!(" of action {action:?}"),
        }
    }
}

/// The messages for one schema error (several for several unknown properties).
///
/// `located` is the value at the error's instance path in the validated document.
pub(super) fn schema_messages(
    error: &ValidationError<'_>,
    schema_root: &Value,
    located: Option<&Value>,
    noun: Noun<'_>,
) -> Vec<String> {
    let kind = error.kind();
    let schema_path: Vec<String> = error
        .schema_path()
        .iter()
        .map(|segment| segment.to_string())
        .collect();
    // The last segment is the keyword as written (`dependentRequired` reports a `required`
    // kind); the node before it holds the keyword and our `x-messages`.
    let (keyword, owner) = match schema_path.split_last() {
        Some((last, parents)) => (last.as_str(), schema_node(schema_root, parents)),
        None => (kind.keyword(), Some(schema_root)),
    };
    let instance = error.instance();

    if let Some(custom) = custom_message(kind, keyword, owner, instance) {
        return vec![custom];
    }

    let word = noun.word();
    let suffix = noun.suffix();
    match kind {
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            unknown_properties(unexpected, owner, noun)
        }
        // `additionalProperties: false` without `properties` reports a false schema at the
        // object without naming the property: name every one here.
        ValidationErrorKind::FalseSchema
            if keyword == "additionalProperties"
                && owner.is_some_and(|node| node.get("patternProperties").is_none())
                && located.is_some_and(Value::is_object) =>
        {
            unlisted_properties(owner, located, noun)
        }
        ValidationErrorKind::Required { property } => {
            let property = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_owned);
            if schema_path.last().map(String::as_str) != Some("dependentRequired") {
                return vec![format!("missing required {word} {property:?}{suffix}")];
            }
            dependent_required_messages(&property, owner, instance, noun)
        }
        ValidationErrorKind::Type { kind } => vec![type_message(kind, instance)],
        ValidationErrorKind::Enum { options } => {
            let allowed: Vec<String> = options
                .as_array()
                .map(|items| items.iter().map(plain).collect())
                .unwrap_or_default();
            vec![format!(
                "must be one of {} (found {})",
                allowed.join(", "),
                short(instance)
            )]
        }
        ValidationErrorKind::Constant { expected_value } => {
            vec![format!("must be {}", short(expected_value))]
        }
        ValidationErrorKind::Pattern { pattern } => {
            vec![format!(
                "{} does not match the pattern {pattern}",
                short(instance)
            )]
        }
        ValidationErrorKind::Minimum { limit } => vec![format!("must be at least {limit}")],
        ValidationErrorKind::Maximum { limit } => vec![format!("must be at most {limit}")],
        ValidationErrorKind::ExclusiveMinimum { limit } => {
            vec![format!("must be greater than {limit}")]
        }
        ValidationErrorKind::ExclusiveMaximum { limit } => {
            vec![format!("must be less than {limit}")]
        }
        ValidationErrorKind::MinLength { limit: 1 } => vec!["must not be empty".to_owned()],
        ValidationErrorKind::MinLength { limit } => {
            vec![format!("must be at least {limit} characters long")]
        }
        ValidationErrorKind::MaxLength { limit } => {
            vec![format!("must be at most {limit} characters long")]
        }
        ValidationErrorKind::MinItems { limit: 1 } => vec!["needs at least one entry".to_owned()],
        ValidationErrorKind::MinItems { limit } => vec![format!("needs at least {limit} entries")],
        ValidationErrorKind::MaxItems { limit } => vec![format!("allows at most {limit} entries")],
        ValidationErrorKind::MinProperties { limit } => {
            vec![format!("needs at least {limit} {word}s")]
        }
        ValidationErrorKind::MaxProperties { limit } => {
            vec![format!("allows at most {limit} {word}s")]
        }
        ValidationErrorKind::UniqueItems => vec!["has duplicate entries".to_owned()],
        ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::AnyOf { .. } => {
            vec![format!(
                "{} does not match any of the allowed forms",
                short(instance)
            )]
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            vec![format!(
                "{} matches more than one of the allowed forms",
                short(instance)
            )]
        }
        ValidationErrorKind::AdditionalItems { .. }
        | ValidationErrorKind::BacktrackLimitExceeded { .. }
        | ValidationErrorKind::RegexEngineFailure { .. }
        | ValidationErrorKind::Contains
        | ValidationErrorKind::ContentEncoding { .. }
        | ValidationErrorKind::ContentMediaType { .. }
        | ValidationErrorKind::Custom { .. }
        | ValidationErrorKind::FalseSchema
        | ValidationErrorKind::Format { .. }
        | ValidationErrorKind::FromUtf8 { .. }
        | ValidationErrorKind::MultipleOf { .. }
        | ValidationErrorKind::Not { .. }
        | ValidationErrorKind::PropertyNames { .. }
        | ValidationErrorKind::UnevaluatedItems { .. }
        | ValidationErrorKind::Referencing(_) => vec![error.to_string()],
    }
}

/// The schema's own wording for a failed keyword, from the `x-messages` of the node that
/// holds it; for a `oneOf`, followed by which of the alternatives the object has.
fn custom_message(
    kind: &ValidationErrorKind,
    keyword: &str,
    owner: Option<&Value>,
    instance: &Value,
) -> Option<String> {
    let custom = owner
        .and_then(|node| node.get("x-messages"))
        .and_then(|messages| messages.get(keyword))
        .and_then(Value::as_str)?;
    let mut message = custom.to_owned();
    if matches!(
        kind,
        ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::OneOfMultipleValid { .. }
    ) && let Some(found) = owner.and_then(|node| found_alternatives(node, instance))
    {
        message.push_str(&found);
    }
    Some(message)
}

/// Every property of `located` that the schema node `owner` does not list, as unknown.
fn unlisted_properties(
    owner: Option<&Value>,
    located: Option<&Value>,
    noun: Noun<'_>,
) -> Vec<String> {
    let known = owner
        .and_then(|node| node.get("properties"))
        .and_then(Value::as_object);
    let unexpected: Vec<String> = located
        .and_then(Value::as_object)
        .map(|object| {
            object
                .keys()
                .filter(|key| known.is_none_or(|known| !known.contains_key(*key)))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    unknown_properties(&unexpected, owner, noun)
}

/// A property missing under `dependentRequired`: one message per present property that
/// demands it.
fn dependent_required_messages(
    property: &str,
    owner: Option<&Value>,
    instance: &Value,
    noun: Noun<'_>,
) -> Vec<String> {
    // The error does not say which present property demanded the missing one: find
    // every property present that lists it.
    let dependents: Vec<&str> = owner
        .and_then(|node| node.get("dependentRequired"))
        .and_then(Value::as_object)
        .map(|rules| {
            rules
                .iter()
                .filter(|(dependent, required)| {
                    instance.get(dependent.as_str()).is_some()
                        && required.as_array().is_some_and(|names| {
                            names.iter().any(|name| name.as_str() == Some(property))
                        })
                })
                .map(|(dependent, _)| dependent.as_str())
                .collect()
        })
        .unwrap_or_default();
    if dependents.is_empty() {
        let (word, suffix) = (noun.word(), noun.suffix());
        return vec![format!("missing required {word} {property:?}{suffix}")];
    }
    dependents
        .into_iter()
        .map(|dependent| match property {
            "action" => {
                format!("{dependent:?} is only allowed on action steps (steps with \"action\")")
            }
            "for_each" => {
                format!("{dependent:?} is only allowed on steps with \"for_each\"")
            }
            "cron" => format!("{dependent:?} is only allowed on cron triggers"),
            other => format!("{dependent:?} needs {other:?} as well"),
        })
        .collect()
}

/// `expected a string, found a number (3)`.
fn type_message(kind: &TypeKind, instance: &Value) -> String {
    let expected: Vec<String> = match kind {
        TypeKind::Single(single) => vec![with_article(&single.to_string())],
        TypeKind::Multiple(set) => set
            .into_iter()
            .map(|single| with_article(&single.to_string()))
            .collect(),
    };
    format!(
        "expected {}, found {}",
        expected.join(" or "),
        describe_value(instance)
    )
}

/// One message per unknown property, each with a likely correction or the known names.
fn unknown_properties(unexpected: &[String], owner: Option<&Value>, noun: Noun<'_>) -> Vec<String> {
    let known: Vec<&str> = owner
        .and_then(|node| node.get("properties"))
        .and_then(Value::as_object)
        .map(|properties| properties.keys().map(String::as_str).collect())
        .unwrap_or_default();
    unexpected
        .iter()
        .map(|name| {
            let hint = match noun {
                Noun::Argument(_) if known.is_empty() => {
                    " (the action takes no arguments)".to_owned()
                }
                // A step's `bind` written beside `approval` rather than in it, or on a step
                // of another kind: only approvals bind artifacts.
                Noun::Field if name == "bind" && known.contains(&"approval") => {
                    " (only approval steps bind artifacts, inside their approval: approval: {bind: \"${...}\"})".to_owned()
                }
                Noun::Argument(_) | Noun::Field => suggestion_or_list(name, &known),
            };
            format!("unknown {} {name:?}{}{hint}", noun.word(), noun.suffix())
        })
        .collect()
}

/// The schema node at a keyword location, following `$ref`s to this document's `$defs`.
fn schema_node<'a>(root: &'a Value, schema_path: &[String]) -> Option<&'a Value> {
    let mut current = root;
    for segment in schema_path {
        current = if segment == "$ref" {
            let reference = current.get("$ref").and_then(Value::as_str)?;
            root.pointer(reference.strip_prefix('#')?)?
        } else {
            match current {
                Value::Object(entries) => entries.get(segment)?,
                Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => return None,
            }
        };
    }
    Some(current)
}

/// For a `oneOf` of `{required: [name]}` alternatives: which of the names the object has.
fn found_alternatives(owner: &Value, instance: &Value) -> Option<String> {
    let alternatives = owner.get("oneOf")?.as_array()?;
    let names: Vec<&str> = alternatives
        .iter()
        .filter_map(|alternative| alternative.get("required")?.as_array()?.first()?.as_str())
        .collect();
    if names.len() != alternatives.len() {
        return None;
    }
    let object = instance.as_object()?;
    let present: Vec<&str> = names
        .into_iter()
        .filter(|name| object.contains_key(*name))
        .collect();
    Some(if present.is_empty() {
        " (found none)".to_owned()
    } else {
        format!(" (found {})", present.join(" and "))
    })
}

fn with_article(type_name: &str) -> String {
    match type_name {
        "object" => "an object".to_owned(),
        "array" => "a list".to_owned(),
        "integer" => "an integer".to_owned(),
        "null" => "null".to_owned(),
        other => format!("a {other}"),
    }
}

fn describe_value(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(_) => format!("a bool ({value})"),
        Value::Number(_) => format!("a number ({value})"),
        Value::String(_) => format!("a string ({})", short(value)),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// A value as compact JSON, cut short for messages.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// A value for a list in a message: strings without quotes.
fn plain(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}
