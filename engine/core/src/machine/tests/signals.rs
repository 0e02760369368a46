//! Wait steps and signals: kept signals, correlation, timeouts, a finished instance.

use super::approvals::REVIEW;
use super::*;

const WAIT: &str = r#"
id: wait
steps:
  - id: work
    action: core.noop
  - id: ack
    needs: [work]
    wait: {signal: partner_acknowledged, timeout: 1d, on_timeout: continue, correlate: "${event.order == input.order}"}
  - id: after
    needs: [ack]
    action: core.echo
    with: {ack: "${steps.ack.output}"}
"#;

fn signal(payload: Value, correlated: bool) -> InputBody {
    InputBody::Signal {
        name: "partner_acknowledged".to_owned(),
        payload,
        correlated,
    }
}

#[test]
fn a_signal_sent_before_the_wait_step_is_kept_and_consumed_when_it_is_reached() {
    let mut harness = Harness::start(WAIT, json!({"order": 7}));
    let work = harness.only_dispatch();
    let events = harness.input(signal(json!({"order": 7, "ok": true}), false));
    assert_eq!(Harness::types(&events), vec!["signal_received"]);
    assert_eq!(harness.state.signals.len(), 1);

    let events = harness.succeed(&work.work, json!({}));
    assert_eq!(
        Harness::types(&events),
        vec![
            "step_succeeded",
            "step_scheduled",
            "step_succeeded",
            "step_scheduled"
        ]
    );
    assert!(harness.state.signals.is_empty());
    let after = harness.only_dispatch();
    assert_eq!(
        after.arguments["ack"],
        json!({"signal": "partner_acknowledged", "payload": {"order": 7, "ok": true}, "timed_out": false})
    );
    harness.assert_replays();
}

#[test]
fn a_signal_completes_a_waiting_step_and_correlation_filters_inbound_events() {
    let mut harness = Harness::start(WAIT, json!({"order": 7}));
    let work = harness.only_dispatch();
    let early = harness.try_input(signal(json!({"order": 7}), true));
    assert!(
        matches!(early, Err(StepError::Rejected { .. })),
        "not waiting yet: {early:?}"
    );
    harness.succeed(&work.work, json!({}));
    assert_eq!(harness.step_status("ack"), StepStatus::Waiting);
    assert_eq!(harness.state.status(), InstanceStatus::Waiting);

    let other = harness.try_input(signal(json!({"order": 8}), true));
    assert!(
        matches!(other, Err(StepError::Rejected { .. })),
        "{other:?}"
    );
    let events = harness.input(signal(json!({"order": 7}), true));
    assert_eq!(
        Harness::types(&events),
        vec!["signal_received", "step_succeeded", "step_scheduled"]
    );
    assert!(harness.last.iter().any(|command| matches!(command,
        Command::CancelTimer { timer } if timer.purpose == TimerPurpose::WaitTimeout)));
    harness.assert_replays();
}

#[test]
fn a_wait_step_times_out_as_configured() {
    for (on_timeout, expected) in [
        (
            "continue",
            vec!["timer_fired", "step_succeeded", "step_scheduled"],
        ),
        (
            "fail",
            vec!["timer_fired", "step_failed", "instance_failed"],
        ),
    ] {
        let yaml = WAIT.replace("on_timeout: continue", &format!("on_timeout: {on_timeout}"));
        let mut harness = Harness::start(&yaml, json!({"order": 7}));
        let work = harness.only_dispatch();
        harness.succeed(&work.work, json!({}));
        let (timer, fire_at) = harness.timers().pop().unwrap();
        assert_eq!(timer.purpose, TimerPurpose::WaitTimeout);
        assert_eq!(fire_at, harness.now + chrono::Duration::days(1));
        harness.now = fire_at;
        let events = harness.input(InputBody::TimerFired { timer });
        assert_eq!(
            Harness::types(&events),
            expected,
            "on_timeout: {on_timeout}"
        );
        harness.assert_replays();
    }
}

#[test]
fn a_finished_instance_refuses_signals_and_cancel_closes_open_approvals() {
    let mut harness = Harness::start(REVIEW, json!({"partner": "acme"}));
    harness.input(InputBody::Cancel { reason: None });
    assert_eq!(harness.approval().status, ApprovalStatus::Cancelled);
    let refused = harness.try_input(signal(json!({}), false));
    assert!(
        matches!(refused, Err(StepError::Rejected { .. })),
        "{refused:?}"
    );
    harness.assert_replays();
}

/// This file's tests, for the transition coverage report.
pub(super) const SCENARIOS: &[(&str, fn())] = &[
    (
        "a_signal_sent_before_the_wait_step_is_kept_and_consumed_when_it_is_reached",
        a_signal_sent_before_the_wait_step_is_kept_and_consumed_when_it_is_reached,
    ),
    (
        "a_signal_completes_a_waiting_step_and_correlation_filters_inbound_events",
        a_signal_completes_a_waiting_step_and_correlation_filters_inbound_events,
    ),
    (
        "a_wait_step_times_out_as_configured",
        a_wait_step_times_out_as_configured,
    ),
    (
        "a_finished_instance_refuses_signals_and_cancel_closes_open_approvals",
        a_finished_instance_refuses_signals_and_cancel_closes_open_approvals,
    ),
];
