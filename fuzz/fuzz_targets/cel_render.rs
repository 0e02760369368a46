//! `${...}` templates over CEL: checking, rendering and conditions never panic, whatever
//! the text, over a scope like the one steps see.
#![no_main]

use gridflow_core::expr::{Scope, check, condition, references, render, single_expression};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let scope = Scope::new()
        .with("input", json!({"order": 7, "name": "x", "l": [1, 2, 3], "m": {"a": null}}))
        .with(
            "steps",
            json!({"a": {"status": "succeeded", "output": {"n": 1.5, "s": "t"}, "decision": "approved", "data": null}}),
        )
        .with("item", json!("it"))
        .with("instance", json!({"id": "i-1", "started_at": "2026-12-07T00:00:00Z"}));
    let checked = check(text);
    let rendered = render(&Value::String(text.to_owned()), &scope);
    if checked.is_err() {
        // What validation refuses never renders.
        assert!(rendered.is_err(), "{text:?} fails check but renders: {rendered:?}");
    }
    let _ = condition(text, &scope);
    if let Some(expression) = single_expression(text) {
        let _ = references(expression);
    }
    // Inside an object and a list too, as `with:` holds them.
    let _ = render(&json!({"k": [text, {"n": text}]}), &scope);
});
