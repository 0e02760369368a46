//! The analyst-facing wording of schema errors, in the definition and in action arguments.

use super::*;

#[test]
fn schema_errors_are_phrased_for_analysts() {
    let errors = errors_of(
        r#"
id: phrasing
steps:
  - id: a
    acton: core.noop
  - id: b
    approval: {title: ok, groups: [x], on_timeout: later, due: 1h}
    with: {x: 1}
  - id: c
    wait: {signal: go, on_timeout: fail}
  - id: d
    sleep: {until: 5}
  - id: e
    action: core.noop
    retry: {max_attempts: 0}
    on_error: ignore
"#,
    );
    assert_has(
        &errors,
        "steps[0]: unknown field \"acton\" (did you mean \"action\"?)",
    );
    assert_has(
        &errors,
        "steps[0]: a step needs exactly one of action, approval, wait, sleep, workflow (found none)",
    );
    assert_has(
        &errors,
        "steps[1]: \"with\" is only allowed on action steps (steps with \"action\")",
    );
    assert_has(
        &errors,
        "steps[1].approval.on_timeout: must be one of approve, reject, fail, escalate (found \"later\")",
    );
    assert_has(
        &errors,
        "steps[2].wait: \"on_timeout\" needs \"timeout\" as well",
    );
    assert_has(
        &errors,
        "steps[3].sleep: sleep is a duration such as 1h, or {until: <RFC 3339 instant or ${...} expression>}",
    );
    assert_has(&errors, "steps[4].retry.max_attempts: must be at least 1");
    assert_has(
        &errors,
        "steps[4].on_error: must be one of fail, continue (found \"ignore\")",
    );
}

#[test]
fn with_argument_typos_are_caught() {
    let errors = errors_of(
        r#"
id: typo
steps:
  - id: find
    action: iconik.search_assets
    with: {qurey: "${input.q}", status: 5}
  - id: find_again
    action: iconik.search_assets
    with: {query: "${input.q}", status: "${input.status}"}
  - id: nothing
    action: iconik.search_assets
"#,
    );
    assert_eq!(
        errors,
        vec![
            "steps[0].with: unknown argument \"qurey\" of action \"iconik.search_assets\" (did you mean \"query\"?)",
            "steps[0].with: missing required argument \"query\" of action \"iconik.search_assets\"",
            "steps[0].with.status: expected a string, found a number (5)",
            "steps[2].with: missing required argument \"query\" of action \"iconik.search_assets\"",
        ]
    );
}
