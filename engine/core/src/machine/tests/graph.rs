//! Steps that follow their needs: a chain, and a diamond whose branches are skipped.

use super::*;

pub(super) const CHAIN: &str = r#"
id: chain
steps:
  - id: a
    action: core.echo
    with: {name: "${input.name}"}
  - id: b
    needs: [a]
    action: core.echo
    with: {greeting: "hello ${steps.a.output.name}"}
  - id: c
    needs: [b]
    action: core.noop
output: {greeting: "${steps.b.output.greeting}"}
"#;

#[test]
fn chain_runs_steps_in_order_and_completes_with_output() {
    let mut harness = Harness::start(CHAIN, json!({"name": "acme"}));
    let a = harness.only_dispatch();
    assert_eq!(a.work, work("a", None, 1));
    assert_eq!(a.arguments, json!({"name": "acme"}));
    assert_eq!(a.idempotency_key, "i-1:a:1");
    assert_eq!(harness.state.status(), InstanceStatus::Running);

    harness.succeed(&a.work, json!({"name": "acme"}));
    let b = harness.only_dispatch();
    assert_eq!(b.arguments, json!({"greeting": "hello acme"}));
    harness.succeed(&b.work, json!({"greeting": "hello acme"}));
    let c = harness.only_dispatch();
    let events = harness.succeed(&c.work, json!({}));

    assert_eq!(
        Harness::types(&events),
        vec!["step_succeeded", "instance_completed"]
    );
    assert_eq!(harness.state.status(), InstanceStatus::Completed);
    assert_eq!(
        harness.state.output(),
        Some(&json!({"greeting": "hello acme"}))
    );
    assert!(harness.last.contains(&Command::Finish {
        status: InstanceStatus::Completed
    }));
    assert_eq!(
        Harness::types(&harness.history[..3]),
        vec!["instance_started", "step_scheduled", "step_started"]
    );
    harness.assert_replays();
}

const DIAMOND: &str = r#"
id: diamond
steps:
  - id: a
    action: core.noop
  - id: b
    needs: [a]
    when: "${input.run_b}"
    action: core.noop
  - id: c
    needs: [a]
    when: "${input.run_c}"
    action: core.noop
  - id: d
    needs: [b, c]
    action: core.noop
  - id: e
    needs: [d]
    action: core.noop
"#;

#[test]
fn skip_propagates_through_diamond_when_every_need_is_skipped() {
    let mut harness = Harness::start(DIAMOND, json!({"run_b": false, "run_c": false}));
    let a = harness.only_dispatch();
    let events = harness.succeed(&a.work, json!({}));
    assert_eq!(
        Harness::types(&events),
        vec![
            "step_succeeded",
            "step_skipped",
            "step_skipped",
            "step_skipped",
            "step_skipped",
            "instance_completed"
        ]
    );
    for step in ["b", "c", "d", "e"] {
        assert_eq!(
            harness.step_status(step),
            StepStatus::Skipped,
            "step {step}"
        );
    }
    assert_eq!(
        harness.state.steps[&StepId::from("d")],
        StepState::Skipped {
            reason: "all needs were skipped".into()
        }
    );
    assert_eq!(harness.state.status(), InstanceStatus::Completed);
    harness.assert_replays();
}

#[test]
fn diamond_join_runs_when_one_branch_ran_and_the_other_was_skipped() {
    let mut harness = Harness::start(DIAMOND, json!({"run_b": false, "run_c": true}));
    let a = harness.only_dispatch();
    harness.succeed(&a.work, json!({}));
    assert_eq!(harness.step_status("b"), StepStatus::Skipped);
    let c = harness.only_dispatch();
    assert_eq!(c.work.step, StepId::from("c"));
    harness.succeed(&c.work, json!({}));
    let d = harness.only_dispatch();
    assert_eq!(d.work.step, StepId::from("d"));
    harness.succeed(&d.work, json!({}));
    let e = harness.only_dispatch();
    harness.succeed(&e.work, json!({}));
    assert_eq!(harness.state.status(), InstanceStatus::Completed);
    harness.assert_replays();
}

/// This file's tests, for the transition coverage report.
pub(super) const SCENARIOS: &[(&str, fn())] = &[
    (
        "chain_runs_steps_in_order_and_completes_with_output",
        chain_runs_steps_in_order_and_completes_with_output,
    ),
    (
        "skip_propagates_through_diamond_when_every_need_is_skipped",
        skip_propagates_through_diamond_when_every_need_is_skipped,
    ),
    (
        "diamond_join_runs_when_one_branch_ran_and_the_other_was_skipped",
        diamond_join_runs_when_one_branch_ran_and_the_other_was_skipped,
    ),
];
