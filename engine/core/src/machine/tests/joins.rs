//! Joins (`all_done`, `any`) and what a step reads of the others: every field, null where
//! it does not apply.

use super::super::coverage::rows_taken;
use super::*;

/// DESIGN.md §2's request: a rejection skips the delivery, and the partner still hears.
const REJECTED: &str = r#"
id: partner-request
steps:
  - id: review
    approval: {title: "Send the assets?", users: [ann]}
  - id: deliver
    needs: [review]
    when: "${steps.review.decision == 'approved'}"
    action: core.echo
    with: {sent: true}
  - id: archive
    needs: [deliver]
    action: core.noop
  - id: tell_partner
    needs: [deliver]
    join: all_done
    action: core.echo
    with:
      decision: "${steps.review.decision}"
      comment: "${steps.review.comment}"
      delivered: "${steps.deliver.output}"
      delivery: "${steps.deliver.status}"
      error: "${steps.deliver.error}"
output: {told: "${steps.tell_partner.output}"}
"#;

fn reject(user: &str) -> InputBody {
    InputBody::Decide {
        step: StepId::from("review"),
        item: None,
        attempt: 1,
        user: user.to_owned(),
        groups: Vec::new(),
        decision: crate::approval::Verdict::Reject,
        comment: Some("not this season".to_owned()),
        data: Value::Null,
    }
}

#[test]
fn a_rejected_request_reaches_the_partner_through_an_all_done_join() {
    let (mut harness, rows) = rows_taken(|| {
        let mut harness = Harness::start(REJECTED, json!({}));
        harness.try_input_as("ann", reject("ann")).unwrap();
        harness
    });
    assert!(rows.contains("derive.join.all_done"), "{rows:?}");
    assert!(rows.contains("derive.skip.needs"), "{rows:?}");
    assert_eq!(harness.step_status("deliver"), StepStatus::Skipped);
    // The default join is skipped with its skipped need; all_done is not.
    assert_eq!(harness.step_status("archive"), StepStatus::Skipped);
    let told = harness.only_dispatch();
    assert_eq!(told.work, work("tell_partner", None, 1));
    assert_eq!(
        told.arguments,
        json!({
            "decision": "rejected",
            "comment": "not this season",
            "delivered": null,
            "delivery": "skipped",
            "error": null,
        })
    );
    harness.succeed(&told.work, json!({"told": "rejected"}));
    assert_eq!(harness.state.status(), InstanceStatus::Completed);
    assert_eq!(
        harness.state.output(),
        Some(&json!({"told": {"told": "rejected"}}))
    );
    harness.assert_replays();
}

const ALL_DONE: &str = r#"
id: all-done
steps:
  - id: a
    action: core.fail
    with: {message: boom}
    retry: {max_attempts: 1}
    on_error: continue
  - id: b
    action: core.echo
  - id: c
    needs: [a, b]
    join: all_done
    action: core.echo
    with: {a: "${steps.a.status}", code: "${steps.a.error.code}", b: "${steps.b.output}"}
"#;

#[test]
fn all_done_waits_for_every_need_whatever_its_outcome() {
    let mut harness = Harness::start(ALL_DONE, json!({}));
    let dispatched = harness.dispatched();
    assert_eq!(dispatched.len(), 2);
    harness.fail(&dispatched[0].work, "boom", false);
    assert_eq!(harness.step_status("a"), StepStatus::Failed);
    assert!(harness.dispatched().is_empty(), "c ran before b ended");
    assert_eq!(harness.step_status("c"), StepStatus::Pending);

    harness.succeed(&dispatched[1].work, json!({"b": 2}));
    let c = harness.only_dispatch();
    assert_eq!(
        c.arguments,
        json!({"a": "failed", "code": "boom", "b": {"b": 2}})
    );
    harness.succeed(&c.work, json!({}));
    assert_eq!(harness.state.status(), InstanceStatus::Completed);
    harness.assert_replays();
}

const ANY: &str = r#"
id: any
steps:
  - id: fast
    action: core.echo
  - id: slow
    action: core.echo
  - id: first
    needs: [fast, slow]
    join: any
    action: core.echo
    with: {fast: "${steps.fast.status}", slow: "${steps.slow.status}", slow_output: "${steps.slow.output}"}
"#;

#[test]
fn any_runs_once_one_need_succeeded_while_the_others_go_on() {
    let (mut harness, rows) = rows_taken(|| Harness::start(ANY, json!({})));
    assert!(!rows.contains("derive.join.any"));
    let dispatched = harness.dispatched();
    assert_eq!(dispatched.len(), 2);
    let ((), rows) = rows_taken(|| {
        harness.succeed(&dispatched[0].work, json!({"n": 1}));
    });
    assert!(rows.contains("derive.join.any"), "{rows:?}");
    let first = harness.only_dispatch();
    assert_eq!(first.work.step, StepId::from("first"));
    assert_eq!(
        first.arguments,
        json!({"fast": "succeeded", "slow": "scheduled", "slow_output": null})
    );
    // The other need goes on; the instance completes once it has ended too.
    harness.succeed(&first.work, json!({}));
    assert_eq!(harness.state.status(), InstanceStatus::Running);
    harness.succeed(&dispatched[1].work, json!({"n": 2}));
    assert_eq!(harness.state.status(), InstanceStatus::Completed);
    harness.assert_replays();
}

const NONE_SUCCEEDS: &str = r#"
id: any-none
steps:
  - id: maybe
    when: "${input.run}"
    action: core.echo
  - id: broken
    action: core.fail
    with: {message: boom}
    on_error: continue
  - id: first
    needs: [maybe, broken]
    join: any
    action: core.echo
  - id: last
    needs: [first]
    join: all_done
    action: core.echo
    with: {first: "${steps.first.status}"}
"#;

#[test]
fn any_is_skipped_once_no_need_can_succeed_and_all_done_still_runs_after_it() {
    let (mut harness, rows) = rows_taken(|| {
        let mut harness = Harness::start(NONE_SUCCEEDS, json!({"run": false}));
        let broken = harness.only_dispatch();
        harness.fail(&broken.work, "boom", false);
        harness
    });
    assert!(rows.contains("derive.skip.any"), "{rows:?}");
    let skipped = harness.history.iter().find_map(|event| {
        if let EventBody::StepSkipped { step, reason, .. } = &event.body
            && step.as_str() == "first"
        {
            Some(reason.clone())
        } else {
            None
        }
    });
    assert_eq!(skipped.as_deref(), Some("no need succeeded"));
    let last = harness.only_dispatch();
    assert_eq!(last.arguments, json!({"first": "skipped"}));
    harness.succeed(&last.work, json!({}));
    assert_eq!(harness.state.status(), InstanceStatus::Completed);
    harness.assert_replays();
}

const SKIPPED_READ: &str = r#"
id: skipped-read
steps:
  - id: review
    when: "${input.review}"
    approval: {title: "Review?", users: [ann]}
  - id: report
    needs: [review]
    join: all_done
    action: core.echo
    with:
      decision: "${steps.review.decision}"
      comment: "${steps.review.comment}"
      user: "${steps.review.user}"
      data: "${steps.review.data}"
      output: "${steps.review.output}"
      error: "${steps.review.error}"
      iterations: "${steps.review.iterations}"
      status: "${steps.review.status}"
"#;

#[test]
fn a_skipped_step_reads_as_null_in_every_field_but_its_status() {
    let mut harness = Harness::start(SKIPPED_READ, json!({"review": false}));
    let report = harness.only_dispatch();
    assert_eq!(
        report.arguments,
        json!({
            "decision": null, "comment": null, "user": null, "data": null,
            "output": null, "error": null, "iterations": null, "status": "skipped",
        })
    );
    harness.succeed(&report.work, json!({}));
    assert_eq!(harness.state.status(), InstanceStatus::Completed);
    harness.assert_replays();
}

#[test]
fn every_step_in_scope_has_exactly_the_documented_fields() {
    let harness = Harness::start(SKIPPED_READ, json!({"review": true}));
    let scope = scope(&harness.state, None, None);
    for (step, entry) in scope.get("steps").unwrap().as_object().unwrap() {
        let mut fields: Vec<&str> = entry
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        let mut expected = crate::expr::STEP_FIELDS.to_vec();
        expected.sort_unstable();
        assert_eq!(fields, expected, "steps.{step}");
    }
}

pub(super) const SCENARIOS: &[(&str, fn())] = &[
    (
        "a_rejected_request_reaches_the_partner_through_an_all_done_join",
        a_rejected_request_reaches_the_partner_through_an_all_done_join,
    ),
    (
        "all_done_waits_for_every_need_whatever_its_outcome",
        all_done_waits_for_every_need_whatever_its_outcome,
    ),
    (
        "any_runs_once_one_need_succeeded_while_the_others_go_on",
        any_runs_once_one_need_succeeded_while_the_others_go_on,
    ),
    (
        "any_is_skipped_once_no_need_can_succeed_and_all_done_still_runs_after_it",
        any_is_skipped_once_no_need_can_succeed_and_all_done_still_runs_after_it,
    ),
    (
        "a_skipped_step_reads_as_null_in_every_field_but_its_status",
        a_skipped_step_reads_as_null_in_every_field_but_its_status,
    ),
];
