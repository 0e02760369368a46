//! Small builders for the JSON Schemas of action arguments and outputs.

use serde_json::{Value, json};

use crate::connector::ActionSpec;

/// An object schema with `required` names and `properties`, closed with
/// `additionalProperties: false` so that a misspelt name is rejected.
pub(crate) fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties, "additionalProperties": false})
}

/// `{"type": "string"}`.
pub(crate) fn string() -> Value {
    json!({"type": "string"})
}

/// An array of `items`.
pub(crate) fn array_of(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

/// An [`ActionSpec`].
pub(crate) fn action(name: &str, description: &str, arguments: Value, output: Value) -> ActionSpec {
    ActionSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        arguments,
        output,
    }
}
