//! The decision form generated from an approval's JSON Schema (`approval.form`), and the
//! posted fields read back into the decision's `data`.
//!
//! Each property of an object schema becomes one field: a string (an `enum` as a select),
//! a number or an integer, a boolean (a checkbox), an array of strings (comma-separated
//! text); anything else is a JSON text field. Read back, a value that does not parse is
//! kept as text, so that the engine's check of the form reports it at its path (422).

use serde_json::{Map, Value};

/// What a field is drawn as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A text input.
    Text,
    /// A select of the `enum`'s values.
    Select,
    /// A number input (`step` any).
    Number,
    /// An integer input.
    Integer,
    /// A checkbox.
    Checkbox,
    /// Comma-separated text, an array of strings.
    List,
    /// JSON text, for any other schema.
    Json,
}

/// One field of the form.
#[derive(Debug, Clone)]
pub struct Field {
    /// The property's name (the input's `name`, prefixed with `data.` in the page).
    pub name: String,
    /// What to show next to it: the schema's `title`, or the name.
    pub label: String,
    /// The schema's `description`, or empty.
    pub description: String,
    /// How it is drawn.
    pub kind: Kind,
    /// Whether the schema requires it.
    pub required: bool,
    /// The choices of a select, as shown (and posted).
    pub options: Vec<String>,
    /// The schema's `enum` values behind `options`, in the same order.
    values: Vec<Value>,
}

impl Field {
    /// The template's name of [`Field::kind`].
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Text => "text",
            Kind::Select => "select",
            Kind::Number => "number",
            Kind::Integer => "integer",
            Kind::Checkbox => "checkbox",
            Kind::List => "list",
            Kind::Json => "json",
        }
    }
}

/// The prefix of the form's data fields in a posted form.
pub const PREFIX: &str = "data.";

/// The fields of `schema` (an object schema's properties, in their order); none for a
/// schema without properties.
pub fn fields(schema: &Value) -> Vec<Field> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    properties
        .iter()
        .map(|(name, property)| field(name, property, required.contains(&name.as_str())))
        .collect()
}

fn field(name: &str, property: &Value, required: bool) -> Field {
    let text = |key: &str| {
        property
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let values: Vec<Value> = property
        .get("enum")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let kind = if !values.is_empty() {
        Kind::Select
    } else {
        match property.get("type").and_then(Value::as_str) {
            Some("string") => Kind::Text,
            Some("number") => Kind::Number,
            Some("integer") => Kind::Integer,
            Some("boolean") => Kind::Checkbox,
            Some("array")
                if property
                    .pointer("/items/type")
                    .and_then(Value::as_str)
                    .is_some_and(|item| item == "string") =>
            {
                Kind::List
            }
            _ => Kind::Json,
        }
    };
    let label = match text("title") {
        title if title.is_empty() => name.to_owned(),
        title => title,
    };
    Field {
        name: name.to_owned(),
        label,
        description: text("description"),
        kind,
        required,
        options: values.iter().map(shown).collect(),
        values,
    }
}

/// An `enum` value as the select shows and posts it: a string as it is, others as JSON.
fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The decision's `data` from the posted fields (`data.<name>`) of `fields`. An empty
/// optional field is left out; a checkbox absent from the post is `false`.
pub fn data(fields: &[Field], posted: &[(String, String)]) -> Value {
    let value_of = |name: &str| {
        posted
            .iter()
            .find(|(key, _)| key.strip_prefix(PREFIX) == Some(name))
            .map(|(_, value)| value.trim())
    };
    let mut data = Map::new();
    for field in fields {
        let posted = value_of(&field.name);
        if field.kind == Kind::Checkbox {
            data.insert(field.name.clone(), Value::Bool(posted.is_some()));
            continue;
        }
        let Some(text) = posted.filter(|text| !text.is_empty()) else {
            continue;
        };
        data.insert(field.name.clone(), read(field, text));
    }
    Value::Object(data)
}

/// One posted value as the field's type; text when it does not parse.
fn read(field: &Field, text: &str) -> Value {
    let as_text = || Value::String(text.to_owned());
    match field.kind {
        Kind::Text | Kind::Checkbox => as_text(),
        Kind::Select => field
            .options
            .iter()
            .position(|option| option == text)
            .map_or_else(as_text, |index| field.values[index].clone()),
        Kind::Integer => text.parse::<i64>().map_or_else(|_| as_text(), Value::from),
        Kind::Number => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(as_text, Value::Number),
        Kind::List => Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| Value::String(item.to_owned()))
                .collect(),
        ),
        Kind::Json => serde_json::from_str(text).unwrap_or_else(|_| as_text()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["channel"],
            "properties": {
                "channel": {"enum": ["web", "print"], "title": "Channel"},
                "budget": {"type": "integer"},
                "ratio": {"type": "number"},
                "urgent": {"type": "boolean"},
                "markets": {"type": "array", "items": {"type": "string"}},
                "note": {"type": "string"},
                "extra": {"type": "object"}
            }
        })
    }

    fn posted(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn each_property_becomes_a_field_of_its_kind() {
        let fields = fields(&schema());
        let kinds: Vec<(&str, Kind, bool)> = fields
            .iter()
            .map(|field| (field.name.as_str(), field.kind, field.required))
            .collect();
        assert!(kinds.contains(&("channel", Kind::Select, true)));
        assert!(kinds.contains(&("budget", Kind::Integer, false)));
        assert!(kinds.contains(&("ratio", Kind::Number, false)));
        assert!(kinds.contains(&("urgent", Kind::Checkbox, false)));
        assert!(kinds.contains(&("markets", Kind::List, false)));
        assert!(kinds.contains(&("note", Kind::Text, false)));
        assert!(kinds.contains(&("extra", Kind::Json, false)));
        let channel = fields.iter().find(|field| field.name == "channel").unwrap();
        assert_eq!(channel.label, "Channel");
        assert_eq!(channel.options, ["web", "print"]);
    }

    #[test]
    fn posted_fields_read_back_as_their_types() {
        let fields = fields(&schema());
        let data = data(
            &fields,
            &posted(&[
                ("data.channel", "print"),
                ("data.budget", "40"),
                ("data.ratio", "0.5"),
                ("data.markets", "DE, FR,,"),
                ("data.note", ""),
                ("data.extra", "{\"a\": 1}"),
                ("csrf", "x"),
            ]),
        );
        assert_eq!(
            data,
            json!({"channel": "print", "budget": 40, "ratio": 0.5, "urgent": false,
                   "markets": ["DE", "FR"], "extra": {"a": 1}})
        );
    }

    #[test]
    fn values_that_do_not_parse_stay_text_for_the_engine_to_refuse() {
        let fields = fields(&schema());
        let data = data(
            &fields,
            &posted(&[("data.budget", "many"), ("data.urgent", "on")]),
        );
        assert_eq!(data, json!({"budget": "many", "urgent": true}));
    }
}
