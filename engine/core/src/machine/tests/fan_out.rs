//! Fan-out steps: the concurrency limit, an empty list.

use super::*;

const FAN_OUT: &str = r#"
id: fan-out
steps:
  - id: deliver
    for_each: "${input.assets}"
    concurrency: 2
    action: core.echo
    with: {asset: "${item}"}
"#;

#[test]
fn fan_out_never_exceeds_its_concurrency_limit() {
    let assets = json!(["a1", "a2", "a3", "a4", "a5"]);
    let mut harness = Harness::start(FAN_OUT, json!({"assets": assets}));
    let mut in_flight: Vec<WorkKey> = harness.dispatched().into_iter().map(|d| d.work).collect();
    assert_eq!(in_flight.len(), 2);
    assert_eq!(in_flight[0], work("deliver", Some(0), 1));
    assert_eq!(harness.step_status("deliver"), StepStatus::Scheduled);

    let mut finished = 0;
    while let Some(next) = in_flight.first().cloned() {
        in_flight.remove(0);
        let index = next.item.unwrap();
        harness.succeed(&next, json!({"shared": index}));
        finished += 1;
        for dispatch in harness.dispatched() {
            assert_eq!(
                dispatch.arguments,
                json!({"asset": assets[dispatch.work.item.unwrap() as usize]})
            );
            in_flight.push(dispatch.work);
        }
        assert!(in_flight.len() <= 2, "{} in flight", in_flight.len());
    }
    assert_eq!(finished, 5);
    assert_eq!(harness.state.status(), InstanceStatus::Completed);
    assert_eq!(
        harness.state.steps[&StepId::from("deliver")].output(),
        Some(&json!([{"shared": 0}, {"shared": 1}, {"shared": 2}, {"shared": 3}, {"shared": 4}]))
    );
    let whole_step_successes = harness
        .history
        .iter()
        .filter(|event| matches!(event.body, EventBody::StepSucceeded { item: None, .. }))
        .count();
    assert_eq!(whole_step_successes, 1);
    harness.assert_replays();
}

#[test]
fn fan_out_over_an_empty_list_succeeds_at_once() {
    let harness = Harness::start(FAN_OUT, json!({"assets": []}));
    assert_eq!(harness.state.status(), InstanceStatus::Completed);
    assert_eq!(
        harness.state.steps[&StepId::from("deliver")].output(),
        Some(&json!([]))
    );
}

/// This file's tests, for the transition coverage report.
pub(super) const SCENARIOS: &[(&str, fn())] = &[
    (
        "fan_out_never_exceeds_its_concurrency_limit",
        fan_out_never_exceeds_its_concurrency_limit,
    ),
    (
        "fan_out_over_an_empty_list_succeeds_at_once",
        fan_out_over_an_empty_list_succeeds_at_once,
    ),
];
