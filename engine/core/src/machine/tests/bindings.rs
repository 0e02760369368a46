//! Approvals bound to artifacts: the binding recorded at the request, the decision and the
//! outcome; the approved set every dispatch carries (and folds the same on replay); what a
//! rejection, a fan-out and an invalid binding do.

use super::*;
use crate::artifact::Artifact;

const BOUND: &str = r#"
id: bound
steps:
  - id: review
    approval: {title: "Send?", users: [ann], bind: "${input.artifacts}", due: 1h, on_timeout: approve}
  - id: deliver
    needs: [review]
    action: core.echo
    with: {content: "${input.artifacts}"}
"#;

fn artifact(version: &str, digest: char) -> Value {
    json!({"system": "otmm", "asset_id": "a-1", "version": version,
           "sha256": digest.to_string().repeat(64), "size": 5,
           "content_type": "image/jpeg", "file_name": "a.jpg"})
}

fn artifacts(value: Value) -> Vec<Artifact> {
    Artifact::read_binding(&value).unwrap()
}

fn decide(step: &str, item: Option<u32>, user: &str, verdict: Verdict) -> InputBody {
    InputBody::Decide {
        step: StepId::from(step),
        attempt: 1,
        item,
        user: user.to_owned(),
        groups: Vec::new(),
        decision: verdict,
        comment: None,
        data: Value::Null,
    }
}

fn recorded(event: &Event) -> Option<Vec<Artifact>> {
    if let EventBody::ApprovalRequested { artifacts, .. }
    | EventBody::ApprovalDecided { artifacts, .. } = &event.body
    {
        return artifacts.clone();
    }
    panic!("not an approval event: {event:?}")
}

fn binding_is_recorded_at_request_and_decision_and_approves_the_dispatch() {
    let bound = json!([artifact("1", 'a'), artifact("2", 'b')]);
    let mut harness = Harness::start(BOUND, json!({"artifacts": bound}));
    let request = harness.history.last().unwrap().clone();
    assert_eq!(recorded(&request), Some(artifacts(bound.clone())));
    let review = &harness.state.approvals[&StepId::from("review")];
    assert_eq!(review.artifacts, Some(artifacts(bound.clone())));

    let events = harness
        .try_input_as("ann", decide("review", None, "ann", Verdict::Approve))
        .unwrap();
    assert_eq!(
        Harness::types(&events),
        vec!["approval_decided", "step_succeeded", "step_scheduled"]
    );
    assert_eq!(recorded(&events[0]), Some(artifacts(bound.clone())));
    let EventBody::StepSucceeded { output, .. } = &events[1].body else {
        panic!("{events:?}")
    };
    assert_eq!(output["decision"], "approved");
    assert_eq!(output["artifacts"], bound);
    let deliver = harness.only_dispatch();
    assert_eq!(deliver.approved, Some(artifacts(bound)));
    assert_eq!(
        crate::artifact::approved(&harness.state),
        deliver.approved.unwrap()
    );
    harness.assert_replays();
}

fn a_rejected_approval_binds_nothing() {
    let unconditional = BOUND.replace("due: 1h, on_timeout: approve", "quorum: 1");
    let mut harness = Harness::start(&unconditional, json!({"artifacts": artifact("1", 'a')}));
    let events = harness
        .try_input_as("ann", decide("review", None, "ann", Verdict::Reject))
        .unwrap();
    assert_eq!(recorded(&events[0]), Some(artifacts(artifact("1", 'a'))));
    let EventBody::StepSucceeded { output, .. } = &events[1].body else {
        panic!("{events:?}")
    };
    assert_eq!(output["decision"], "rejected");
    assert_eq!(output["artifacts"], json!([artifact("1", 'a')]));
    // The step runs anyway (no `when`): it is told that nothing is approved.
    assert_eq!(harness.only_dispatch().approved, Some(Vec::new()));
    harness.assert_replays();
}

fn approved_by_timeout_binds_too_and_unbound_definitions_carry_nothing() {
    let mut harness = Harness::start(BOUND, json!({"artifacts": artifact("3", 'c')}));
    harness.advance(Duration::from_secs(3600));
    let timer = TimerKey::approval_due(&StepId::from("review"), 1, 0);
    harness.input(InputBody::TimerFired { timer });
    assert_eq!(
        harness.only_dispatch().approved,
        Some(artifacts(artifact("3", 'c')))
    );
    harness.assert_replays();

    let unbound = BOUND.replace(", bind: \"${input.artifacts}\"", "");
    let mut harness = Harness::start(&unbound, json!({"artifacts": artifact("3", 'c')}));
    let events = harness
        .try_input_as("ann", decide("review", None, "ann", Verdict::Approve))
        .unwrap();
    assert_eq!(recorded(&events[0]), None);
    let (_, data) = events[0].body.type_and_data();
    assert!(
        data.get("artifacts").is_none(),
        "no field without bind: {data}"
    );
    assert_eq!(harness.only_dispatch().approved, None);
}

/// The error of the first `step_failed` of step `review`.
fn failure(harness: &Harness) -> Option<ErrorInfo> {
    harness.history.iter().find_map(|event| {
        if let EventBody::StepFailed { step, error, .. } = &event.body
            && step.as_str() == "review"
        {
            return Some(error.clone());
        }
        None
    })
}

fn an_invalid_binding_fails_the_step_naming_the_path() {
    let mut bad = artifact("1", 'a');
    bad["sha256"] = json!("not-a-digest");
    let harness = Harness::start(BOUND, json!({"artifacts": [artifact("1", 'a'), bad]}));
    let failed = failure(&harness).expect("the approval step failed");
    assert_eq!(failed.code, "invalid_binding");
    assert!(!failed.retryable);
    assert_eq!(
        failed.message,
        "approval.bind[1].sha256: expected 64 lower-case hex digits, found \"not-a-digest\""
    );
    assert_eq!(harness.state.status(), InstanceStatus::Failed);
    harness.assert_replays();

    let harness = Harness::start(BOUND, json!({}));
    let failed = failure(&harness).expect("the approval step failed");
    assert_eq!(failed.code, "invalid_binding");
    assert!(failed.message.starts_with("approval.bind: "), "{failed:?}");
}

const PER_ITEM: &str = r#"
id: per-item
steps:
  - id: review
    for_each: "${input.artifacts}"
    approval: {title: "Send ${item.version}?", users: [ann], bind: "${item}"}
  - id: deliver
    needs: [review]
    join: all_done
    action: core.echo
"#;

fn fan_out_approvals_bind_per_item_and_only_approved_items_count() {
    let items = json!([artifact("1", 'a'), artifact("2", 'b')]);
    let mut harness = Harness::start(PER_ITEM, json!({"artifacts": items}));
    let bound: Vec<_> = harness.state.item_approvals[&StepId::from("review")]
        .values()
        .map(|approval| approval.artifacts.clone())
        .collect();
    assert_eq!(
        bound,
        vec![
            Some(artifacts(artifact("1", 'a'))),
            Some(artifacts(artifact("2", 'b')))
        ]
    );
    harness
        .try_input_as("ann", decide("review", Some(0), "ann", Verdict::Approve))
        .unwrap();
    let events = harness
        .try_input_as("ann", decide("review", Some(1), "ann", Verdict::Reject))
        .unwrap();
    assert_eq!(recorded(&events[0]), Some(artifacts(artifact("2", 'b'))));
    assert_eq!(
        harness.only_dispatch().approved,
        Some(artifacts(artifact("1", 'a'))),
        "the rejected item's artifact is not approved"
    );
    harness.assert_replays();
}

#[test]
fn binding_is_recorded_at_request_and_decision() {
    binding_is_recorded_at_request_and_decision_and_approves_the_dispatch();
}

#[test]
fn rejection_binds_nothing() {
    a_rejected_approval_binds_nothing();
}

#[test]
fn timeout_approval_binds_and_unbound_carries_nothing() {
    approved_by_timeout_binds_too_and_unbound_definitions_carry_nothing();
}

#[test]
fn invalid_binding_fails_the_step() {
    an_invalid_binding_fails_the_step_naming_the_path();
}

#[test]
fn fan_out_binds_per_item() {
    fan_out_approvals_bind_per_item_and_only_approved_items_count();
}

pub(super) const SCENARIOS: &[(&str, fn())] = &[
    (
        "binding_is_recorded_at_request_and_decision_and_approves_the_dispatch",
        binding_is_recorded_at_request_and_decision_and_approves_the_dispatch,
    ),
    (
        "a_rejected_approval_binds_nothing",
        a_rejected_approval_binds_nothing,
    ),
    (
        "approved_by_timeout_binds_too_and_unbound_definitions_carry_nothing",
        approved_by_timeout_binds_too_and_unbound_definitions_carry_nothing,
    ),
    (
        "an_invalid_binding_fails_the_step_naming_the_path",
        an_invalid_binding_fails_the_step_naming_the_path,
    ),
    (
        "fan_out_approvals_bind_per_item_and_only_approved_items_count",
        fan_out_approvals_bind_per_item_and_only_approved_items_count,
    ),
];
