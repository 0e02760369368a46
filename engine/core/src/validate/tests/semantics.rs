//! Semantic checks: expressions and what they may read, conditions, fan-outs, triggers and
//! embedded schemas.

use super::*;

#[test]
fn bad_cel_is_reported_at_its_value() {
    let errors = errors_of(
        r#"
id: bad-cel
steps:
  - id: a
    action: core.echo
    with:
      nested: {list: [ok, "${size(input.q}"]}
      open: "${input.q"
  - id: b
    needs: [a]
    approval: {title: "Hi ${input.name +}", users: [alice]}
output: {x: "${steps.a.output..x}"}
"#,
    );
    assert_has_prefix(
        &errors,
        "steps[0].with.nested.list[1]: expression \"size(input.q\": syntax error",
    );
    assert_has_prefix(&errors, "steps[0].with.open: unclosed \"${\"");
    assert_has_prefix(
        &errors,
        "steps[1].approval.title: expression \"input.name +\": syntax error",
    );
    assert_has_prefix(
        &errors,
        "output.x: expression \"steps.a.output..x\": syntax error",
    );
}

#[test]
fn expressions_read_only_what_exists_upstream() {
    let errors = errors_of(
        r#"
id: scope
steps:
  - id: first
    action: core.echo
    with: {a: "${inptu.x}", b: "${item}", c: "${steps.second.output}", d: "${steps.frist.output}"}
  - id: second
    needs: [first]
    action: core.echo
    with: {own: "${steps.second.output}", up: "${steps.first.output}", out: "${output}"}
  - id: my-step
    action: core.noop
  - id: fourth
    needs: [my-step]
    when: "steps.my-step.status == 'succeeded'"
    action: core.noop
  - id: fifth
    wait: {signal: go, correlate: "${event.order == input.order}"}
  - id: sixth
    action: core.echo
    with: {e: "${event.order}"}
triggers:
  - event: source.happened
    input: {x: "${steps.first.output}", y: "${event.y}"}
"#,
    );
    assert_has(
        &errors,
        "steps[0].with.a: expression \"inptu.x\": unknown name \"inptu\" (available: input, steps, instance) (did you mean \"input\"?)",
    );
    assert_has(
        &errors,
        "steps[0].with.b: expression \"item\": \"item\" is only set in a step with for_each (its with, compensate, approval and correlate)",
    );
    assert_has(
        &errors,
        "steps[0].with.c: expression \"steps.second.output\": reads step \"second\", which step \"first\" does not need; add \"second\" to its needs (directly or through another step)",
    );
    assert_has(
        &errors,
        "steps[0].with.d: expression \"steps.frist.output\": unknown step \"frist\" (did you mean \"first\"?)",
    );
    assert_has(
        &errors,
        "steps[1].with.own: expression \"steps.second.output\": a step cannot read its own result here (compensate can, as \"output\")",
    );
    assert_has(
        &errors,
        "steps[1].with.out: expression \"output\": \"output\" is only set in compensate, where it is the compensated step's output",
    );
    assert_has_prefix(
        &errors,
        "steps[3].when: expression \"steps.my-step.status == 'succeeded'\": unknown step \"my\" (an id with dashes is written steps['my-step']",
    );
    assert_has(
        &errors,
        "triggers[0].input.x: expression \"steps.first.output\": \"steps\" is not available here (available: event)",
    );
    assert_has(
        &errors,
        "steps[5].with.e: expression \"event.order\": \"event\" is not available here (available: input, steps, instance)",
    );
    assert!(
        !errors
            .iter()
            .any(|error| error.starts_with("steps[1].with.up") || error.starts_with("steps[4]")),
        "{errors:#?}"
    );
}

#[test]
fn conditions_and_fan_outs_have_one_shape() {
    let errors = errors_of(
        r#"
id: shapes
steps:
  - id: a
    when: "${true} and ${false}"
    for_each: "items: ${input.list}"
    action: core.echo
  - id: b
    sleep: {until: "tomorrow"}
  - id: c
    sleep: {until: "2026-12-01T09:00:00Z"}
  - id: d
    for_each: [1, 2, "${input.x}"]
    action: core.echo
    with: {n: "${item}"}
"#,
    );
    assert_eq!(
        errors,
        vec![
            "steps[0].for_each: for_each must be a list, or one \"${...}\" expression that yields a list",
            "steps[0].when: when must be one \"${...}\" expression (or bare CEL) that yields true or false, without text around it",
            "steps[1].sleep.until: \"tomorrow\" is not an RFC 3339 instant: write e.g. 2026-12-01T09:00:00Z, or a \"${...}\" expression",
        ]
    );
}

#[test]
fn triggers_are_checked() {
    let errors = errors_of(
        r#"
id: triggered
input:
  type: object
  required: [partner_id]
  properties: {partner_id: {type: string}}
triggers:
  - cron: "0 0 7 * * Mon-Fri"
    timezone: Europe/Berln
    input: {partner_id: 7}
  - cron: "every morning"
  - event: trading_grid.request_created
    cron: "0 * * * * *"
  - event: trading_grid.request_created
    input: {partner_id: "${event.partner_id}", extra: 1}
steps:
  - {id: a, action: core.noop}
"#,
    );
    assert_has(
        &errors,
        "triggers[0].timezone: unknown time zone \"Europe/Berln\" (did you mean \"Europe/Berlin\"?) (use an IANA name such as Europe/Berlin or UTC)",
    );
    assert_has(
        &errors,
        "triggers[0].input.partner_id: expected a string, found a number (7)",
    );
    assert_has_prefix(
        &errors,
        "triggers[1].cron: invalid cron expression \"every morning\"",
    );
    assert_has(
        &errors,
        "triggers[2]: a trigger needs exactly one of cron, event, rights (found cron and event)",
    );
    assert_eq!(errors.len(), 4, "{errors:#?}");
}

#[test]
fn bad_input_schema_is_reported() {
    let errors = errors_of(
        r#"
id: bad-input
input:
  type: object
  properties:
    partner_id: {type: strng}
    count: {minimum: "one"}
steps:
  - {id: a, action: core.noop}
"#,
    );
    assert!(errors.len() >= 2, "{errors:#?}");
    assert_has(
        &errors,
        "input.properties.partner_id.type: not a valid JSON Schema: unknown type \"strng\" (did you mean \"string\"?) (types are string, number, integer, boolean, object, array, null)",
    );
    assert_has_prefix(
        &errors,
        "input.properties.count.minimum: not a valid JSON Schema",
    );
}
