//! Decoding: YAML syntax, durations, and deserialization errors placed at their step.

use super::*;

#[test]
fn yaml_syntax_error_has_line_and_column() {
    let errors = parse_document("id: x\nsteps:\n  - id: a\n    action: [core.noop\n").unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, "");
    assert!(
        errors[0].message.starts_with("invalid YAML: line "),
        "{}",
        errors[0].message
    );
    assert!(
        errors[0].message.contains(", column "),
        "{}",
        errors[0].message
    );

    let errors = parse_document("id: a\nid: b\n").unwrap_err();
    assert!(
        errors[0].message.contains("line 2"),
        "{}",
        errors[0].message
    );
    assert_eq!(
        parse_document("  \n").unwrap_err()[0].message,
        "the document is empty"
    );
}

#[test]
fn bad_durations_do_not_hide_other_errors() {
    let errors = errors_of(
        r#"
id: durations
steps:
  - id: a
    action: core.noop
    retry: {initial_interval: fast, max_interval: 2m}
  - id: b
    needs: [a, ghost]
    approval: {title: t, users: [u], due: "2 fortnights", escalate_to: {users: [v], due: later}}
  - id: c
    sleep: soon
"#,
    );
    assert_has_prefix(
        &errors,
        "steps[0].retry.initial_interval: invalid duration \"fast\"",
    );
    assert_has_prefix(
        &errors,
        "steps[1].approval.due: invalid duration \"2 fortnights\"",
    );
    assert_has_prefix(
        &errors,
        "steps[1].approval.escalate_to.due: invalid duration \"later\"",
    );
    assert_has_prefix(&errors, "steps[2].sleep: invalid duration \"soon\"");
    assert_has(
        &errors,
        "steps[1].needs[0]: unknown step \"ghost\""
            .replace("[0]", "[1]")
            .as_str(),
    );
}

#[test]
fn deserialization_errors_are_placed_at_their_step() {
    let errors = errors_of(
        "id: x\nsteps: [{id: a, action: core.noop}, {id: b, workflow: {id: child, version: 2.0}}]\n",
    );
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("steps[1]: invalid type"),
        "{errors:#?}"
    );
}

#[test]
fn document_that_is_not_a_definition() {
    let errors = errors_of("[1, 2]");
    assert_eq!(errors, vec!["expected an object, found a list"]);
    let errors = errors_of("name: no id");
    assert_has(&errors, "missing required field \"id\"");
    assert_has(&errors, "missing required field \"steps\"");
}
