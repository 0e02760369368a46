//! Small builders for the JSON Schemas of action arguments and outputs, and of event
//! payloads.

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
        effects: crate::effects::Effects::default(),
    }
}

/// An object schema listing its `required` fields that admits fields beyond `properties`:
/// the shape of an event payload, which a system may extend.
pub(crate) fn open_object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

/// An [`EventSpec`](crate::EventSpec).
pub(crate) fn event(name: &str, description: &str, payload: Value) -> crate::EventSpec {
    crate::EventSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        payload,
        effects: crate::effects::Effects::default(),
    }
}
