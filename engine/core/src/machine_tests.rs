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
        self.try_input_as("alice", body)
    }

    fn try_input_as(&mut self, actor: &str, body: InputBody) -> Result<Vec<Event>, StepError> {
        let input = Input {
            at: self.now,
            actor: actor.to_owned(),
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

// Approvals and waits. The harness starts every instance as "alice".

const REVIEW: &str = r#"
id: review
steps:
  - id: review
    approval:
      title: "Send to ${input.partner}?"
      users: [alice, ann, bob, cid]
      groups: [brand]
      quorum: 2
      form: {type: object, properties: {budget: {type: integer, maximum: 100}}}
  - id: deliver
    needs: [review]
    when: "${steps.review.decision == 'approved'}"
    action: core.echo
    with: {by: "${steps.review.user}", comment: "${steps.review.comment}", budget: "${steps.review.data.budget}"}
"#;

fn decide(user: &str, verdict: Verdict) -> InputBody {
    decide_with(user, &[], verdict, Value::Null)
}

fn decide_with(user: &str, groups: &[&str], verdict: Verdict, data: Value) -> InputBody {
    InputBody::Decide {
        step: StepId::from("review"),
        attempt: 1,
        user: user.to_owned(),
        groups: groups.iter().map(|group| group.to_string()).collect(),
        decision: verdict,
        comment: Some(format!("{user} decided")),
        data,
    }
}

impl Harness {
    fn decide(&mut self, user: &str, verdict: Verdict) -> Result<Vec<Event>, StepError> {
        self.try_input_as(user, decide(user, verdict))
    }

    fn approval(&self) -> &ApprovalState {
        &self.state.approvals[&StepId::from("review")]
    }
}

#[test]
fn quorum_two_of_three_completes_on_the_second_approval_and_refuses_the_third() {
    let mut harness = Harness::start(REVIEW, json!({"partner": "acme"}));
    let events = Harness::types(&harness.history);
    assert_eq!(events, vec!["instance_started", "approval_requested"]);
    assert_eq!(harness.approval().title, "Send to acme?");
    assert_eq!(harness.step_status("review"), StepStatus::Waiting);
    assert_eq!(harness.state.status(), InstanceStatus::Waiting);

    let events = harness.decide("ann", Verdict::Approve).unwrap();
    assert_eq!(Harness::types(&events), vec!["approval_decided"]);
    assert_eq!(events[0].actor, "ann");
    assert_eq!(harness.approval().status, ApprovalStatus::Pending);

    let data = json!({"budget": 40});
    let events = harness
        .try_input_as("bob", decide_with("bob", &[], Verdict::Approve, data))
        .unwrap();
    assert_eq!(
        Harness::types(&events),
        vec!["approval_decided", "step_succeeded", "step_scheduled"]
    );
    assert_eq!(harness.approval().status, ApprovalStatus::Approved);
    let deliver = harness.only_dispatch();
    assert_eq!(
        deliver.arguments,
        json!({"by": "bob", "comment": "bob decided", "budget": 40})
    );

    let late = harness.decide("cid", Verdict::Approve);
    assert!(
        matches!(&late, Err(StepError::Rejected { message, .. }) if message.contains("approved already")),
        "{late:?}"
    );
    harness.assert_replays();
}

#[test]
fn one_rejection_rejects_and_dependents_see_the_decision() {
    let mut harness = Harness::start(REVIEW, json!({"partner": "acme"}));
    harness.decide("ann", Verdict::Approve).unwrap();
    let events = harness.decide("bob", Verdict::Reject).unwrap();
    assert_eq!(
        Harness::types(&events),
        vec![
            "approval_decided",
            "step_succeeded",
            "step_skipped",
            "instance_completed"
        ]
    );
    assert_eq!(harness.approval().status, ApprovalStatus::Rejected);
    assert_eq!(
        harness.approval().outcome.as_ref().unwrap().user,
        "bob".to_owned()
    );
    harness.assert_replays();
}

#[test]
fn the_starter_may_not_approve_unless_the_definition_allows_it() {
    let mut harness = Harness::start(REVIEW, json!({"partner": "acme"}));
    let refused = harness.decide("alice", Verdict::Approve);
    assert!(
        matches!(&refused, Err(StepError::Forbidden { message, .. }) if message.contains("started the instance")),
        "{refused:?}"
    );
    assert!(harness.approval().decisions.is_empty());

    let allowed = REVIEW.replace("quorum: 2", "quorum: 1\n      allow_self_approval: true");
    let mut harness = Harness::start(&allowed, json!({"partner": "acme"}));
    harness.decide("alice", Verdict::Approve).unwrap();
    assert_eq!(harness.approval().status, ApprovalStatus::Approved);
    harness.assert_replays();
}

#[test]
fn only_assignees_by_user_or_group_may_decide_and_only_once() {
    let mut harness = Harness::start(REVIEW, json!({"partner": "acme"}));
    let outsider = harness.decide("eve", Verdict::Approve);
    assert!(
        matches!(&outsider, Err(StepError::Forbidden { message, .. }) if message.contains("not an assignee")),
        "{outsider:?}"
    );
    harness
        .try_input_as(
            "gus",
            decide_with("gus", &["brand"], Verdict::Approve, Value::Null),
        )
        .unwrap();
    let twice = harness.try_input_as(
        "gus",
        decide_with("gus", &["brand"], Verdict::Approve, Value::Null),
    );
    assert!(
        matches!(twice, Err(StepError::Rejected { .. })),
        "{twice:?}"
    );
    assert_eq!(harness.approval().decisions.len(), 1);
    harness.assert_replays();
}

#[test]
fn data_that_violates_the_form_is_refused_with_every_violation() {
    let mut harness = Harness::start(REVIEW, json!({"partner": "acme"}));
    let before = harness.state.clone();
    let refused = harness.try_input_as(
        "ann",
        decide_with("ann", &[], Verdict::Approve, json!({"budget": 500})),
    );
    match refused {
        Err(StepError::InvalidDecision { violations, .. }) => {
            assert_eq!(violations.len(), 1, "{violations:?}");
            assert!(violations[0].starts_with("data.budget: "), "{violations:?}");
        }
        other => panic!("expected a form violation, got {other:?}"),
    }
    assert_eq!(harness.state, before);
}

#[test]
fn a_delegate_becomes_an_assignee_and_the_delegator_may_no_longer_decide() {
    let mut harness = Harness::start(REVIEW, json!({"partner": "acme"}));
    let delegate = |from: &str, to: &str| InputBody::Delegate {
        step: StepId::from("review"),
        attempt: 1,
        from: from.to_owned(),
        groups: Vec::new(),
        to: to.to_owned(),
    };
    let events = harness.try_input_as("ann", delegate("ann", "dan")).unwrap();
    assert_eq!(Harness::types(&events), vec!["approval_delegated"]);
    assert!(harness.approval().users.contains(&"dan".to_owned()));
    let refused = harness.decide("ann", Verdict::Approve);
    assert!(
        matches!(refused, Err(StepError::Forbidden { .. })),
        "{refused:?}"
    );
    let to_starter = harness.try_input_as("bob", delegate("bob", "alice"));
    assert!(
        matches!(to_starter, Err(StepError::Forbidden { .. })),
        "{to_starter:?}"
    );
    let by_outsider = harness.try_input_as("eve", delegate("eve", "dan"));
    assert!(
        matches!(by_outsider, Err(StepError::Forbidden { .. })),
        "{by_outsider:?}"
    );

    harness.decide("dan", Verdict::Approve).unwrap();
    harness.decide("bob", Verdict::Approve).unwrap();
    assert_eq!(harness.approval().status, ApprovalStatus::Approved);
    harness.assert_replays();
}

fn timed(on_timeout: &str, escalate_to: &str) -> String {
    format!(
        r#"
id: timed
steps:
  - id: review
    approval:
      title: review
      users: [ann]
      due: 1h
      on_timeout: {on_timeout}
      {escalate_to}
  - id: after
    needs: [review]
    action: core.echo
    with: {{decision: "${{steps.review.decision}}"}}
"#
    )
}

impl Harness {
    fn due_timer(&self) -> (TimerKey, DateTime<Utc>) {
        self.timers()
            .into_iter()
            .find(|(timer, _)| timer.purpose == TimerPurpose::ApprovalDue)
            .expect("an approval due timer was started")
    }

    fn fire(&mut self, (timer, fire_at): (TimerKey, DateTime<Utc>)) -> Vec<Event> {
        self.now = fire_at;
        self.input(InputBody::TimerFired { timer })
    }
}

#[test]
fn due_with_approve_or_reject_settles_the_approval_as_the_system() {
    for (on_timeout, decision) in [("approve", "approved"), ("reject", "rejected")] {
        let mut harness = Harness::start(&timed(on_timeout, ""), json!({}));
        let due = harness.due_timer();
        assert_eq!(due.1, harness.now + chrono::Duration::hours(1));
        let events = harness.fire(due);
        assert_eq!(
            Harness::types(&events),
            vec!["timer_fired", "step_succeeded", "step_scheduled"]
        );
        assert_eq!(
            harness.only_dispatch().arguments,
            json!({"decision": decision})
        );
        assert_eq!(harness.approval().outcome.as_ref().unwrap().user, "system");
        harness.assert_replays();
    }
}

#[test]
fn due_with_fail_fails_the_step_with_code_timeout() {
    let mut harness = Harness::start(&timed("fail", ""), json!({}));
    let due = harness.due_timer();
    let events = harness.fire(due);
    assert_eq!(
        Harness::types(&events),
        vec!["timer_fired", "step_failed", "instance_failed"]
    );
    assert_eq!(harness.state.error().unwrap().code, "timeout");
    assert_eq!(harness.approval().status, ApprovalStatus::Failed);
    let late = harness.decide("ann", Verdict::Approve);
    assert!(matches!(late, Err(StepError::Rejected { .. })), "{late:?}");
    harness.assert_replays();
}

#[test]
fn a_decision_cancels_the_due_timer_and_a_stale_due_changes_nothing() {
    let mut harness = Harness::start(&timed("fail", ""), json!({}));
    let due = harness.due_timer();
    harness.decide("ann", Verdict::Approve).unwrap();
    assert!(harness.last.contains(&Command::CancelTimer {
        timer: due.0.clone()
    }));
    assert!(harness.fire(due).is_empty());
    harness.assert_replays();
}

#[test]
fn escalation_runs_through_a_two_level_chain_then_fails() {
    let chain = "escalate_to: [{users: [lead]}, {groups: [directors], due: 2h}]";
    let mut harness = Harness::start(&timed("escalate", chain), json!({}));
    let start = harness.now;
    let events = harness.fire(harness.due_timer());
    assert_eq!(
        Harness::types(&events),
        vec!["timer_fired", "approval_escalated"]
    );
    assert_eq!(harness.approval().users, vec!["lead".to_owned()]);
    assert_eq!(harness.approval().level, 1);
    // Level 1 has no due of its own: the approval's 1h applies again.
    let level_one_due = harness.due_timer();
    assert_eq!(level_one_due.1, start + chrono::Duration::hours(2));
    let former = harness.decide("ann", Verdict::Approve);
    assert!(
        matches!(former, Err(StepError::Forbidden { .. })),
        "{former:?}"
    );

    let events = harness.fire(level_one_due);
    assert_eq!(
        Harness::types(&events),
        vec!["timer_fired", "approval_escalated"]
    );
    assert_eq!(harness.approval().groups, vec!["directors".to_owned()]);
    let level_two_due = harness.due_timer();
    assert_eq!(level_two_due.1, start + chrono::Duration::hours(4));

    let events = harness.fire(level_two_due);
    assert_eq!(
        Harness::types(&events),
        vec!["timer_fired", "step_failed", "instance_failed"]
    );
    assert!(
        harness
            .state
            .error()
            .unwrap()
            .message
            .contains("last escalation level")
    );
    harness.assert_replays();
}

#[test]
fn an_escalated_approval_is_decided_by_the_next_level() {
    let mut harness = Harness::start(
        &timed("escalate", "escalate_to: {groups: [directors]}"),
        json!({}),
    );
    harness.fire(harness.due_timer());
    let events = harness
        .try_input_as(
            "dora",
            decide_with("dora", &["directors"], Verdict::Approve, Value::Null),
        )
        .unwrap();
    assert_eq!(
        Harness::types(&events),
        vec!["approval_decided", "step_succeeded", "step_scheduled"]
    );
    harness.assert_replays();
}

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
