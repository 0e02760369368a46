//! `join` and `repeat`, and the fields a step is read through.

use super::*;

#[test]
fn join_and_repeat_are_accepted_where_they_apply() {
    let definition = load(
        r#"
id: flow
steps:
  - id: review
    approval: {title: "Send?", users: [ann]}
  - id: deliver
    needs: [review]
    when: "${steps.review.decision == 'approved'}"
    action: core.echo
  - id: page
    action: core.echo
    with: {page: "${iteration}"}
    repeat: {until: "${steps.page.output.page >= 3 || iteration >= 5}", max: 5, interval: 1h, on_exhausted: continue}
  - id: tell
    needs: [deliver, page]
    join: all_done
    action: core.echo
    with:
      decision: "${steps.review.decision}"
      who: "${steps.review.user}"
      data: "${steps['review'].data}"
      pages: "${steps.page.iterations}"
      error: "${steps.deliver.error.code}"
  - id: first
    needs: [deliver, page]
    join: any
    action: core.noop
"#,
        &catalog(),
    )
    .unwrap();
    assert_eq!(
        definition.steps[3].join,
        Some(crate::definition::Join::AllDone)
    );
    let repeat = definition.steps[2].repeat.as_ref().unwrap();
    assert_eq!(repeat.max, 5);
    assert_eq!(repeat.interval, Some(std::time::Duration::from_secs(3600)));
    assert_eq!(
        repeat.on_exhausted,
        crate::definition::OnExhausted::Continue
    );
}

#[test]
fn join_needs_needs_and_repeat_needs_an_action_or_workflow_step() {
    let errors = errors_of(
        r#"
id: flow
steps:
  - id: a
    join: all_done
    action: core.noop
  - id: b
    needs: [a]
    approval: {title: "Ok?", users: [ann]}
    repeat: {until: "${iteration > 2}", max: 3}
  - id: c
    needs: [a]
    for_each: [1, 2]
    action: core.echo
    repeat: {until: "${iteration > 2}", max: 3}
"#,
    );
    assert_has_prefix(
        &errors,
        "steps[0].join: join says when a step with needs runs; this step has no needs",
    );
    assert_has(
        &errors,
        "steps[1].repeat: repeat runs action and workflow steps again; this is an approval step",
    );
    assert_has_prefix(
        &errors,
        "steps[2].repeat: repeat cannot be combined with for_each",
    );
}

#[test]
fn repeat_fields_are_checked_at_their_paths() {
    let errors = errors_of(
        r#"
id: flow
steps:
  - id: a
    action: core.echo
    repeat: {until: "${steps.a.output.done", max: 0, interval: soon, on_exhausted: retry}
"#,
    );
    assert_has_prefix(&errors, "steps[0].repeat.max: ");
    assert_has_prefix(&errors, "steps[0].repeat.interval: ");
    assert_has_prefix(&errors, "steps[0].repeat.on_exhausted: ");
    let errors = errors_of(
        r#"
id: flow
steps:
  - id: a
    action: core.echo
    repeat: {until: "${steps.a.output.done", max: 2}
"#,
    );
    assert_has_prefix(&errors, "steps[0].repeat.until: ");
}

#[test]
fn iteration_is_only_set_in_a_repeat_step_and_unknown_step_fields_are_named() {
    let errors = errors_of(
        r#"
id: flow
steps:
  - id: a
    action: core.echo
    with: {n: "${iteration}"}
  - id: b
    needs: [a]
    when: "${steps.a.decison == 'approved'}"
    action: core.echo
    with: {n: "${steps['a'].outputs}", ok: "${steps.a.output.anything}"}
"#,
    );
    assert_has_prefix(
        &errors,
        "steps[0].with.n: expression \"iteration\": \"iteration\" is only set in the with, workflow.input and repeat.until of a step with repeat",
    );
    assert_has(
        &errors,
        "steps[1].when: expression \"steps.a.decison == 'approved'\": step \"a\" has no field \"decison\" (fields: status, output, error, decision, comment, user, data, iterations) (did you mean \"decision\"?)",
    );
    assert_has_prefix(
        &errors,
        "steps[1].with.n: expression \"steps['a'].outputs\": step \"a\" has no field \"outputs\"",
    );
    assert_eq!(errors.len(), 3, "{errors:#?}");
}
