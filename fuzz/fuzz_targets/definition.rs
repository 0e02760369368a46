//! Definitions: any text, parsed (YAML or JSON) and validated, never panics; it either
//! yields a definition or errors that each say what is wrong; and a definition that
//! validates survives a JSON round trip as the same definition.
#![no_main]

use std::collections::BTreeMap;

use gridflow_core::validate::{InputValidator, content_hash, load, validate_value};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fn catalog() -> BTreeMap<String, Value> {
    BTreeMap::from([
        ("core.noop".to_owned(), json!({"type": "object", "additionalProperties": false})),
        ("core.echo".to_owned(), json!({"type": "object"})),
        (
            "core.fail_until".to_owned(),
            json!({
                "type": "object",
                "required": ["attempts"],
                "properties": {"attempts": {"type": "integer", "minimum": 1}},
                "additionalProperties": false
            }),
        ),
    ])
}

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let catalog = catalog();
    match load(source, &catalog) {
        Ok(definition) => {
            let hash = content_hash(&definition);
            let value = serde_json::to_value(&definition).expect("a definition serializes");
            let again = validate_value(&value, &catalog)
                .unwrap_or_else(|errors| panic!("its own JSON does not validate: {errors:?}"));
            assert_eq!(content_hash(&again), hash, "the JSON round trip changed it");
            let _ = InputValidator::new(&definition);
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "refused without an error");
            for error in errors {
                assert!(!error.message.is_empty(), "an error without a message at {}", error.path);
            }
        }
    }
});
