//! Unit tests of the pure state machine: inputs in, events, commands and state out.
//! No IO, no clock: time is a value the harness advances.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use super::*;
use crate::replay::replay;
use crate::status::StepStatus;

struct Harness {
    definition: Definition,
    state: InstanceState,
    now: DateTime<Utc>,
    history: Vec<Event>,
    last: Vec<Command>,
}

fn definition(yaml: &str) -> Definition {
    serde_saphyr::from_str(yaml).expect("test definition parses")
}

impl Harness {
    fn start(yaml: &str, input: Value) -> Self {
        let definition = definition(yaml);
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap();
        let state = InstanceState::new(InstanceId::from("i-1"), definition.id.clone(), now);
        let mut harness = Self {
            definition,
            state,
            now,
            history: Vec::new(),
            last: Vec::new(),
        };
        harness.input(InputBody::Start { version: 1, input });
        harness
    }

    fn try_input(&mut self, body: InputBody) -> Result<Vec<Event>, StepError> {
        let input = Input {
            at: self.now,
            actor: "alice".to_owned(),
            body,
        };
        let result = transition(self.state.clone(), &input, &self.definition)?;
        self.state = result.state;
        self.history.extend(result.events.clone());
        self.last = result.commands;
        Ok(result.events)
    }

    fn input(&mut self, body: InputBody) -> Vec<Event> {
        self.try_input(body).expect("input is accepted")
    }

    fn advance(&mut self, duration: Duration) {
        self.now += chrono::Duration::from_std(duration).unwrap();
    }

    /// Work dispatched by the last input, in order.
    fn dispatched(&self) -> Vec<Dispatch> {
        self.last
            .iter()
            .filter_map(|command| match command {
                Command::Dispatch(dispatch) => Some(dispatch.clone()),
                Command::AbandonWork { .. }
                | Command::StartTimer { .. }
                | Command::CancelTimer { .. }
                | Command::Finish { .. } => None,
            })
            .collect()
    }

    fn only_dispatch(&self) -> Dispatch {
        let dispatched = self.dispatched();
        assert_eq!(
            dispatched.len(),
            1,
            "expected one dispatch, got {dispatched:?}"
        );
        dispatched.into_iter().next().unwrap()
    }

    fn succeed(&mut self, work: &WorkKey, output: Value) -> Vec<Event> {
        self.input(InputBody::ActionStarted { work: work.clone() });
        self.input(InputBody::ActionSucceeded {
            work: work.clone(),
            output,
        })
    }

    fn fail(&mut self, work: &WorkKey, code: &str, retryable: bool) -> Vec<Event> {
        self.input(InputBody::ActionStarted { work: work.clone() });
        self.input(InputBody::ActionFailed {
            work: work.clone(),
            error: ErrorInfo {
                code: code.to_owned(),
                message: format!("{code} happened"),
                retryable,
            },
            retry_at: None,
        })
    }

    fn timers(&self) -> Vec<(TimerKey, DateTime<Utc>)> {
        self.last
            .iter()
            .filter_map(|command| match command {
                Command::StartTimer { timer, fire_at } => Some((timer.clone(), *fire_at)),
                Command::Dispatch(_)
                | Command::AbandonWork { .. }
                | Command::CancelTimer { .. }
                | Command::Finish { .. } => None,
            })
            .collect()
    }

    fn types(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|event| event.body.type_and_data().0)
            .collect()
    }

    fn step_status(&self, step: &str) -> StepStatus {
        self.state.steps[&StepId::from(step)].status()
    }

    /// Folding the recorded history must give exactly the state the transitions built.
    fn assert_replays(&self) {
        let recorded = crate::history::record_chain(
            &self.state.id,
            0,
            crate::history::GENESIS_HASH,
            &self.history,
        );
        let replayed = replay(&self.state.id, &recorded, &self.definition, None).unwrap();
        assert_eq!(replayed, self.state);
    }
}

fn work(step: &str, item: Option<u32>, attempt: u32) -> WorkKey {
    WorkKey {
        step: StepId::from(step),
        item,
        attempt,
        compensation: false,
    }
}

const CHAIN: &str = r#"
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
