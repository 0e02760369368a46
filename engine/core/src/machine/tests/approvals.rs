//! Approval steps: quorum, who may decide, forms, delegation, due timers and escalation. The harness starts every instance as "alice".

use super::*;

pub(super) const REVIEW: &str = r#"
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
        item: None,
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

    pub(super) fn approval(&self) -> &ApprovalState {
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
        item: None,
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

/// This file's tests, for the transition coverage report.
pub(super) const SCENARIOS: &[(&str, fn())] = &[
    (
        "quorum_two_of_three_completes_on_the_second_approval_and_refuses_the_third",
        quorum_two_of_three_completes_on_the_second_approval_and_refuses_the_third,
    ),
    (
        "one_rejection_rejects_and_dependents_see_the_decision",
        one_rejection_rejects_and_dependents_see_the_decision,
    ),
    (
        "the_starter_may_not_approve_unless_the_definition_allows_it",
        the_starter_may_not_approve_unless_the_definition_allows_it,
    ),
    (
        "only_assignees_by_user_or_group_may_decide_and_only_once",
        only_assignees_by_user_or_group_may_decide_and_only_once,
    ),
    (
        "data_that_violates_the_form_is_refused_with_every_violation",
        data_that_violates_the_form_is_refused_with_every_violation,
    ),
    (
        "a_delegate_becomes_an_assignee_and_the_delegator_may_no_longer_decide",
        a_delegate_becomes_an_assignee_and_the_delegator_may_no_longer_decide,
    ),
    (
        "due_with_approve_or_reject_settles_the_approval_as_the_system",
        due_with_approve_or_reject_settles_the_approval_as_the_system,
    ),
    (
        "due_with_fail_fails_the_step_with_code_timeout",
        due_with_fail_fails_the_step_with_code_timeout,
    ),
    (
        "a_decision_cancels_the_due_timer_and_a_stale_due_changes_nothing",
        a_decision_cancels_the_due_timer_and_a_stale_due_changes_nothing,
    ),
    (
        "escalation_runs_through_a_two_level_chain_then_fails",
        escalation_runs_through_a_two_level_chain_then_fails,
    ),
    (
        "an_escalated_approval_is_decided_by_the_next_level",
        an_escalated_approval_is_decided_by_the_next_level,
    ),
];
