//! Entry points: loading, the embedded schema, content hashes, start inputs, how an error
//! displays, and that every error is listed at once.

use std::collections::BTreeSet;

use super::*;

#[test]
fn embedded_schema_compiles_and_is_2020_12() {
    assert_eq!(
        schema()["$schema"],
        json!("https://json-schema.org/draft/2020-12/schema")
    );
    assert!(
        SCHEMA_VALIDATOR
            .is_valid(&json!({"id": "x", "steps": [{"id": "a", "action": "core.noop"}]}))
    );
}

#[test]
fn valid_definition_loads() {
    let definition = load(VALID, &catalog()).unwrap();
    assert_eq!(definition.id.as_str(), "sample");
    assert_eq!(definition.steps.len(), 4);
    assert_eq!(
        definition.steps[0].timeout,
        Some(std::time::Duration::from_secs(30))
    );
}

#[test]
fn every_error_is_listed_at_once() {
    let errors = errors_of(
        r#"
id: Bad_Id
steps:
  - id: one
    action: iconik.serch
    timeout: soon
  - id: one
    needs: [zero]
    when: "${input.x >}"
    action: core.noop
  - id: three
    action: core.echo
    approval: {title: hi, groups: [a]}
"#,
    );
    assert_has(
        &errors,
        "id: a definition id uses only lowercase letters, digits and dashes, and starts with a letter or digit (e.g. partner-media-request)",
    );
    assert_has(
        &errors,
        "steps[0].action: unknown action \"iconik.serch\" (did you mean \"iconik.search_assets\"?)",
    );
    assert_has_prefix(&errors, "steps[0].timeout: invalid duration \"soon\"");
    assert_has(
        &errors,
        "steps[1].id: duplicate step id \"one\": steps[0] already uses it",
    );
    assert_has(&errors, "steps[1].needs[0]: unknown step \"zero\"");
    assert_has_prefix(
        &errors,
        "steps[1].when: expression \"input.x >\": syntax error",
    );
    assert_has(
        &errors,
        "steps[2]: a step needs exactly one of action, approval, wait, sleep, workflow (found action and approval)",
    );
    assert!(errors.len() >= 7, "{errors:#?}");
}

#[test]
fn content_hash_follows_content() {
    let first = load(VALID, &catalog()).unwrap();
    let again = load(&format!("# a comment changes nothing\n{VALID}"), &catalog()).unwrap();
    assert_eq!(content_hash(&first), content_hash(&again));
    assert_eq!(content_hash(&first).len(), 64);
    let changed = load(&VALID.replace("due: 48h", "due: 24h"), &catalog()).unwrap();
    assert_ne!(content_hash(&first), content_hash(&changed));
}

#[test]
fn json_and_yaml_give_equal_definitions() {
    let from_yaml = load(VALID, &catalog()).unwrap();
    let as_json = serde_json::to_string_pretty(&parse_document(VALID).unwrap()).unwrap();
    let from_json = load(&as_json, &catalog()).unwrap();
    assert_eq!(from_yaml, from_json);
    assert_eq!(content_hash(&from_yaml), content_hash(&from_json));
}

#[test]
fn input_validator_lists_violations() {
    let definition = load(
        r#"
id: inputs
input:
  type: object
  required: [partner_id, query]
  properties:
    partner_id: {type: string}
    query: {type: string}
    limit: {type: integer, minimum: 1}
steps:
  - {id: a, action: core.noop}
"#,
        &catalog(),
    )
    .unwrap();
    let validator = InputValidator::new(&definition).unwrap();
    assert_eq!(
        validator.validate(&json!({"partner_id": "acme", "query": "shoes"})),
        Ok(())
    );
    let errors = validator
        .validate(&json!({"partner_id": 42, "limit": 0}))
        .unwrap_err();
    let paths: BTreeSet<&str> = errors.iter().map(|error| error.path.as_str()).collect();
    assert_eq!(
        paths,
        BTreeSet::from(["input", "input.limit", "input.partner_id"]),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|error| error.message.contains("\"query\" is a required property"))
    );

    let open = load("id: open\nsteps: [{id: a, action: core.noop}]", &catalog()).unwrap();
    assert_eq!(
        InputValidator::new(&open)
            .unwrap()
            .validate(&json!([1, "anything"])),
        Ok(())
    );
}

#[test]
fn error_display_joins_path_and_message() {
    let error = DefinitionError {
        path: "steps[2].needs[0]".to_owned(),
        message: "unknown step \"fetch\"".to_owned(),
    };
    assert_eq!(
        error.to_string(),
        "steps[2].needs[0]: unknown step \"fetch\""
    );
    let root = DefinitionError {
        path: String::new(),
        message: "the document is empty".to_owned(),
    };
    assert_eq!(root.to_string(), "the document is empty");
    assert_eq!(
        Path::root().key("with").key("odd key").index(0).render(),
        "with[\"odd key\"][0]"
    );
}
