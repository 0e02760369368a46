//! Recorded histories of representative instances, replayed to their recorded final state.
//!
//! Each case drives the machine through a script of inputs (as a runtime, an operator,
//! an approver or a sender would) and is committed as
//! `engine/core/tests/histories/<name>.json`: `about` (what it shows), `definition` (the
//! YAML it ran against), `input` (the start input), `history` (the recorded, hash-chained
//! events) and `final_state`. The test checks, against the committed file, that:
//! - the history's hash chain verifies and its format version is known;
//! - replaying the history gives exactly the recorded final state (a changed transition
//!   fails here);
//! - driving the script again records exactly the same history (a changed derivation or
//!   a changed reading of an input fails here).
//!
//! `GRIDFLOW_RECORD=1 cargo test -p gridflow-core histories` writes the files instead;
//! review their diff before committing it.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::*;
use crate::history::{GENESIS_HASH, HISTORY_VERSION, RecordedEvent, record_chain, verify_chain};

/// One representative instance.
pub(super) struct Case {
    pub(super) name: &'static str,
    about: &'static str,
    definition: &'static str,
    input: fn() -> Value,
    script: fn(&mut Harness),
}

/// The committed form of a case.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Recorded {
    about: String,
    definition: String,
    input: Value,
    history: Vec<RecordedEvent>,
    final_state: Value,
}

pub(super) const CASES: &[Case] = &[
    Case {
        name: "diamond",
        about: "a → (b, c) → d → e: c's `when` is false, so c is skipped and d joins on b alone",
        definition: r#"
id: diamond
steps:
  - id: a
    action: core.noop
  - id: b
    needs: [a]
    when: "${input.run_b}"
    action: core.echo
    with: {from: "${steps.a.output}"}
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
output: {b: "${steps.b.output}", c: "${steps.c.status}"}
"#,
        input: || json!({"run_b": true, "run_c": false}),
        script: drain,
    },
    Case {
        name: "fan_out",
        about: "a fan-out over three assets, two at a time, then a step that reads its outputs",
        definition: r#"
id: fan-out
steps:
  - id: deliver
    for_each: "${input.assets}"
    concurrency: 2
    action: core.echo
    with: {asset: "${item}"}
  - id: report
    needs: [deliver]
    action: core.echo
    with: {delivered: "${steps.deliver.output}"}
"#,
        input: || json!({"assets": ["a1", "a2", "a3"]}),
        script: drain,
    },
    Case {
        name: "retries",
        about: "an action that fails twice with a retryable error, waits for each backoff timer, then succeeds",
        definition: r#"
id: retry
steps:
  - id: flaky
    action: core.fail_until
    with: {attempts: 3}
    timeout: 30s
    retry: {max_attempts: 3, initial_interval: 2s, max_interval: 1m, multiplier: 2.0, non_retryable: [not_found]}
"#,
        input: || json!({}),
        script: |harness| {
            for _ in 0..2 {
                let attempt = harness.only_dispatch();
                harness.fail(&attempt.work, "unavailable", true);
                fire_first_timer(harness);
            }
            drain(harness);
        },
    },
    Case {
        name: "compensation",
        about: "a saga whose last step fails: the compensations run latest completion first; the first is retried once",
        definition: r#"
id: saga
steps:
  - id: reserve
    action: core.echo
    with: {id: r1}
    compensate: {action: core.echo, with: {undo: "${output.id}"}}
  - id: share
    needs: [reserve]
    for_each: [s1, s2]
    action: core.echo
    with: {id: "${item}"}
    retry: {max_attempts: 2, initial_interval: 5s}
    compensate: {action: core.echo, with: {revoke: "${output.id}"}}
  - id: publish
    needs: [share]
    action: core.fail
    retry: {max_attempts: 1}
"#,
        input: || json!({}),
        script: |harness| {
            let reserve = harness.only_dispatch();
            harness.succeed(&reserve.work, json!({"id": "r1"}));
            let shares = harness.dispatched();
            harness.succeed(&shares[1].work, json!({"id": "s2"}));
            harness.succeed(&shares[0].work, json!({"id": "s1"}));
            let publish = harness.only_dispatch();
            harness.fail(&publish.work, "injected", false);
            let first = harness.only_dispatch();
            harness.fail(&first.work, "unavailable", true);
            fire_first_timer(harness);
            drain(harness);
        },
    },
    Case {
        name: "approval_escalation",
        about: "an approval not decided by its due escalates to the next level, whose user approves; the next step reads the decision",
        definition: r#"
id: timed
steps:
  - id: review
    approval:
      title: "review ${input.partner}"
      users: [ann]
      due: 1h
      on_timeout: escalate
      escalate_to: [{users: [lead]}, {groups: [directors], due: 2h}]
  - id: after
    needs: [review]
    action: core.echo
    with: {decision: "${steps.review.decision}"}
"#,
        input: || json!({"partner": "acme"}),
        script: |harness| {
            fire_first_timer(harness);
            harness.advance(std::time::Duration::from_secs(600));
            let decision = InputBody::Decide {
                step: StepId::from("review"),
                attempt: 1,
                item: None,
                user: "lead".to_owned(),
                groups: Vec::new(),
                decision: Verdict::Approve,
                comment: Some("fine".to_owned()),
                data: Value::Null,
            };
            harness
                .try_input_as("lead", decision)
                .expect("the escalated level decides");
            drain(harness);
        },
    },
    Case {
        name: "early_signal",
        about: "a signal sent before its wait step is reached is kept, then consumed when the step becomes active",
        definition: r#"
id: wait
steps:
  - id: work
    action: core.noop
  - id: ack
    needs: [work]
    wait: {signal: partner_acknowledged, timeout: 1d, on_timeout: continue}
  - id: after
    needs: [ack]
    action: core.echo
    with: {ack: "${steps.ack.output}"}
"#,
        input: || json!({"order": 7}),
        script: |harness| {
            let work = harness.only_dispatch();
            let signal = InputBody::Signal {
                name: "partner_acknowledged".to_owned(),
                payload: json!({"order": 7}),
                correlated: false,
            };
            harness
                .try_input_as("partner", signal)
                .expect("a running instance keeps a signal");
            harness.succeed(&work.work, json!({}));
            drain(harness);
        },
    },
    Case {
        name: "cancel",
        about: "an operator cancels while one step waits for its retry and another sleeps; a late timer changes nothing",
        definition: r#"
id: parallel
steps:
  - id: work
    action: core.delay
    with: {ms: 100}
    retry: {max_attempts: 3, initial_interval: 1m}
  - id: nap
    sleep: 1h
"#,
        input: || json!({}),
        script: |harness| {
            let work = harness.only_dispatch();
            harness.fail(&work.work, "unavailable", true);
            let (retry_timer, _) = harness.timers().remove(0);
            harness.input(InputBody::Cancel {
                reason: Some("partner withdrew".to_owned()),
            });
            let late = harness.input(InputBody::TimerFired { timer: retry_timer });
            assert!(late.is_empty(), "a cancelled timer changes nothing");
        },
    },
    Case {
        name: "rerun",
        about: "a step fails the instance; an operator re-runs it with edited arguments, then re-runs the output alone with a new input",
        definition: r#"
id: rerun
steps:
  - id: prepare
    action: core.echo
    with: {name: "${input.name}"}
  - id: publish
    needs: [prepare]
    action: core.fail_until
    with: {attempts: 5}
    retry: {max_attempts: 1}
  - id: notify
    needs: [publish]
    action: core.echo
    with: {attempt: "${steps.publish.output.attempt}"}
output: {name: "${input.name}", attempt: "${steps.notify.output.attempt}"}
"#,
        input: || json!({"name": "ada"}),
        script: |harness| {
            let prepare = harness.only_dispatch();
            harness.succeed(&prepare.work, json!({"name": "ada"}));
            let publish = harness.only_dispatch();
            harness.fail(&publish.work, "injected", false);
            let arguments = [(StepId::from("publish"), json!({"attempts": 2}))].into();
            harness.input(InputBody::Rerun {
                from_step: Some(StepId::from("publish")),
                input: None,
                arguments,
            });
            let publish = harness.only_dispatch();
            harness.succeed(&publish.work, json!({"attempt": 2}));
            let notify = harness.only_dispatch();
            harness.succeed(&notify.work, json!({"attempt": 2}));
            harness.input(InputBody::Rerun {
                from_step: None,
                input: Some(json!({"name": "bea"})),
                arguments: Default::default(),
            });
        },
    },
    Case {
        name: "partner_fan_outs",
        about: "an approval and a wait fan out over two partners: each partner's approver decides its own item (one rejects), each partner's signal completes its own wait (the second partner's arrives first)",
        definition: r#"
id: partners
steps:
  - id: review
    for_each: "${input.partners}"
    approval:
      title: "Send to ${item.name} (#${index})?"
      users: ["${item.approver}"]
      due: 1d
  - id: ack
    needs: [review]
    for_each: "${input.partners}"
    wait: {signal: partner_ack, timeout: 7d, on_timeout: continue, correlate: "${event.partner == item.name}"}
  - id: report
    needs: [ack]
    action: core.echo
    with: {decision: "${steps.review.decision}", acks: "${steps.ack.output}"}
"#,
        input: || json!({"partners": [{"name": "acme", "approver": "ann"}, {"name": "bolt", "approver": "bob"}]}),
        script: |harness| {
            for (item, user, decision) in
                [(1, "bob", Verdict::Reject), (0, "ann", Verdict::Approve)]
            {
                let decide = InputBody::Decide {
                    step: StepId::from("review"),
                    attempt: 1,
                    item: Some(item),
                    user: user.to_owned(),
                    groups: Vec::new(),
                    decision,
                    comment: None,
                    data: Value::Null,
                };
                harness
                    .try_input_as(user, decide)
                    .expect("each partner's approver decides its item");
            }
            for partner in ["bolt", "acme"] {
                let signal = InputBody::Signal {
                    name: "partner_ack".to_owned(),
                    payload: json!({"partner": partner}),
                    correlated: true,
                };
                harness
                    .try_input_as(partner, signal)
                    .expect("a waiting item matches");
            }
            drain(harness);
        },
    },
    Case {
        name: "children",
        about: "a fan-out over two child workflows: the first child fails, its retry starts a new child, and the outputs come back in item order",
        definition: r#"
id: children
steps:
  - id: partners
    for_each: "${input.partners}"
    workflow: {id: partner-request, input: {partner: "${item}", position: "${index}"}}
    retry: {max_attempts: 2, initial_interval: 5s, jitter: false}
  - id: report
    needs: [partners]
    action: core.echo
    with: {acks: "${steps.partners.output}"}
"#,
        input: || json!({"partners": ["acme", "globex"]}),
        script: |harness| {
            let mut pending = harness.started_children();
            let mut failed_once = false;
            while !pending.is_empty() {
                let start = pending.remove(0);
                harness.child_started(&start, 2);
                if !failed_once {
                    failed_once = true;
                    harness.input(InputBody::ActionFailed {
                        work: start.work.clone(),
                        error: ErrorInfo {
                            code: "child_failed".into(),
                            message: "the partner refused".into(),
                            retryable: true,
                        },
                        retry_at: None,
                    });
                    fire_first_timer(harness);
                } else {
                    harness.input(InputBody::ActionSucceeded {
                        work: start.work.clone(),
                        output: json!({"ack": start.input["partner"]}),
                    });
                }
                pending.extend(harness.started_children());
            }
            drain(harness);
        },
    },
    Case {
        name: "bound_approval",
        about: "an approval bound to two artifacts (one bind per fan-out item): the request, each decision and each outcome record the item's artifact; one item is rejected, so only the other is approved for delivery",
        definition: r#"
id: bound
steps:
  - id: review
    for_each: "${input.artifacts}"
    approval: {title: "Send version ${item.version}?", users: [ann], bind: "${item}"}
  - id: deliver
    needs: [review]
    action: core.echo
    with: {content: "${input.artifacts}"}
"#,
        input: || {
            let artifact = |version: &str, digest: &str| {
                json!({"system": "otmm", "asset_id": "a-1", "version": version, "sha256": digest.repeat(64),
                       "size": 5, "content_type": "image/jpeg", "file_name": "a.jpg"})
            };
            json!({"artifacts": [artifact("1", "a"), artifact("2", "b")]})
        },
        script: |harness| {
            for (item, decision) in [(0, Verdict::Approve), (1, Verdict::Reject)] {
                let decide = InputBody::Decide {
                    step: StepId::from("review"),
                    attempt: 1,
                    item: Some(item),
                    user: "ann".to_owned(),
                    groups: Vec::new(),
                    decision,
                    comment: None,
                    data: Value::Null,
                };
                harness.try_input_as("ann", decide).expect("ann decides");
            }
            drain(harness);
        },
    },
];

/// Succeeds every dispatched unit, in dispatch order, until nothing is dispatched.
fn drain(harness: &mut Harness) {
    let mut queue: Vec<WorkKey> = harness.dispatched().into_iter().map(|d| d.work).collect();
    while !queue.is_empty() {
        let work = queue.remove(0);
        let output = json!({"step": work.step.as_str(), "item": work.item});
        harness.succeed(&work, output);
        queue.extend(harness.dispatched().into_iter().map(|d| d.work));
    }
}

/// Moves time to the first timer the last input started and fires it.
fn fire_first_timer(harness: &mut Harness) {
    let (timer, fire_at) = harness.timers().remove(0);
    harness.now = fire_at;
    harness.input(InputBody::TimerFired { timer });
}

fn directory() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/histories")
}

/// Runs the case's script and returns what it recorded.
pub(super) fn run(case: &Case) -> Recorded {
    let mut harness = Harness::start(case.definition, (case.input)());
    (case.script)(&mut harness);
    let history = record_chain(&harness.state.id, 0, GENESIS_HASH, &harness.history);
    Recorded {
        about: case.about.to_owned(),
        definition: case.definition.to_owned(),
        input: (case.input)(),
        history,
        final_state: serde_json::to_value(&harness.state).expect("a state serializes"),
    }
}

/// The committed recording of `case`.
pub(super) fn committed(case: &Case) -> Recorded {
    let path = directory().join(format!("{}.json", case.name));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "{}: {error} (record with GRIDFLOW_RECORD=1)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Replays a committed history against its own definition.
pub(super) fn replayed(recorded: &Recorded) -> Value {
    let definition = definition(&recorded.definition);
    let instance = InstanceId::from("i-1");
    let state = replay(&instance, &recorded.history, &definition, None)
        .unwrap_or_else(|error| panic!("the history replays: {error}"));
    serde_json::to_value(&state).expect("a state serializes")
}

#[test]
fn recorded_histories_replay_to_their_recorded_final_state() {
    if std::env::var_os("GRIDFLOW_RECORD").is_some_and(|value| value == "1") {
        std::fs::create_dir_all(directory()).unwrap();
        for case in CASES {
            let text = serde_json::to_string_pretty(&run(case)).unwrap() + "\n";
            std::fs::write(directory().join(format!("{}.json", case.name)), text).unwrap();
        }
    }
    for case in CASES {
        let recorded = committed(case);
        assert_eq!(
            recorded.definition, case.definition,
            "{}: definition",
            case.name
        );
        verify_chain(&recorded.history).unwrap_or_else(|error| panic!("{}: {error:?}", case.name));
        assert_eq!(
            crate::replay::history_version(&recorded.history),
            Some(HISTORY_VERSION),
            "{}: history version",
            case.name
        );
        assert_eq!(
            replayed(&recorded),
            recorded.final_state,
            "{}: replaying the recorded history no longer reaches the recorded final state",
            case.name
        );
        let again = run(case);
        assert_eq!(
            again.history, recorded.history,
            "{}: driving the recorded inputs again records a different history",
            case.name
        );
    }
}

/// `instance_started` as recorded before histories carried a format version (copied from
/// an audit export of that time, with its stored hash).
const UNVERSIONED_START: &str = r#"{"actor":"admin","at":"2026-12-07T04:24:53.457092Z","data":{"definition":"hello","input":{"friends":["Grace"],"name":"Ada"},"version":1},"hash":"b218a2d3bc5177f2c8c0c93f850fc94c10128fb98cc74ab33bb79c3c2f8d64a4","instance_id":"01a24ebf-5bd0-7260-8199-fee08dff2113","prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","seq":1,"type":"instance_started"}"#;

#[test]
fn a_history_recorded_before_versions_still_verifies_and_replays_as_version_1() {
    let recorded: RecordedEvent = serde_json::from_str(UNVERSIONED_START).unwrap();
    // The hash covers the data as stored, so the new field changes nothing for it.
    assert_eq!(recorded.computed_hash(), recorded.hash);
    verify_chain(std::slice::from_ref(&recorded)).unwrap();
    let history = vec![recorded];
    assert_eq!(crate::replay::history_version(&history), Some(1));
    let definition = definition("id: hello\nsteps:\n  - id: greet\n    action: core.noop\n");
    let state = replay(&history[0].instance_id, &history, &definition, None).unwrap();
    assert_eq!(state.history_version, 1);
    assert_eq!(state.phase, Phase::Running);

    // A new history records the current version in its first event's data.
    let new = run(&CASES[0]);
    assert_eq!(
        new.history[0].data["history_version"],
        json!(HISTORY_VERSION)
    );
}

#[test]
fn a_history_of_an_unknown_version_is_refused() {
    let mut recorded = committed(&CASES[0]);
    recorded.history[0].data["history_version"] = json!(HISTORY_VERSION + 1);
    let definition = definition(&recorded.definition);
    let error = replay(
        &InstanceId::from("i-1"),
        &recorded.history,
        &definition,
        None,
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("history format version 2 is unknown"),
        "{error}"
    );
}
