//! Fan-outs on every step kind: `for_each` on approval and wait steps with `item` and
//! `index` in scope, assignee expressions, and what is refused.

use super::*;

#[test]
fn approval_and_wait_fan_outs_with_item_expressions_are_valid() {
    let definition = load(
        r#"
id: partners
steps:
  - id: review
    for_each: "${input.partners}"
    concurrency: 2
    approval:
      title: "Send to ${item.name} (${index})?"
      users: ["${item.approver}", lead]
      groups: "${item.groups}"
      form: {type: object, properties: {partner: {const: "${item.name}"}}}
  - id: ack
    needs: [review]
    for_each: "${input.partners}"
    wait: {signal: partner_ack, correlate: "${event.partner == item.name && index >= 0}"}
  - id: deliver
    needs: [ack]
    for_each: "${input.partners}"
    action: core.echo
    with: {position: "${index}", partner: "${item}"}
  - id: solo
    needs: [deliver]
    approval: {title: "Done?", users: "${input.owners}"}
"#,
        &catalog(),
    )
    .expect("valid");
    assert_eq!(definition.steps.len(), 4);
}

#[test]
fn assignee_expressions_are_checked_at_their_entry() {
    let errors = errors_of(
        r#"
id: assignees
steps:
  - id: review
    approval:
      title: "${index}"
      users: ["${item.approver", ok, "${inptu.lead}"]
      groups: "${item.groups}"
"#,
    );
    assert_has_prefix(&errors, "steps[0].approval.users[0]: unclosed \"${\"");
    assert_has_prefix(
        &errors,
        "steps[0].approval.users[2]: expression \"inptu.lead\": unknown name \"inptu\"",
    );
    assert_has(
        &errors,
        "steps[0].approval.groups: expression \"item.groups\": \"item\" is only set in a step with for_each (its with, compensate, approval and correlate)",
    );
    assert_has(
        &errors,
        "steps[0].approval.title: expression \"index\": \"index\" is only set in a step with for_each (its with, compensate, approval and correlate)",
    );
    assert_eq!(errors.len(), 4, "{errors:#?}");
}

#[test]
fn concurrency_without_for_each_and_for_each_on_sleep_are_refused() {
    let errors = errors_of(
        r#"
id: refused
steps:
  - id: review
    concurrency: 3
    approval: {title: t, users: [ann]}
  - id: nap
    for_each: [1, 2]
    sleep: 1h
"#,
    );
    assert_has_prefix(&errors, "steps[0]: ");
    assert!(
        errors
            .iter()
            .any(|error| error.starts_with("steps[0]") && error.contains("for_each")),
        "{errors:#?}"
    );
    assert_has(
        &errors,
        "steps[1].for_each: for_each works on action, approval, wait and workflow steps, not on sleep",
    );
}
