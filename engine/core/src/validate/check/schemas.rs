//! JSON Schemas inside a definition: the schemas a definition writes itself (`input`, an
//! approval's `form`) must be valid schemas, and templates (`with` arguments, a trigger's
//! input) must fit their schema wherever their shape is known before they run.

use jsonschema::Validator;
use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use super::super::path::{Errors, Path, Segment};
use super::super::suggest::suggestion;
use super::super::wording::{Noun, schema_messages};
use crate::expr;

/// The schema errors of a template whose strings may hold `${...}`: errors located at a
/// templated value are dropped, since its type is only known when it runs, but unknown
/// and missing properties of the objects around it are kept.
pub(super) fn template_schema_errors(
    validator: &Validator,
    schema: &Value,
    template: &Value,
    noun: Noun<'_>,
) -> Vec<(Path, String)> {
    let mut found = Vec::new();
    for error in validator.iter_errors(template) {
        let at = Path::from_location(error.instance_path());
        let located = at.lookup(template).unwrap_or(template);
        if holds_template(located) {
            let structural = matches!(
                error.kind(),
                ValidationErrorKind::Required { .. }
                    | ValidationErrorKind::AdditionalProperties { .. }
                    | ValidationErrorKind::PropertyNames { .. }
                    | ValidationErrorKind::MinProperties { .. }
                    | ValidationErrorKind::MaxProperties { .. }
                    | ValidationErrorKind::MinItems { .. }
                    | ValidationErrorKind::MaxItems { .. }
                    | ValidationErrorKind::Type { .. }
            );
            if located.is_string() || !structural {
                continue;
            }
        }
        for message in schema_messages(&error, schema, Some(located), noun) {
            found.push((at.clone(), message));
        }
    }
    found
}

/// Whether a value is, or contains, a string with `${`.
fn holds_template(value: &Value) -> bool {
    match value {
        Value::String(text) => expr::is_template(text),
        Value::Array(items) => items.iter().any(holds_template),
        Value::Object(entries) => entries.values().any(holds_template),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// The type names of JSON Schema.
const JSON_TYPES: [&str; 7] = [
    "string", "number", "integer", "boolean", "object", "array", "null",
];

/// Compiles a JSON Schema written inside a definition (`input`, an approval's `form`),
/// reporting every way it is not a valid schema.
pub(in crate::validate) fn compile_embedded_schema(
    schema: &Value,
    at: &Path,
    errors: &mut Errors,
) -> Option<Validator> {
    match jsonschema::meta::validator_for(schema) {
        Ok(meta) => {
            let mut valid = true;
            for error in meta.iter_errors(schema) {
                valid = false;
                let location = Path::from_location(error.instance_path());
                let message = match (location.last(), error.instance().as_ref()) {
                    (Some(Segment::Key(key)), Value::String(name)) if key == "type" => {
                        let hint = suggestion(name, &JSON_TYPES);
                        format!(
                            "not a valid JSON Schema: unknown type {name:?}{hint} (types are {})",
                            JSON_TYPES.join(", ")
                        )
                    }
                    _ => format!("not a valid JSON Schema: {error}"),
                };
                errors.push(&at.join(&location), message);
            }
            if !valid {
                return None;
            }
        }
        Err(error) => {
            errors.push(at, format!("not a valid JSON Schema: {error}"));
            return None;
        }
    }
    match jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
    {
        Ok(validator) => Some(validator),
        Err(error) => {
            errors.push(at, format!("not a valid JSON Schema: {error}"));
            None
        }
    }
}
