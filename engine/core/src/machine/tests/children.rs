//! Workflow steps: a child per unit, its start and end reported as the unit's, retries with
//! a new child, fan-out over children, cancelling children, and a child's own start.

use super::*;
use crate::command::ChildStart;
use crate::event::ParentRef;

const ONE_CHILD: &str = r#"
id: parent
steps:
  - id: sub
    workflow: {id: child, input: {partner: "${input.partner}"}}
    retry: {max_attempts: 2, initial_interval: 1s, jitter: false}
  - id: after
    needs: [sub]
    action: core.echo
    with: {got: "${steps.sub.output.ack}"}
"#;

const FAN_OUT: &str = r#"
id: parent
steps:
  - id: partners
    for_each: "${input.partners}"
    concurrency: 2
    workflow: {id: child, version: 3, input: {partner: "${item}", position: "${index}"}}
"#;

impl Harness {
    /// Children started by the last input, in order.
    pub(super) fn started_children(&self) -> Vec<ChildStart> {
        self.last
            .iter()
            .filter_map(|command| match command {
                Command::StartChild(start) => Some(start.clone()),
                Command::Dispatch(_)
                | Command::AbandonWork { .. }
                | Command::StartTimer { .. }
                | Command::CancelTimer { .. }
                | Command::Finish { .. }
                | Command::CancelChild { .. } => None,
            })
            .collect()
    }

    /// Children cancelled by the last input.
    fn cancelled_children(&self) -> Vec<InstanceId> {
        self.last
            .iter()
            .filter_map(|command| match command {
                Command::CancelChild { child, .. } => Some(child.clone()),
                Command::Dispatch(_)
                | Command::AbandonWork { .. }
                | Command::StartTimer { .. }
                | Command::CancelTimer { .. }
                | Command::Finish { .. }
                | Command::StartChild(_) => None,
            })
            .collect()
    }

    /// The runtime reports that `start`'s child runs on version `version`.
    pub(super) fn child_started(&mut self, start: &ChildStart, version: u32) -> Vec<Event> {
        self.input(InputBody::ChildStarted {
            work: start.work.clone(),
            child: start.child.clone(),
            definition: start.definition.clone(),
            version,
        })
    }
}

#[test]
fn a_child_s_output_becomes_the_step_s_output() {
    let mut harness = Harness::start(ONE_CHILD, json!({"partner": "p-1"}));
    let start = harness
        .started_children()
        .pop()
        .expect("a child is started");
    assert_eq!(start.work, work("sub", None, 1));
    assert_eq!(start.definition, DefinitionId::from("child"));
    assert_eq!(start.version, None);
    assert_eq!(start.input, json!({"partner": "p-1"}));
    assert_eq!(start.idempotency_key, "i-1:sub:1");
    assert_eq!(start.child, child_id(&harness.state.id, &start.work));
    assert!(harness.dispatched().is_empty());

    let events = harness.child_started(&start, 4);
    assert_eq!(Harness::types(&events), vec!["child_started"]);
    assert_eq!(harness.step_status("sub"), StepStatus::Running);
    assert!(awaits_only_children(&harness.state, &harness.definition));
    // Reported again (a restart re-executes the start): nothing more is recorded.
    assert!(harness.child_started(&start, 4).is_empty());

    let events = harness.input(InputBody::ActionSucceeded {
        work: start.work.clone(),
        output: json!({"ack": true}),
    });
    assert_eq!(
        Harness::types(&events),
        vec!["step_succeeded", "step_scheduled"]
    );
    assert_eq!(harness.only_dispatch().arguments, json!({"got": true}));
    assert!(!awaits_only_children(&harness.state, &harness.definition));
    assert!(harness.cancelled_children().is_empty());
    harness.assert_replays();
}

#[test]
fn a_failed_child_is_retried_with_a_new_child_then_fails_the_step() {
    let mut harness = Harness::start(ONE_CHILD, json!({"partner": "p-1"}));
    let first = harness.started_children().pop().unwrap();
    harness.child_started(&first, 1);
    let failure = ErrorInfo {
        code: "child_failed".into(),
        message: "child failed".into(),
        retryable: true,
    };
    let events = harness.input(InputBody::ActionFailed {
        work: first.work.clone(),
        error: failure.clone(),
        retry_at: None,
    });
    assert_eq!(Harness::types(&events), vec!["step_retry_scheduled"]);
    let (timer, _) = harness.timers().pop().unwrap();
    harness.advance(Duration::from_secs(1));
    harness.input(InputBody::TimerFired { timer });
    let second = harness.started_children().pop().expect("a new child");
    assert_eq!(second.work, work("sub", None, 2));
    assert_ne!(second.child, first.child);

    // The first child's late end is stale.
    assert!(
        harness
            .input(InputBody::ActionSucceeded {
                work: first.work.clone(),
                output: json!({}),
            })
            .is_empty()
    );
    harness.child_started(&second, 1);
    let events = harness.input(InputBody::ActionFailed {
        work: second.work.clone(),
        error: failure,
        retry_at: None,
    });
    assert_eq!(
        Harness::types(&events),
        vec!["step_failed", "instance_failed"]
    );
    assert_eq!(harness.state.status(), InstanceStatus::Failed);
    // The step failed by its own child's end: that child is not cancelled.
    assert!(harness.cancelled_children().is_empty());
    harness.assert_replays();
}

#[test]
fn a_fan_out_starts_one_child_per_item_and_keeps_their_outputs_in_order() {
    let partners = json!(["a", "b", "c"]);
    let mut harness = Harness::start(FAN_OUT, json!({"partners": partners}));
    let mut waiting: Vec<ChildStart> = harness.started_children();
    assert_eq!(waiting.len(), 2, "concurrency 2");
    let mut seen = Vec::new();
    while let Some(start) = waiting.pop() {
        let index = start.work.item.unwrap();
        assert_eq!(
            start.input,
            json!({"partner": partners[index as usize], "position": index})
        );
        assert_eq!(start.version, Some(3));
        seen.push(start.child.clone());
        harness.child_started(&start, 3);
        harness.input(InputBody::ActionSucceeded {
            work: start.work.clone(),
            output: json!({"partner": partners[index as usize]}),
        });
        waiting.extend(harness.started_children());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3);
    assert_eq!(harness.state.status(), InstanceStatus::Completed);
    assert_eq!(
        harness.state.steps[&StepId::from("partners")].output(),
        Some(&json!([{"partner": "a"}, {"partner": "b"}, {"partner": "c"}]))
    );
    harness.assert_replays();
}

#[test]
fn cancelling_the_parent_cancels_its_running_children() {
    let mut harness = Harness::start(FAN_OUT, json!({"partners": ["a", "b", "c"]}));
    let started = harness.started_children();
    harness.child_started(&started[0], 3);
    let events = harness.input(InputBody::Cancel { reason: None });
    assert_eq!(Harness::types(&events), vec!["instance_cancelled"]);
    let mut cancelled = harness.cancelled_children();
    cancelled.sort();
    let mut expected: Vec<InstanceId> = started.iter().map(|start| start.child.clone()).collect();
    expected.sort();
    assert_eq!(
        cancelled, expected,
        "both the running and the scheduled child"
    );
    harness.assert_replays();
}

#[test]
fn a_failed_item_cancels_its_sibling_children() {
    let mut harness = Harness::start(FAN_OUT, json!({"partners": ["a", "b"]}));
    let started = harness.started_children();
    for start in &started {
        harness.child_started(start, 3);
    }
    harness.input(InputBody::ActionFailed {
        work: started[0].work.clone(),
        error: ErrorInfo::permanent("invalid_input", "bad input"),
        retry_at: None,
    });
    assert_eq!(harness.cancelled_children(), vec![started[1].child.clone()]);
    assert_eq!(harness.state.status(), InstanceStatus::Failed);
    harness.assert_replays();
}

#[test]
fn a_child_records_its_parent_when_it_starts() {
    let child = definition("id: child\nsteps:\n  - id: only\n    action: core.noop\n");
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap();
    let mut harness = Harness {
        state: InstanceState::new(InstanceId::from("c-1"), child.id.clone(), now),
        definition: child,
        now,
        history: Vec::new(),
        last: Vec::new(),
    };
    let parent = ParentRef {
        instance_id: InstanceId::from("i-1"),
        step: StepId::from("sub"),
        item: Some(2),
        attempt: 1,
        iteration: None,
    };
    let events = harness.input(InputBody::StartChild {
        version: 1,
        input: json!({}),
        parent: parent.clone(),
    });
    assert_eq!(events[0].body.type_and_data().1["parent"]["step"], "sub");
    assert_eq!(harness.state.parent, Some(parent));
    harness.assert_replays();
}

#[test]
fn child_ids_are_derived_from_the_parent_and_the_unit() {
    let parent = InstanceId::from("019af000-0000-7000-8000-000000000001");
    let one = child_id(&parent, &work("sub", Some(1), 1));
    assert_eq!(one, child_id(&parent, &work("sub", Some(1), 1)));
    assert_ne!(one, child_id(&parent, &work("sub", Some(1), 2)));
    assert_ne!(one, child_id(&parent, &work("sub", Some(2), 1)));
    assert_ne!(one, child_id(&parent, &work("sub", None, 1)));
    assert_eq!(one.as_str().len(), 36);
    assert!(one.as_str().starts_with("019af000-0000-8"), "{one}");
}

#[test]
fn a_failed_child_may_continue_and_a_succeeded_one_is_compensated() {
    let yaml = r#"
id: parent
steps:
  - id: optional
    workflow: {id: child}
    retry: {max_attempts: 1}
    on_error: continue
  - id: booked
    workflow: {id: child}
    compensate: {action: core.echo, with: {undo: "${output.booking}"}}
  - id: last
    needs: [optional, booked]
    action: core.fail
    with: {message: "no"}
    retry: {max_attempts: 1}
"#;
    let mut harness = Harness::start(yaml, json!({}));
    let starts = harness.started_children();
    assert_eq!(starts.len(), 2);
    for start in &starts {
        harness.child_started(start, 1);
    }
    harness.input(InputBody::ActionFailed {
        work: starts[0].work.clone(),
        error: ErrorInfo {
            code: "child_failed".into(),
            message: "child failed".into(),
            retryable: true,
        },
        retry_at: None,
    });
    assert_eq!(harness.step_status("optional"), StepStatus::Failed);
    harness.input(InputBody::ActionSucceeded {
        work: starts[1].work.clone(),
        output: json!({"booking": "b-7"}),
    });
    let last = harness.only_dispatch();
    harness.fail(&last.work, "refused", false);
    let compensation = harness.only_dispatch();
    assert_eq!(
        compensation.work,
        WorkKey {
            compensation: true,
            ..work("booked", None, 1)
        }
    );
    assert_eq!(compensation.arguments, json!({"undo": "b-7"}));
    harness.assert_replays();
}

pub(super) const SCENARIOS: &[(&str, fn())] = &[
    (
        "a_child_s_output_becomes_the_step_s_output",
        a_child_s_output_becomes_the_step_s_output,
    ),
    (
        "a_failed_child_is_retried_with_a_new_child_then_fails_the_step",
        a_failed_child_is_retried_with_a_new_child_then_fails_the_step,
    ),
    (
        "a_fan_out_starts_one_child_per_item_and_keeps_their_outputs_in_order",
        a_fan_out_starts_one_child_per_item_and_keeps_their_outputs_in_order,
    ),
    (
        "cancelling_the_parent_cancels_its_running_children",
        cancelling_the_parent_cancels_its_running_children,
    ),
    (
        "a_failed_item_cancels_its_sibling_children",
        a_failed_item_cancels_its_sibling_children,
    ),
    (
        "a_failed_child_may_continue_and_a_succeeded_one_is_compensated",
        a_failed_child_may_continue_and_a_succeeded_one_is_compensated,
    ),
    (
        "a_child_records_its_parent_when_it_starts",
        a_child_records_its_parent_when_it_starts,
    ),
];
