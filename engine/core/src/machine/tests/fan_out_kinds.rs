//! Fan-outs of approval and wait steps: one approval or wait per item, each with its own
//! assignees, timers and correlation; `${index}` on every fan-out; assignee expressions.

use super::*;

const PARTNERS: &str = r#"
id: partners
steps:
  - id: review
    for_each: "${input.partners}"
    concurrency: 2
    approval:
      title: "Send to ${item.name} (#${index})?"
      users: ["${item.approver}"]
      groups: "${item.groups}"
      due: 1h
      on_timeout: escalate
      escalate_to: {users: [lead]}
      form: {type: object, properties: {partner: {enum: ["${item.name}"]}}}
  - id: ack
    needs: [review]
    for_each: "${input.partners}"
    wait: {signal: partner_ack, timeout: 1d, on_timeout: continue, correlate: "${event.partner == item.name}"}
  - id: report
    needs: [ack]
    for_each: "${input.partners}"
    action: core.echo
    with: {position: "${index}", partner: "${item.name}", decision: "${steps.review.decision}"}
"#;

fn partners() -> Value {
    json!({"partners": [
        {"name": "acme", "approver": "ann", "groups": []},
        {"name": "bolt", "approver": "bob", "groups": ["bolt-team"]},
        {"name": "core", "approver": "cid", "groups": null},
    ]})
}

fn decide_item(item: u32, user: &str, verdict: Verdict, data: Value) -> InputBody {
    InputBody::Decide {
        step: StepId::from("review"),
        attempt: 1,
        item: Some(item),
        user: user.to_owned(),
        groups: Vec::new(),
        decision: verdict,
        comment: Some(format!("{user} decided")),
        data,
    }
}

fn ack(partner: &str, correlated: bool) -> InputBody {
    InputBody::Signal {
        name: "partner_ack".to_owned(),
        payload: json!({"partner": partner}),
        correlated,
    }
}

impl Harness {
    fn item_approval(&self, item: u32) -> &ApprovalState {
        &self.state.item_approvals[&StepId::from("review")][&item]
    }
}

#[test]
fn each_partner_approves_its_own_item_and_a_rejection_rejects_that_item_only() {
    let mut harness = Harness::start(PARTNERS, partners());
    // Two items at once: two approvals, each its own title, assignees and due timer.
    assert_eq!(
        Harness::types(&harness.history),
        vec![
            "instance_started",
            "step_scheduled",
            "approval_requested",
            "approval_requested"
        ]
    );
    assert_eq!(harness.item_approval(0).title, "Send to acme (#0)?");
    assert_eq!(harness.item_approval(0).users, vec!["ann".to_owned()]);
    assert!(harness.item_approval(0).groups.is_empty());
    assert_eq!(
        harness.item_approval(1).groups,
        vec!["bolt-team".to_owned()]
    );
    let timers: Vec<TimerKey> = harness.timers().into_iter().map(|(key, _)| key).collect();
    assert_eq!(
        timers,
        vec![
            TimerKey::item_approval_due(&StepId::from("review"), 0, 1, 0),
            TimerKey::item_approval_due(&StepId::from("review"), 1, 1, 0),
        ]
    );
    assert_eq!(harness.step_status("review"), StepStatus::Waiting);
    assert_eq!(harness.state.status(), InstanceStatus::Waiting);

    // Another partner's approver may not decide this item; the form is the item's own.
    let refused = harness.try_input_as("bob", decide_item(0, "bob", Verdict::Approve, json!({})));
    assert!(
        matches!(refused, Err(StepError::Forbidden { .. })),
        "{refused:?}"
    );
    let refused = harness.try_input_as(
        "ann",
        decide_item(0, "ann", Verdict::Approve, json!({"partner": "bolt"})),
    );
    assert!(
        matches!(refused, Err(StepError::InvalidDecision { .. })),
        "{refused:?}"
    );
    let refused = harness.try_input_as("cid", decide_item(2, "cid", Verdict::Approve, json!({})));
    assert!(
        matches!(refused, Err(StepError::Rejected { .. })),
        "{refused:?}"
    );

    // Bob rejects his item: that item only; the freed slot requests the third item.
    let events = harness
        .try_input_as("bob", decide_item(1, "bob", Verdict::Reject, Value::Null))
        .unwrap();
    assert_eq!(
        Harness::types(&events),
        vec!["approval_decided", "step_succeeded", "approval_requested"]
    );
    let (_, data) = events[1].body.type_and_data();
    assert_eq!(data["item"], json!(1));
    assert_eq!(data["output"]["decision"], json!("rejected"));
    let (_, data) = events[2].body.type_and_data();
    assert_eq!(data["item"], json!(2));
    assert_eq!(harness.item_approval(1).status, ApprovalStatus::Rejected);
    assert_eq!(harness.item_approval(2).users, vec!["cid".to_owned()]);
    assert_eq!(
        harness.last,
        vec![
            Command::CancelTimer {
                timer: TimerKey::item_approval_due(&StepId::from("review"), 1, 1, 0)
            },
            Command::StartTimer {
                timer: TimerKey::item_approval_due(&StepId::from("review"), 2, 1, 0),
                fire_at: harness.now + chrono::Duration::hours(1),
            },
        ]
    );

    harness
        .try_input_as(
            "ann",
            decide_item(0, "ann", Verdict::Approve, json!({"partner": "acme"})),
        )
        .unwrap();
    let events = harness
        .try_input_as("cid", decide_item(2, "cid", Verdict::Approve, json!({})))
        .unwrap();
    assert_eq!(
        Harness::types(&events),
        vec![
            "approval_decided",
            "step_succeeded",
            "step_succeeded",
            "step_scheduled",
            "step_scheduled",
            "step_scheduled",
            "step_scheduled"
        ]
    );
    let (_, data) = events[2].body.type_and_data();
    assert_eq!(data.get("item"), None, "the step as a whole: {data}");
    let outcomes = harness.state.steps[&StepId::from("review")]
        .output()
        .unwrap()
        .clone();
    let decisions: Vec<&Value> = outcomes
        .as_array()
        .unwrap()
        .iter()
        .map(|outcome| &outcome["decision"])
        .collect();
    assert_eq!(decisions, vec!["approved", "rejected", "approved"]);
    assert_eq!(outcomes[0]["user"], json!("ann"));
    assert_eq!(outcomes[0]["data"], json!({"partner": "acme"}));
    // One rejected item: the step as a whole reads as rejected.
    let scope = scope(&harness.state, None, None);
    assert_eq!(
        crate::expr::evaluate("steps.review.decision", &scope),
        Ok(json!("rejected"))
    );
    assert_eq!(
        crate::expr::evaluate("steps.review.user", &scope),
        Ok(Value::Null)
    );
    harness.assert_replays();
}

#[test]
fn each_partners_signal_completes_its_own_wait_and_timeouts_are_per_item() {
    let mut harness = Harness::start(PARTNERS, partners());
    harness
        .try_input_as("ann", decide_item(0, "ann", Verdict::Approve, json!({})))
        .unwrap();
    harness
        .try_input_as("bob", decide_item(1, "bob", Verdict::Approve, json!({})))
        .unwrap();
    // A signal for bolt before the waits exist is kept for bolt's item.
    harness.input(ack("bolt", false));
    harness
        .try_input_as("cid", decide_item(2, "cid", Verdict::Approve, json!({})))
        .unwrap();
    let ack_items: Vec<u64> = harness
        .history
        .iter()
        .filter_map(|event| {
            let (kind, data) = event.body.type_and_data();
            (kind == "step_succeeded" && data["step"] == "ack")
                .then(|| data["item"].as_u64())
                .flatten()
        })
        .collect();
    assert_eq!(ack_items, vec![1], "bolt's item took bolt's signal");
    assert!(harness.state.signals.is_empty());
    let Some(StepState::Active {
        work: Work::FanOut { units, .. },
    }) = harness.state.steps.get(&StepId::from("ack"))
    else {
        panic!("ack fans out");
    };
    assert!(matches!(units[0], Unit::Wait { .. }) && matches!(units[2], Unit::Wait { .. }));
    assert!(matches!(units[1], Unit::Succeeded { .. }));

    // A correlated signal that no waiting item matches is refused; a second one for bolt
    // too (bolt's item took its own already); acme's completes acme's item only.
    assert!(matches!(
        harness.try_input(ack("zeta", true)),
        Err(StepError::Rejected { .. })
    ));
    assert!(matches!(
        harness.try_input(ack("bolt", true)),
        Err(StepError::Rejected { .. })
    ));
    let events = harness.input(ack("acme", true));
    assert_eq!(
        Harness::types(&events),
        vec!["signal_received", "step_succeeded"]
    );
    assert_eq!(events[1].body.type_and_data().1["item"], json!(0));

    // core's item times out and continues with a null payload.
    let timeout = TimerKey::item_wait_timeout(&StepId::from("ack"), 2, 1);
    harness.advance(Duration::from_secs(86_400));
    let events = harness.input(InputBody::TimerFired { timer: timeout });
    assert_eq!(
        Harness::types(&events)[..3],
        ["timer_fired", "step_succeeded", "step_succeeded"]
    );
    assert_eq!(
        harness.state.steps[&StepId::from("ack")].output(),
        Some(&json!([{"partner": "acme"}, {"partner": "bolt"}, null]))
    );
    let arguments: Vec<Value> = harness
        .dispatched()
        .into_iter()
        .map(|dispatch| dispatch.arguments)
        .collect();
    assert_eq!(
        arguments,
        vec![
            json!({"position": 0, "partner": "acme", "decision": "approved"}),
            json!({"position": 1, "partner": "bolt", "decision": "approved"}),
            json!({"position": 2, "partner": "core", "decision": "approved"}),
        ]
    );
    harness.assert_replays();
}

const ESCALATING: &str = r#"
id: escalating
steps:
  - id: review
    for_each: [acme, bolt]
    approval:
      title: "${item}"
      users: "${input.approvers[index]}"
      due: 1h
      on_timeout: escalate
      escalate_to: [{users: [lead], due: 2h}]
"#;

#[test]
fn an_item_escalates_delegates_and_fails_on_its_own_timers() {
    let mut harness = Harness::start(ESCALATING, json!({"approvers": [["ann"], ["bob", "bea"]]}));
    assert_eq!(harness.item_approval(1).users, vec!["bob", "bea"]);
    let step = StepId::from("review");
    harness.advance(Duration::from_secs(3600));
    let events = harness.input(InputBody::TimerFired {
        timer: TimerKey::item_approval_due(&step, 0, 1, 0),
    });
    assert_eq!(
        Harness::types(&events),
        vec!["timer_fired", "approval_escalated"]
    );
    assert_eq!(harness.item_approval(0).users, vec!["lead".to_owned()]);
    assert_eq!(harness.item_approval(1).level, 0, "the other item stays");
    assert_eq!(
        harness.timers(),
        vec![(
            TimerKey::item_approval_due(&step, 0, 1, 1),
            harness.now + chrono::Duration::hours(2)
        )]
    );
    let events = harness.input(InputBody::Delegate {
        step: step.clone(),
        attempt: 1,
        item: Some(0),
        from: "lead".to_owned(),
        groups: Vec::new(),
        to: "deputy".to_owned(),
    });
    assert_eq!(Harness::types(&events), vec!["approval_delegated"]);
    assert!(harness.item_approval(0).is_assignee("deputy", &[]));
    assert!(!harness.item_approval(1).is_assignee("deputy", &[]));

    // The stale level-0 timer of item 0 changes nothing; item 0's level-1 due fails it,
    // which fails the step and closes item 1's approval.
    assert!(
        harness
            .input(InputBody::TimerFired {
                timer: TimerKey::item_approval_due(&step, 0, 1, 0),
            })
            .is_empty()
    );
    harness.advance(Duration::from_secs(7200));
    let events = harness.input(InputBody::TimerFired {
        timer: TimerKey::item_approval_due(&step, 0, 1, 1),
    });
    assert_eq!(
        Harness::types(&events)[..3],
        ["timer_fired", "step_failed", "step_failed"]
    );
    assert_eq!(
        harness.state.error().map(|error| error.message.as_str()),
        Some(
            "approval \"review\" (item 0) was not decided by its due time at the last escalation level"
        )
    );
    assert_eq!(harness.item_approval(0).status, ApprovalStatus::Failed);
    assert_eq!(harness.item_approval(1).status, ApprovalStatus::Failed);
    assert_eq!(harness.state.status(), InstanceStatus::Failed);
    harness.assert_replays();
}

#[test]
fn assignee_expressions_work_without_for_each_and_an_item_without_assignees_fails() {
    const SOLO: &str = r#"
id: solo
steps:
  - id: review
    approval: {title: t, users: "${input.owners}", groups: ["${input.team}"]}
"#;
    let harness = Harness::start(SOLO, json!({"owners": ["ann", "bob"], "team": "brand"}));
    assert_eq!(harness.approval().users, vec!["ann", "bob"]);
    assert_eq!(harness.approval().groups, vec!["brand"]);

    let harness = Harness::start(ESCALATING, json!({"approvers": [["ann"], []]}));
    let failed = harness
        .history
        .iter()
        .find_map(|event| {
            let (kind, data) = event.body.type_and_data();
            (kind == "step_failed" && data["item"] == 1).then(|| data["error"]["message"].clone())
        })
        .expect("item 1 failed");
    assert!(
        failed.as_str().unwrap().contains("name no one"),
        "{failed:?}"
    );
    assert_eq!(harness.state.status(), InstanceStatus::Failed);
    harness.assert_replays();
}

/// This file's tests, for the transition coverage report.
pub(super) const SCENARIOS: &[(&str, fn())] = &[
    (
        "each_partner_approves_its_own_item_and_a_rejection_rejects_that_item_only",
        each_partner_approves_its_own_item_and_a_rejection_rejects_that_item_only,
    ),
    (
        "each_partners_signal_completes_its_own_wait_and_timeouts_are_per_item",
        each_partners_signal_completes_its_own_wait_and_timeouts_are_per_item,
    ),
    (
        "an_item_escalates_delegates_and_fails_on_its_own_timers",
        an_item_escalates_delegates_and_fails_on_its_own_timers,
    ),
    (
        "assignee_expressions_work_without_for_each_and_an_item_without_assignees_fails",
        assignee_expressions_work_without_for_each_and_an_item_without_assignees_fails,
    ),
];

const ACKS: &str = r#"
id: acks
steps:
  - id: ack
    for_each: "${input.partners}"
    wait: {signal: partner_ack, correlate: "${event.partner == item}"}
"#;

#[test]
fn each_waiting_item_of_a_wait_fan_out_is_in_the_signal_index_under_its_own_key() {
    let harness = Harness::start(ACKS, json!({"partners": ["acme", "bolt", "acme"]}));
    let waits =
        crate::machine::current_waits(&harness.state, &harness.definition, Budget::default());
    let keys: Vec<(String, String, Option<String>)> = waits
        .iter()
        .map(|wait| {
            assert_eq!(wait.step.as_str(), "ack");
            let key = wait
                .key
                .as_ref()
                .expect("the correlate has the indexed shape");
            assert_eq!(key.path, "partner");
            (
                wait.step.to_string(),
                wait.signal.clone(),
                Some(key.value.clone()),
            )
        })
        .collect();
    let key = |partner: &str| crate::expr::correlation_key(&json!(partner));
    assert_eq!(
        keys,
        vec![
            ("ack".to_owned(), "partner_ack".to_owned(), key("acme")),
            ("ack".to_owned(), "partner_ack".to_owned(), key("bolt")),
        ],
        "one entry per distinct key, in item order"
    );
}
