//! Approvals bound to artifacts: `bind` is one expression, checked like the approval's
//! other expressions (names, steps upstream, `item` on a fan-out), and only approvals
//! take it.

use super::*;

#[test]
fn a_bind_expression_reading_upstream_steps_and_items_is_valid() {
    let definition = load(
        r#"
id: bound
steps:
  - id: fetch
    action: core.echo
    with: {asset: "${input.asset}"}
  - id: review
    needs: [fetch]
    approval: {title: "Send it?", users: [ann], bind: "${steps.fetch.output.content}"}
  - id: per_item
    needs: [fetch]
    for_each: "${steps.fetch.output.contents}"
    approval: {title: "Send ${index}?", users: [ann], bind: "${item}"}
"#,
        &catalog(),
    )
    .expect("valid");
    assert!(definition.binds_artifacts());
    let unbound = load(VALID, &catalog()).expect("valid");
    assert!(!unbound.binds_artifacts());
}

#[test]
fn bind_is_one_expression_over_names_and_steps_it_may_read() {
    let errors = errors_of(
        r#"
id: bound
steps:
  - id: fetch
    action: core.echo
  - id: later
    action: core.echo
  - id: review
    needs: [fetch]
    approval: {title: t, users: [ann], bind: "${steps.later.output}"}
  - id: texty
    needs: [fetch]
    approval: {title: t, users: [ann], bind: "asset ${steps.fetch.output.content}"}
  - id: itemless
    needs: [fetch]
    approval: {title: t, users: [ann], bind: "${item}"}
  - id: broken
    needs: [fetch]
    approval: {title: t, users: [ann], bind: "${steps.fetch.output.content"}
"#,
    );
    assert_has_prefix(
        &errors,
        "steps[2].approval.bind: expression \"steps.later.output\": reads step \"later\", which step \"review\" does not need",
    );
    assert_has_prefix(
        &errors,
        "steps[3].approval.bind: bind must be one \"${...}\" expression that yields an artifact",
    );
    assert_has(
        &errors,
        "steps[4].approval.bind: expression \"item\": \"item\" is only set in a step with for_each (its with, compensate, approval and correlate)",
    );
    assert_has_prefix(&errors, "steps[5].approval.bind: unclosed \"${\"");
}

#[test]
fn bind_is_refused_outside_an_approval() {
    let errors = errors_of(
        r#"
id: bound
steps:
  - id: deliver
    action: core.echo
    bind: "${input.asset}"
  - id: review
    approval: {title: t, users: [ann]}
    bind: "${input.asset}"
"#,
    );
    let expected = "unknown field \"bind\" (only approval steps bind artifacts, inside their approval: approval: {bind: \"${...}\"})";
    assert_has(&errors, &format!("steps[0]: {expected}"));
    assert_has(&errors, &format!("steps[1]: {expected}"));
}
