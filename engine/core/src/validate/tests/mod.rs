//! Tests of definition validation, by theme; the helpers and the sample definition here are
//! shared by all of them.

use serde_json::json;

use super::*;

fn catalog() -> BTreeMap<String, Value> {
    BTreeMap::from([
        (
            "core.noop".to_owned(),
            json!({"type": "object", "additionalProperties": false}),
        ),
        ("core.echo".to_owned(), json!({"type": "object"})),
        (
            "core.fail_until".to_owned(),
            json!({
                "type": "object",
                "required": ["attempts"],
                "properties": {"attempts": {"type": "integer", "minimum": 1}, "key": {"type": "string"}},
                "additionalProperties": false
            }),
        ),
        (
            "core.fail".to_owned(),
            json!({
                "type": "object",
                "required": ["message"],
                "properties": {"message": {"type": "string"}, "retryable": {"type": "boolean"}},
                "additionalProperties": false
            }),
        ),
        (
            "core.delay".to_owned(),
            json!({
                "type": "object",
                "required": ["ms"],
                "properties": {"ms": {"type": "integer", "minimum": 0}},
                "additionalProperties": false
            }),
        ),
        (
            "iconik.search_assets".to_owned(),
            json!({
                "type": "object",
                "required": ["query"],
                "properties": {"query": {"type": "string"}, "status": {"type": "string"}},
                "additionalProperties": false
            }),
        ),
    ])
}

fn errors_of(source: &str) -> Vec<String> {
    match load(source, &catalog()) {
        Ok(definition) => panic!("expected errors, got {definition:?}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn assert_has(errors: &[String], expected: &str) {
    assert!(
        errors.iter().any(|error| error == expected),
        "missing {expected:?} in {errors:#?}"
    );
}

fn assert_has_prefix(errors: &[String], expected: &str) {
    assert!(
        errors.iter().any(|error| error.starts_with(expected)),
        "missing {expected:?}... in {errors:#?}"
    );
}

const VALID: &str = r#"
id: sample
input:
  type: object
  required: [query]
  properties:
    query: {type: string}
steps:
  - id: find
    action: iconik.search_assets
    with: {query: "${input.query}", status: approved}
    retry: {max_attempts: 3, initial_interval: 2s}
    timeout: 30s
  - id: review
    needs: [find]
    approval:
      title: "Send ${size(steps.find.output.assets)} assets?"
      groups: [brand-managers]
      due: 48h
      on_timeout: reject
  - id: deliver
    needs: [review]
    when: "${steps.review.decision == 'approved'}"
    for_each: "${steps.find.output.assets}"
    concurrency: 2
    action: core.echo
    with: {asset: "${item}"}
    compensate: {action: core.echo, with: {undo: "${output}"}}
  - id: rest
    needs: [deliver]
    sleep: 1h
output: {delivered: "${steps.deliver.output}"}
"#;

mod bindings;
mod children;
mod decoding;
mod entry;
mod event_names;
mod fan_out;
mod flow;
mod graph;
mod rights;
mod semantics;
mod wording;
