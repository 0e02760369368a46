//! The instance's lifecycle: cancel, sleep, on_error continue, an operator's retry, expression errors, events the state refuses.

use super::graph::CHAIN;
use super::*;

const PARALLEL: &str = r#"
id: parallel
steps:
  - id: work
    action: core.delay
    with: {ms: 100}
  - id: nap
    sleep: 1h
"#;

#[test]
fn cancel_abandons_running_work_and_timers_and_ignores_late_results() {
    let mut harness = Harness::start(PARALLEL, json!({}));
    let running = harness.only_dispatch();
    let (sleep_timer, fire_at) = harness.timers().pop().unwrap();
    assert_eq!(fire_at, harness.now + chrono::Duration::hours(1));
    harness.input(InputBody::ActionStarted {
        work: running.work.clone(),
    });

    let events = harness.input(InputBody::Cancel {
        reason: Some("partner withdrew".into()),
    });
    assert_eq!(Harness::types(&events), vec!["instance_cancelled"]);
    assert_eq!(events[0].actor, "alice");
    assert!(harness.last.contains(&Command::AbandonWork {
        work: running.work.clone()
    }));
    assert!(harness.last.contains(&Command::CancelTimer {
        timer: sleep_timer.clone()
    }));
    assert_eq!(harness.state.status(), InstanceStatus::Cancelled);
    assert_eq!(harness.step_status("work"), StepStatus::Cancelled);
    assert_eq!(harness.step_status("nap"), StepStatus::Cancelled);

    let late = harness.input(InputBody::ActionSucceeded {
        work: running.work,
        output: json!({}),
    });
    assert!(late.is_empty());
    assert!(
        harness
            .input(InputBody::TimerFired { timer: sleep_timer })
            .is_empty()
    );
    assert!(matches!(
        harness.try_input(InputBody::Cancel { reason: None }),
        Err(StepError::Rejected { .. })
    ));
    harness.assert_replays();
}

#[test]
fn sleep_waits_for_its_timer() {
    let mut harness = Harness::start(PARALLEL, json!({}));
    let running = harness.only_dispatch();
    let (timer, fire_at) = harness.timers().pop().unwrap();
    harness.succeed(&running.work, json!({}));
    assert_eq!(harness.state.status(), InstanceStatus::Waiting);
    assert_eq!(harness.step_status("nap"), StepStatus::Waiting);
    harness.now = fire_at;
    let events = harness.input(InputBody::TimerFired { timer });
    assert_eq!(
        Harness::types(&events),
        vec!["timer_fired", "step_succeeded", "instance_completed"]
    );
    harness.assert_replays();
}

const CONTINUE: &str = r#"
id: continue
steps:
  - id: optional
    action: core.fail
    with: {message: nope}
    on_error: continue
    retry: {max_attempts: 1}
  - id: after
    needs: [optional]
    action: core.echo
    with: {saw: "${steps.optional.status}"}
"#;

#[test]
fn on_error_continue_records_the_failure_and_goes_on() {
    let mut harness = Harness::start(CONTINUE, json!({}));
    let optional = harness.only_dispatch();
    harness.fail(&optional.work, "injected", false);
    assert_eq!(harness.step_status("optional"), StepStatus::Failed);
    let after = harness.only_dispatch();
    assert_eq!(after.arguments, json!({"saw": "failed"}));
    harness.succeed(&after.work, json!({}));
    assert_eq!(harness.state.status(), InstanceStatus::Completed);
    harness.assert_replays();
}

#[test]
fn an_operator_retry_reruns_the_failed_step_with_the_next_attempt() {
    let mut harness = Harness::start(CHAIN, json!({"name": "acme"}));
    let a = harness.only_dispatch();
    harness.input(InputBody::ActionFailed {
        work: a.work.clone(),
        error: ErrorInfo::permanent("invalid", "bad name"),
        retry_at: None,
    });
    assert_eq!(harness.state.status(), InstanceStatus::Failed);
    let events = harness.input(InputBody::RetryStep {
        step: StepId::from("a"),
    });
    assert_eq!(
        Harness::types(&events),
        vec!["step_retry_requested", "step_scheduled"]
    );
    let again = harness.only_dispatch();
    assert_eq!(again.work.attempt, 2);
    assert_eq!(harness.state.status(), InstanceStatus::Running);
    harness.assert_replays();
}

#[test]
fn an_expression_error_fails_the_step_with_a_clear_message() {
    // input.name is missing: the first step's arguments cannot be rendered.
    let harness = Harness::start(CHAIN, json!({}));
    assert!(harness.dispatched().is_empty());
    assert_eq!(harness.state.status(), InstanceStatus::Failed);
    let error = harness.state.error().unwrap();
    assert_eq!(error.code, "expression");
    assert!(error.message.contains("input.name"), "{}", error.message);
    harness.assert_replays();
}

#[test]
fn apply_refuses_an_event_the_state_does_not_allow() {
    let definition = definition(CHAIN);
    let at = Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap();
    let state = InstanceState::new(InstanceId::from("i-9"), definition.id.clone(), at);
    let event = Event::system(
        at,
        EventBody::StepStarted {
            step: StepId::from("a"),
            attempt: 1,
            item: None,
        },
    );
    assert!(matches!(
        apply(state, &event, &definition),
        Err(StepError::InvalidTransition { .. })
    ));
}

/// This file's tests, for the transition coverage report.
pub(super) const SCENARIOS: &[(&str, fn())] = &[
    (
        "cancel_abandons_running_work_and_timers_and_ignores_late_results",
        cancel_abandons_running_work_and_timers_and_ignores_late_results,
    ),
    ("sleep_waits_for_its_timer", sleep_waits_for_its_timer),
    (
        "on_error_continue_records_the_failure_and_goes_on",
        on_error_continue_records_the_failure_and_goes_on,
    ),
    (
        "an_operator_retry_reruns_the_failed_step_with_the_next_attempt",
        an_operator_retry_reruns_the_failed_step_with_the_next_attempt,
    ),
    (
        "an_expression_error_fails_the_step_with_a_clear_message",
        an_expression_error_fails_the_step_with_a_clear_message,
    ),
    (
        "apply_refuses_an_event_the_state_does_not_allow",
        apply_refuses_an_event_the_state_does_not_allow,
    ),
];
