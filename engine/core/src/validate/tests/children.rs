//! Workflow steps: a definition may not start itself, `item` and `index` are bound in the
//! input of a fan-out over children, and an input is checked against the child's schema.

use super::*;

#[test]
fn a_definition_that_starts_itself_is_refused() {
    let errors = errors_of("id: loop\nsteps:\n  - id: again\n    workflow: {id: loop}\n");
    assert_has(
        &errors,
        "steps[0].workflow.id: workflow \"loop\" cannot start itself as a child (it would never end)",
    );
}

#[test]
fn item_and_index_are_bound_in_the_input_of_a_fan_out_only() {
    let fan_out = "id: p\nsteps:\n  - id: each\n    for_each: [1, 2]\n    workflow: {id: c, input: {n: \"${item}\", at: \"${index}\"}}\n";
    if let Err(errors) = load(fan_out, &catalog()) {
        panic!("{errors:#?}");
    }
    let single = "id: p\nsteps:\n  - id: one\n    workflow: {id: c, input: {at: \"${index}\"}}\n";
    assert_has_prefix(
        &errors_of(single),
        "steps[0].workflow.input.at: expression \"index\"",
    );
}

#[test]
fn a_child_input_is_checked_against_the_child_s_input_schema() {
    let parent = load(
        "id: p\nsteps:\n  - id: one\n    workflow: {id: c, input: {extra: 1, name: \"${input.x}\"}}\n  - id: two\n    workflow: {id: c, input: {partner: \"${input.x}\"}}\n",
        &catalog(),
    )
    .unwrap();
    let child = load(
        "id: c\ninput:\n  type: object\n  required: [partner]\n  properties:\n    partner: {type: string}\n  additionalProperties: false\nsteps:\n  - id: s\n    action: core.noop\n",
        &catalog(),
    )
    .unwrap();
    let errors: Vec<String> = child_input_errors(&parent, 0, &child)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_has_prefix(
        &errors,
        "steps[0].workflow.input: missing required field \"partner\"",
    );
    assert!(
        errors.iter().any(|error| error.contains("\"extra\"")),
        "{errors:#?}"
    );
    assert!(child_input_errors(&parent, 1, &child).is_empty());
}
