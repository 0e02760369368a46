//! Compensation after a failure, latest completion first.

use super::*;

const SAGA: &str = r#"
id: saga
steps:
  - id: reserve
    action: core.echo
    with: {id: r1}
    compensate: {action: core.echo, with: {undo: "${output.id}"}}
  - id: notify
    needs: [reserve]
    action: core.noop
  - id: share
    needs: [notify]
    for_each: [s1, s2]
    action: core.echo
    with: {id: "${item}"}
    compensate: {action: core.echo, with: {revoke: "${output.id}"}}
  - id: publish
    needs: [share]
    action: core.fail
    with: {message: boom}
    retry: {max_attempts: 1}
"#;

#[test]
fn compensation_runs_in_reverse_completion_order_then_fails_the_instance() {
    let mut harness = Harness::start(SAGA, json!({}));
    let reserve = harness.only_dispatch();
    harness.succeed(&reserve.work, json!({"id": "r1"}));
    let notify = harness.only_dispatch();
    harness.succeed(&notify.work, json!({}));
    let shares = harness.dispatched();
    assert_eq!(shares.len(), 2);
    // Item 1 finishes before item 0: compensation follows completion order.
    harness.succeed(&shares[1].work, json!({"id": "s2"}));
    harness.succeed(&shares[0].work, json!({"id": "s1"}));
    let publish = harness.only_dispatch();

    harness.fail(&publish.work, "injected", false);
    let mut undone = Vec::new();
    loop {
        let dispatched = harness.dispatched();
        if dispatched.is_empty() {
            break;
        }
        assert_eq!(dispatched.len(), 1, "compensations run one at a time");
        let compensation = dispatched[0].clone();
        assert!(compensation.work.compensation);
        assert!(compensation.idempotency_key.ends_with(":compensate"));
        undone.push(compensation.arguments.clone());
        harness.succeed(&compensation.work, json!({}));
    }
    assert_eq!(
        undone,
        vec![
            json!({"revoke": "s1"}),
            json!({"revoke": "s2"}),
            json!({"undo": "r1"})
        ]
    );
    assert_eq!(harness.state.status(), InstanceStatus::Failed);
    assert_eq!(harness.state.error().unwrap().code, "injected");
    let types = Harness::types(&harness.history);
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "compensation_started")
            .count(),
        3
    );
    assert_eq!(types.last().unwrap(), "instance_failed");
    // Compensated instances cannot be retried: their effects were undone.
    assert!(matches!(
        harness.try_input(InputBody::RetryStep {
            step: StepId::from("publish")
        }),
        Err(StepError::Rejected { .. })
    ));
    harness.assert_replays();
}

#[test]
fn a_failed_compensation_is_recorded_and_the_rest_still_run() {
    let mut harness = Harness::start(SAGA, json!({}));
    let reserve = harness.only_dispatch();
    harness.succeed(&reserve.work, json!({"id": "r1"}));
    let notify = harness.only_dispatch();
    harness.succeed(&notify.work, json!({}));
    for share in harness.dispatched() {
        harness.succeed(&share.work, json!({"id": "s"}));
    }
    let publish = harness.only_dispatch();
    harness.fail(&publish.work, "injected", false);
    let first = harness.only_dispatch();
    let events = harness.fail(&first.work, "forbidden", false);
    assert_eq!(
        Harness::types(&events),
        vec!["compensation_failed", "compensation_started"]
    );
    harness.assert_replays();
}

/// This file's tests, for the transition coverage report.
pub(super) const SCENARIOS: &[(&str, fn())] = &[
    (
        "compensation_runs_in_reverse_completion_order_then_fails_the_instance",
        compensation_runs_in_reverse_completion_order_then_fails_the_instance,
    ),
    (
        "a_failed_compensation_is_recorded_and_the_rest_still_run",
        a_failed_compensation_is_recorded_and_the_rest_still_run,
    ),
];
