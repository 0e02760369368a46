//! Steps with `repeat`: paging through a search, reminders until acknowledged on an
//! interval, exhaustion (fail or continue), failed runs, stale outcomes of an earlier run.

use super::super::coverage::rows_taken;
use super::*;

const PAGING: &str = r#"
id: paging
steps:
  - id: page
    action: core.echo
    with: {page: "${iteration}"}
    repeat: {until: "${steps.page.output.page >= 3}", max: 10}
  - id: after
    needs: [page]
    action: core.echo
    with: {last: "${steps.page.output}", all: "${steps.page.iterations}"}
output: {pages: "${steps.page.iterations}"}
"#;

#[test]
fn paging_runs_until_the_condition_holds_and_keeps_every_page() {
    let (mut harness, rows) = rows_taken(|| Harness::start(PAGING, json!({})));
    assert!(!rows.contains("repeat.run"));
    let first = harness.only_dispatch();
    assert_eq!(first.arguments, json!({"page": 1}));
    assert_eq!(first.work.iteration, Some(1));
    assert_eq!(first.idempotency_key, "i-1:page:r1:1");

    let ((), rows) = rows_taken(|| {
        let events = harness.succeed(&first.work, json!({"page": 1}));
        assert_eq!(
            Harness::types(&events),
            vec![
                "step_iteration_succeeded",
                "step_repeat_scheduled",
                "step_scheduled"
            ]
        );
    });
    for row in [
        "repeat.iteration_succeeded",
        "repeat.again",
        "repeat.scheduled",
        "repeat.run",
    ] {
        assert!(rows.contains(row), "{row} not taken: {rows:?}");
    }
    let second = harness.only_dispatch();
    assert_eq!(second.arguments, json!({"page": 2}));
    assert_eq!(
        second.work.attempt, 1,
        "each run numbers its attempts from 1"
    );
    assert_eq!(second.idempotency_key, "i-1:page:r2:1");
    assert_eq!(
        harness.state.repeats[&StepId::from("page")].outputs,
        vec![json!({"page": 1})]
    );

    // An outcome of the first run, reported again, is stale.
    let ((), rows) = rows_taken(|| {
        let stale = harness.input(InputBody::ActionSucceeded {
            work: first.work.clone(),
            output: json!({"page": 1}),
        });
        assert!(stale.is_empty());
    });
    assert!(rows.contains("repeat.outcome.stale"));

    harness.succeed(&second.work, json!({"page": 2}));
    let third = harness.only_dispatch();
    assert_eq!(third.arguments, json!({"page": 3}));
    let ((), rows) = rows_taken(|| {
        let events = harness.succeed(&third.work, json!({"page": 3}));
        assert_eq!(
            Harness::types(&events),
            vec![
                "step_iteration_succeeded",
                "step_succeeded",
                "step_scheduled"
            ]
        );
    });
    assert!(rows.contains("repeat.until"));
    let pages = json!([{"page": 1}, {"page": 2}, {"page": 3}]);
    let after = harness.only_dispatch();
    assert_eq!(
        after.arguments,
        json!({"last": {"page": 3}, "all": pages.clone()})
    );
    harness.succeed(&after.work, json!({}));
    assert_eq!(harness.state.status(), InstanceStatus::Completed);
    assert_eq!(harness.state.output(), Some(&json!({"pages": pages})));
    assert_eq!(harness.state.steps[&StepId::from("page")].attempts(), 1);
    harness.assert_replays();
}

const REMINDERS: &str = r#"
id: reminders
steps:
  - id: remind
    action: core.echo
    with: {acknowledged: "${iteration >= 3}", reminder: "${iteration}"}
    repeat: {until: "${steps.remind.output.acknowledged}", max: 5, interval: 1d}
"#;

#[test]
fn reminders_wait_their_interval_on_a_durable_timer_until_acknowledged() {
    let mut harness = Harness::start(REMINDERS, json!({}));
    let mut work_key = harness.only_dispatch().work;
    for reminder in 1..=2 {
        let events = harness.succeed(&work_key, json!({"acknowledged": false}));
        assert_eq!(
            Harness::types(&events),
            vec!["step_iteration_succeeded", "step_repeat_scheduled"]
        );
        let (timer, fire_at) = harness.timers().pop().expect("an interval timer");
        assert_eq!(timer.purpose, TimerPurpose::RepeatInterval);
        assert_eq!(timer.attempt, reminder + 1, "the timer names the next run");
        assert_eq!(fire_at, harness.now + chrono::Duration::days(1));
        assert_eq!(harness.step_status("remind"), StepStatus::Pending);
        assert_eq!(
            harness.state.step_status(&StepId::from("remind")),
            Some(StepStatus::Waiting)
        );
        assert_eq!(harness.state.status(), InstanceStatus::Waiting);

        // A timer for another run is stale; so is one that fires before the state wants it.
        let stale = TimerKey {
            attempt: 9,
            ..timer.clone()
        };
        assert!(
            harness
                .input(InputBody::TimerFired { timer: stale })
                .is_empty()
        );
        harness.advance(Duration::from_secs(86_400));
        let ((), rows) = rows_taken(|| {
            let events = harness.input(InputBody::TimerFired {
                timer: timer.clone(),
            });
            assert_eq!(
                Harness::types(&events),
                vec!["timer_fired", "step_scheduled"]
            );
        });
        assert!(rows.contains("repeat.wake") && rows.contains("repeat.woke"));
        let next = harness.only_dispatch();
        assert_eq!(
            next.arguments,
            json!({"acknowledged": reminder + 1 >= 3, "reminder": reminder + 1})
        );
        work_key = next.work;
    }
    harness.succeed(&work_key, json!({"acknowledged": true}));
    assert_eq!(harness.state.status(), InstanceStatus::Completed);
    assert_eq!(
        harness.state.repeats[&StepId::from("remind")].outputs.len(),
        3
    );
    harness.assert_replays();
}

#[test]
fn cancelling_during_an_interval_cancels_its_timer() {
    let mut harness = Harness::start(REMINDERS, json!({}));
    let first = harness.only_dispatch();
    harness.succeed(&first.work, json!({"acknowledged": false}));
    let (timer, _) = harness.timers().pop().unwrap();
    let ((), rows) = rows_taken(|| {
        harness.input(InputBody::Cancel { reason: None });
    });
    assert!(rows.contains("repeat.stopped"));
    assert!(harness.last.contains(&Command::CancelTimer {
        timer: timer.clone()
    }));
    assert_eq!(harness.state.status(), InstanceStatus::Cancelled);
    assert!(harness.input(InputBody::TimerFired { timer }).is_empty());
    harness.assert_replays();
}

const EXHAUSTED: &str = r#"
id: exhausted
steps:
  - id: poll
    action: core.echo
    with: {done: false}
    repeat: {until: "${steps.poll.output.done}", max: 2}
"#;

#[test]
fn exhausting_max_fails_the_step_and_an_operator_retry_runs_once_more() {
    let mut harness = Harness::start(EXHAUSTED, json!({}));
    let first = harness.only_dispatch();
    harness.succeed(&first.work, json!({"done": false}));
    let second = harness.only_dispatch();
    let ((), rows) = rows_taken(|| {
        let events = harness.succeed(&second.work, json!({"done": false}));
        assert_eq!(
            Harness::types(&events),
            vec!["step_iteration_succeeded", "step_failed", "instance_failed"]
        );
    });
    assert!(rows.contains("repeat.exhausted.fail"));
    assert_eq!(harness.state.status(), InstanceStatus::Failed);
    assert_eq!(
        harness.state.error().map(|error| error.code.as_str()),
        Some("repeat_exhausted")
    );
    assert_eq!(
        harness.state.repeats[&StepId::from("poll")].outputs.len(),
        2
    );

    let ((), rows) = rows_taken(|| {
        harness.input(InputBody::RetryStep {
            step: StepId::from("poll"),
        });
    });
    assert!(rows.contains("repeat.retry"));
    let third = harness.only_dispatch();
    assert_eq!(third.work.iteration, Some(3));
    assert_eq!(third.idempotency_key, "i-1:poll:r3:2");
    harness.succeed(&third.work, json!({"done": true}));
    assert_eq!(harness.state.status(), InstanceStatus::Completed);
    harness.assert_replays();
}

#[test]
fn on_exhausted_continue_succeeds_with_the_last_output() {
    let yaml = EXHAUSTED.replace("max: 2}", "max: 2, on_exhausted: continue}");
    let mut harness = Harness::start(&yaml, json!({}));
    for run in 1..=2 {
        let dispatch = harness.only_dispatch();
        let ((), rows) = rows_taken(|| {
            harness.succeed(&dispatch.work, json!({"done": false, "run": run}));
        });
        if run == 2 {
            assert!(rows.contains("repeat.exhausted.continue"));
        }
    }
    assert_eq!(harness.state.status(), InstanceStatus::Completed);
    assert_eq!(
        harness.state.steps[&StepId::from("poll")].output(),
        Some(&json!({"done": false, "run": 2}))
    );
    harness.assert_replays();
}

const FLAKY: &str = r#"
id: flaky-repeat
steps:
  - id: poll
    action: core.fail_until
    with: {attempts: 2}
    retry: {max_attempts: 2, initial_interval: 1s, jitter: false}
    repeat: {until: "${iteration >= 3}", max: 3}
"#;

#[test]
fn a_run_retries_with_its_own_attempts_and_a_failed_run_fails_the_step() {
    let mut harness = Harness::start(FLAKY, json!({}));
    let first = harness.only_dispatch();
    harness.succeed(&first.work, json!({}));
    let second = harness.only_dispatch();
    assert_eq!((second.work.iteration, second.work.attempt), (Some(2), 1));
    harness.fail(&second.work, "server_error", true);
    let (timer, _) = harness.timers().pop().unwrap();
    assert_eq!(timer.purpose, TimerPurpose::Retry);
    harness.advance(Duration::from_secs(1));
    harness.input(InputBody::TimerFired { timer });
    let retried = harness.only_dispatch();
    assert_eq!(retried.idempotency_key, "i-1:poll:r2:2");
    let events = harness.fail(&retried.work, "server_error", true);
    assert_eq!(
        Harness::types(&events),
        vec!["step_failed", "instance_failed"]
    );
    assert_eq!(harness.state.status(), InstanceStatus::Failed);
    assert_eq!(
        harness.state.error().map(|error| error.code.as_str()),
        Some("server_error")
    );
    harness.assert_replays();
}

#[test]
fn an_until_that_cannot_be_evaluated_fails_the_step() {
    let yaml = EXHAUSTED.replace(
        "until: \"${steps.poll.output.done}\"",
        "until: \"${steps.poll.output.missing.deeper}\"",
    );
    let mut harness = Harness::start(&yaml, json!({}));
    let first = harness.only_dispatch();
    let ((), rows) = rows_taken(|| {
        harness.succeed(&first.work, json!({"done": false}));
    });
    assert!(rows.contains("repeat.until.unevaluable"));
    assert_eq!(
        harness.state.error().map(|error| error.code.as_str()),
        Some("expression")
    );
    harness.assert_replays();
}

pub(super) const SCENARIOS: &[(&str, fn())] = &[
    (
        "paging_runs_until_the_condition_holds_and_keeps_every_page",
        paging_runs_until_the_condition_holds_and_keeps_every_page,
    ),
    (
        "reminders_wait_their_interval_on_a_durable_timer_until_acknowledged",
        reminders_wait_their_interval_on_a_durable_timer_until_acknowledged,
    ),
    (
        "cancelling_during_an_interval_cancels_its_timer",
        cancelling_during_an_interval_cancels_its_timer,
    ),
    (
        "exhausting_max_fails_the_step_and_an_operator_retry_runs_once_more",
        exhausting_max_fails_the_step_and_an_operator_retry_runs_once_more,
    ),
    (
        "on_exhausted_continue_succeeds_with_the_last_output",
        on_exhausted_continue_succeeds_with_the_last_output,
    ),
    (
        "a_run_retries_with_its_own_attempts_and_a_failed_run_fails_the_step",
        a_run_retries_with_its_own_attempts_and_a_failed_run_fails_the_step,
    ),
    (
        "an_until_that_cannot_be_evaluated_fails_the_step",
        an_until_that_cannot_be_evaluated_fails_the_step,
    ),
];
