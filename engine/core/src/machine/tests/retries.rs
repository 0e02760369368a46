//! Retries: backoff, attempts, codes that are not retried, timeouts.

use super::*;

const RETRY: &str = r#"
id: retry
steps:
  - id: flaky
    action: core.fail_until
    with: {attempts: 3}
    timeout: 30s
    retry: {max_attempts: 3, initial_interval: 2s, max_interval: 1m, multiplier: 2.0, jitter: true, non_retryable: [not_found]}
"#;

#[test]
fn retries_wait_for_backoff_and_count_attempts() {
    let mut harness = Harness::start(RETRY, json!({}));
    let first = harness.only_dispatch();
    assert_eq!(first.timeout, Duration::from_secs(30));

    let events = harness.fail(&first.work, "server_error", true);
    assert_eq!(Harness::types(&events), vec!["step_retry_scheduled"]);
    let (timer, fire_at) = harness.timers().pop().unwrap();
    assert_eq!(timer.attempt, 2);
    assert_eq!(fire_at, harness.now + chrono::Duration::seconds(2));
    assert_eq!(harness.step_status("flaky"), StepStatus::Retrying);
    assert_eq!(harness.state.status(), InstanceStatus::Waiting);

    // A timer that fires for another attempt is stale and changes nothing.
    let stale = TimerKey {
        attempt: 7,
        ..timer.clone()
    };
    assert!(
        harness
            .input(InputBody::TimerFired { timer: stale })
            .is_empty()
    );

    harness.advance(Duration::from_secs(2));
    let events = harness.input(InputBody::TimerFired { timer });
    assert_eq!(
        Harness::types(&events),
        vec!["timer_fired", "step_scheduled"]
    );
    let second = harness.only_dispatch();
    assert_eq!(second.work.attempt, 2);
    assert_eq!(second.idempotency_key, "i-1:flaky:2");

    // The runtime's jittered choice is recorded as it was given.
    let jittered = harness.now + chrono::Duration::milliseconds(3_100);
    harness.input(InputBody::ActionFailed {
        work: second.work.clone(),
        error: ErrorInfo {
            code: "timeout".into(),
            message: "attempt timed out after 30s".into(),
            retryable: true,
        },
        retry_at: Some(jittered),
    });
    let (timer, fire_at) = harness.timers().pop().unwrap();
    assert_eq!(fire_at, jittered);
    harness.now = fire_at;
    harness.input(InputBody::TimerFired { timer });
    let third = harness.only_dispatch();
    assert_eq!(third.work.attempt, 3);

    let events = harness.fail(&third.work, "server_error", true);
    assert_eq!(
        Harness::types(&events),
        vec!["step_failed", "instance_failed"]
    );
    assert_eq!(harness.state.steps[&StepId::from("flaky")].attempts(), 3);
    assert_eq!(harness.state.status(), InstanceStatus::Failed);
    harness.assert_replays();
}

#[test]
fn non_retryable_codes_fail_on_the_first_attempt() {
    let mut harness = Harness::start(RETRY, json!({}));
    let first = harness.only_dispatch();
    let events = harness.fail(&first.work, "not_found", true);
    assert_eq!(
        Harness::types(&events),
        vec!["step_failed", "instance_failed"]
    );
    assert_eq!(harness.state.error().unwrap().code, "not_found");
}

#[test]
fn a_timed_out_attempt_is_retried_like_any_retryable_failure() {
    let mut harness = Harness::start(RETRY, json!({}));
    let first = harness.only_dispatch();
    // The runtime reports an attempt that overran `timeout: 30s` as a retryable
    // failure with code `timeout`; the policy decides like for any other failure.
    let events = harness.fail(&first.work, "timeout", true);
    assert_eq!(Harness::types(&events), vec!["step_retry_scheduled"]);
    let later = harness.dispatched();
    assert!(later.is_empty());
    let (timer, _) = harness.timers().pop().unwrap();
    assert_eq!(timer.purpose, TimerPurpose::Retry);
}

/// This file's tests, for the transition coverage report.
pub(super) const SCENARIOS: &[(&str, fn())] = &[
    (
        "retries_wait_for_backoff_and_count_attempts",
        retries_wait_for_backoff_and_count_attempts,
    ),
    (
        "non_retryable_codes_fail_on_the_first_attempt",
        non_retryable_codes_fail_on_the_first_attempt,
    ),
    (
        "a_timed_out_attempt_is_retried_like_any_retryable_failure",
        a_timed_out_attempt_is_retried_like_any_retryable_failure,
    ),
];
