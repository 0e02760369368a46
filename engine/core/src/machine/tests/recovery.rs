//! Recovery: an operator's re-run of a finished instance (from a step, or only its output;
//! with edited input and arguments) and migration to another definition version.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::machine::{RerunRefusal, migration_problems, rerun_plan};

const PUBLISH: &str = r#"
id: publish
input:
  type: object
  properties: {name: {type: string}}
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
  - id: audit
    needs: [prepare]
    action: core.noop
output: {name: "${input.name}", notified: "${steps.notify.output}"}
"#;

fn rerun(from_step: Option<&str>, input: Option<Value>, arguments: Value) -> InputBody {
    let arguments: BTreeMap<StepId, Value> = serde_json::from_value(arguments).unwrap();
    InputBody::Rerun {
        from_step: from_step.map(StepId::from),
        input,
        arguments,
    }
}

/// A run of PUBLISH up to its failure at `publish` (attempt 1); `audit` succeeded.
fn failed_at_publish() -> Harness {
    let mut harness = Harness::start(PUBLISH, json!({"name": "ada"}));
    let prepare = harness.only_dispatch();
    harness.succeed(&prepare.work, json!({"name": "ada"}));
    let dispatched = harness.dispatched();
    assert_eq!(dispatched.len(), 2, "{dispatched:?}");
    let audit = dispatched.iter().find(|d| d.work.step.as_str() == "audit");
    harness.succeed(&audit.unwrap().work, json!({}));
    harness.fail(&work("publish", None, 1), "injected", false);
    assert_eq!(harness.state.status(), InstanceStatus::Failed);
    harness
}

fn completed() -> Harness {
    let mut harness = failed_at_publish();
    harness.input(rerun(
        Some("publish"),
        None,
        json!({"publish": {"attempts": 2}}),
    ));
    harness.succeed(&work("publish", None, 2), json!({"attempt": 2}));
    harness.succeed(&work("notify", None, 1), json!({"attempt": 2}));
    assert_eq!(harness.state.status(), InstanceStatus::Completed);
    harness
}

#[test]
fn a_rerun_from_the_failed_step_runs_it_and_its_dependents_with_edited_arguments() {
    let mut harness = failed_at_publish();
    let events = harness
        .try_input_as(
            "olga",
            rerun(Some("publish"), None, json!({"publish": {"attempts": 2}})),
        )
        .expect("the re-run is accepted");
    assert_eq!(
        Harness::types(&events),
        vec!["instance_rerun", "step_scheduled"]
    );
    assert_eq!(events[0].actor, "olga");
    assert_eq!(
        events[0].body,
        EventBody::InstanceRerun {
            from_step: Some(StepId::from("publish")),
            input: None,
            arguments: BTreeMap::from([(StepId::from("publish"), json!({"attempts": 2}))]),
            steps_reset: vec![StepId::from("publish"), StepId::from("notify")],
        }
    );
    let dispatch = harness.only_dispatch();
    assert_eq!(dispatch.work, work("publish", None, 2));
    assert_eq!(dispatch.arguments, json!({"attempts": 2}));
    assert_eq!(dispatch.idempotency_key, "i-1:publish:2");
    assert_eq!(harness.step_status("prepare"), StepStatus::Succeeded);
    assert_eq!(harness.step_status("audit"), StepStatus::Succeeded);
    assert_eq!(harness.step_status("notify"), StepStatus::Pending);

    harness.succeed(&dispatch.work, json!({"attempt": 2}));
    let notify = harness.only_dispatch();
    assert_eq!(notify.arguments, json!({"attempt": 2}));
    let events = harness.succeed(&notify.work, json!({"attempt": 2}));
    assert_eq!(
        Harness::types(&events).last().map(String::as_str),
        Some("instance_completed")
    );
    assert_eq!(
        harness.state.output(),
        Some(&json!({"name": "ada", "notified": {"attempt": 2}}))
    );
    // Upstream kept its single run.
    assert_eq!(harness.state.steps[&StepId::from("prepare")].attempts(), 1);
    harness.assert_replays();
}

#[test]
fn a_rerun_without_a_step_evaluates_the_output_again_with_the_new_input() {
    let mut harness = completed();
    let events = harness.input(rerun(None, Some(json!({"name": "bea"})), json!({})));
    assert_eq!(
        Harness::types(&events),
        vec!["instance_rerun", "instance_completed"]
    );
    assert_eq!(
        harness.state.output(),
        Some(&json!({"name": "bea", "notified": {"attempt": 2}}))
    );
    assert_eq!(harness.state.input, json!({"name": "bea"}));
    assert!(harness.dispatched().is_empty());
    harness.assert_replays();
}

#[test]
fn attempt_numbers_continue_across_reruns_and_upstream_steps_keep_their_outputs() {
    let mut harness = completed();
    harness.input(rerun(
        Some("notify"),
        None,
        json!({"notify": {"attempt": "x"}}),
    ));
    let notify = harness.only_dispatch();
    assert_eq!(notify.work, work("notify", None, 2));
    assert_eq!(notify.arguments, json!({"attempt": "x"}));
    harness.succeed(&notify.work, json!({"attempt": "x"}));
    harness.input(rerun(Some("notify"), None, json!({})));
    let notify = harness.only_dispatch();
    assert_eq!(notify.work, work("notify", None, 3));
    assert_eq!(
        notify.arguments,
        json!({"attempt": 2}),
        "without new arguments the step renders its with again"
    );
    harness.succeed(&notify.work, json!({"attempt": 2}));
    assert_eq!(harness.state.status(), InstanceStatus::Completed);
    assert_eq!(harness.state.steps[&StepId::from("publish")].attempts(), 2);
    harness.assert_replays();
}

#[test]
fn a_rerun_names_unknown_steps_and_arguments_that_would_not_be_used() {
    let harness = failed_at_publish();
    let arguments: BTreeMap<StepId, Value> = serde_json::from_value(json!({
        "nope": {},
        "prepare": {"name": "x"},
        "publish": [1],
    }))
    .unwrap();
    let refusal = rerun_plan(
        &harness.state,
        &harness.definition,
        Some(&StepId::from("publsh")),
        &arguments,
    )
    .unwrap_err();
    let RerunRefusal::Invalid(problems) = refusal else {
        panic!("expected invalid, got {refusal:?}");
    };
    let paths: Vec<&str> = problems.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "from_step",
            "arguments.nope",
            "arguments.prepare",
            "arguments.publish"
        ]
    );
    assert!(problems[0].1.contains("no step \"publsh\""), "{problems:?}");
    assert!(problems[1].1.contains("no step \"nope\""), "{problems:?}");
    let arguments = BTreeMap::from([(StepId::from("prepare"), json!({}))]);
    let refusal = rerun_plan(
        &harness.state,
        &harness.definition,
        Some(&StepId::from("publish")),
        &arguments,
    )
    .unwrap_err();
    assert!(
        matches!(&refusal, RerunRefusal::Invalid(problems) if problems[0].1.contains("does not run again")),
        "{refusal:?}"
    );
}

#[test]
fn a_rerun_that_leaves_a_failed_step_behind_or_of_a_running_or_cancelled_instance_is_refused() {
    let mut harness = failed_at_publish();
    for request in [
        rerun(Some("notify"), None, json!({})),
        rerun(None, None, json!({})),
    ] {
        let refused = harness.try_input(request);
        assert!(
            matches!(&refused, Err(StepError::Rejected { message, .. }) if message.contains("step \"publish\" failed")),
            "{refused:?}"
        );
    }
    harness.input(rerun(Some("prepare"), None, json!({})));
    assert_eq!(harness.state.status(), InstanceStatus::Running);
    let refused = harness.try_input(rerun(Some("prepare"), None, json!({})));
    assert!(
        matches!(&refused, Err(StepError::Rejected { message, .. }) if message.contains("this one is running")),
        "{refused:?}"
    );
    harness.input(InputBody::Cancel { reason: None });
    let refused = harness.try_input(rerun(Some("prepare"), None, json!({})));
    assert!(
        matches!(&refused, Err(StepError::Rejected { message, .. }) if message.contains("cancelled")),
        "{refused:?}"
    );
    harness.assert_replays();
}

const V1: &str = r#"
id: flow
steps:
  - id: a
    action: core.echo
    with: {v: 1}
  - id: x
    needs: [a]
    when: "${input.path == 'x'}"
    action: core.echo
  - id: gate
    needs: [a]
    wait: {signal: go}
  - id: b
    needs: [gate, x]
    action: core.echo
    with: {v: 1}
"#;

const V2: &str = r#"
id: flow
steps:
  - id: start
    action: core.echo
    with: {v: 2}
  - id: gate
    needs: [start]
    wait: {signal: go}
  - id: b
    needs: [gate]
    action: core.echo
    with: {v: 2}
  - id: c
    needs: [gate]
    action: core.echo
    with: {new: true}
output: {b: "${steps.b.output}", c: "${steps.c.output}"}
"#;

/// A V1 instance waiting at `gate`; `x` skipped unless `path` is `x`.
fn waiting_on_v1(path: &str) -> Harness {
    let mut harness = Harness::start(V1, json!({"path": path}));
    let a = harness.only_dispatch();
    harness.succeed(&a.work, json!({"v": 1}));
    if path == "x" {
        let x = harness.only_dispatch();
        harness.succeed(&x.work, json!({}));
    }
    assert_eq!(harness.state.status(), InstanceStatus::Waiting);
    harness
}

fn mapping(pairs: &[(&str, &str)]) -> BTreeMap<StepId, StepId> {
    pairs
        .iter()
        .map(|(old, new)| (StepId::from(*old), StepId::from(*new)))
        .collect()
}

fn migrate(to: &Arc<Definition>, mapping: BTreeMap<StepId, StepId>) -> InputBody {
    InputBody::Migrate {
        to_version: 2,
        to: to.clone(),
        mapping,
    }
}

#[test]
fn a_migrated_instance_continues_on_the_new_versions_steps_and_replays_across_the_switch() {
    let mut harness = waiting_on_v1("y");
    let v2 = Arc::new(definition(V2));
    let renamed = mapping(&[("a", "start")]);
    assert!(migration_problems(&harness.state, &harness.definition, &v2, 2, &renamed).is_empty());
    let v1 = std::mem::replace(&mut harness.definition, (*v2).clone());
    let input = Input {
        at: harness.now,
        actor: "olga".to_owned(),
        body: migrate(&v2, renamed.clone()),
    };
    let result = transition(
        harness.state.clone(),
        &input,
        &v1,
        crate::expr::Budget::DEFAULT,
    )
    .expect("the migration is accepted");
    assert_eq!(Harness::types(&result.events), vec!["instance_migrated"]);
    assert_eq!(
        result.events[0].body,
        EventBody::InstanceMigrated {
            from_version: 1,
            to_version: 2,
            mapping: renamed,
        }
    );
    harness.state = result.state;
    harness.history.extend(result.events);
    assert_eq!(harness.state.version, 2);
    assert_eq!(harness.step_status("start"), StepStatus::Succeeded);
    assert_eq!(harness.step_status("gate"), StepStatus::Waiting);
    assert_eq!(harness.step_status("c"), StepStatus::Pending);
    assert!(!harness.state.steps.contains_key(&StepId::from("x")));
    assert!(!harness.state.steps.contains_key(&StepId::from("a")));

    harness.input(InputBody::Signal {
        name: "go".to_owned(),
        payload: json!({}),
        correlated: false,
    });
    let dispatched = harness.dispatched();
    let steps: Vec<&str> = dispatched.iter().map(|d| d.work.step.as_str()).collect();
    assert_eq!(steps, ["b", "c"]);
    assert_eq!(dispatched[0].arguments, json!({"v": 2}));
    harness.succeed(&work("b", None, 1), json!({"v": 2}));
    harness.succeed(&work("c", None, 1), json!({"new": true}));
    assert_eq!(
        harness.state.output(),
        Some(&json!({"b": {"v": 2}, "c": {"new": true}}))
    );

    let recorded = crate::history::record_chain(
        &harness.state.id,
        0,
        crate::history::GENESIS_HASH,
        &harness.history,
    );
    assert_eq!(crate::replay::versions(&recorded), [1, 2]);
    let versions = BTreeMap::from([(1, Arc::new(v1.clone())), (2, v2.clone())]);
    let replayed = replay(&harness.state.id, &recorded, &versions, None).unwrap();
    assert_eq!(replayed, harness.state);
    let single = replay(&harness.state.id, &recorded, &v1, None);
    assert!(
        single.is_err(),
        "one definition cannot fold a migrated history"
    );
    let missing = BTreeMap::from([(1, Arc::new(v1))]);
    assert!(matches!(
        replay(&harness.state.id, &recorded, &missing, None),
        Err(crate::replay::ReplayError::MissingVersion { version: 2, .. })
    ));
}

#[test]
fn migration_problems_name_missing_started_steps_kind_changes_and_renamed_active_steps() {
    let v2 = definition(V2);
    let harness = waiting_on_v1("x");
    let problems = migration_problems(
        &harness.state,
        &harness.definition,
        &v2,
        2,
        &mapping(&[("a", "start")]),
    );
    assert_eq!(
        problems,
        ["step \"x\" is succeeded and version 2 has no step \"x\""]
    );

    let harness = waiting_on_v1("y");
    let problems = migration_problems(
        &harness.state,
        &harness.definition,
        &v2,
        2,
        &BTreeMap::new(),
    );
    assert_eq!(
        problems,
        ["step \"a\" is succeeded and version 2 has no step \"a\""]
    );

    let slept = definition(&V2.replace("wait: {signal: go}", "sleep: 1h"));
    let problems = migration_problems(
        &harness.state,
        &harness.definition,
        &slept,
        2,
        &mapping(&[("a", "start")]),
    );
    assert_eq!(
        problems,
        ["step \"gate\" is waiting: it is a wait step in version 1 and a sleep step in version 2"]
    );

    let renamed = definition(
        &V2.replace("id: gate", "id: gate2")
            .replace("[gate]", "[gate2]"),
    );
    let problems = migration_problems(
        &harness.state,
        &harness.definition,
        &renamed,
        2,
        &mapping(&[("a", "start"), ("gate", "gate2")]),
    );
    assert_eq!(
        problems,
        ["step \"gate\" is waiting: an active step cannot be renamed (to \"gate2\")"]
    );

    let mut finished = waiting_on_v1("y");
    finished.input(InputBody::Cancel { reason: None });
    let problems = migration_problems(
        &finished.state,
        &finished.definition,
        &v2,
        2,
        &mapping(&[("a", "start")]),
    );
    assert_eq!(
        problems,
        ["the instance is cancelled: only running or waiting instances move"]
    );
    let v2 = Arc::new(v2);
    let mut harness = waiting_on_v1("x");
    let refused = harness.try_input(migrate(&v2, mapping(&[("a", "start")])));
    assert!(
        matches!(&refused, Err(StepError::Rejected { message, .. }) if message.contains("no step \"x\"")),
        "{refused:?}"
    );
}

const PAGES: &str = r#"
id: pages
steps:
  - id: page
    action: core.echo
    with: {page: "${iteration}"}
    repeat: {until: "${steps.page.output.page >= 2}", max: 3}
output: {pages: "${steps.page.iterations}"}
"#;

/// Runs every dispatched unit of `harness` to success with its arguments as output, and
/// returns the idempotency keys they had.
fn run_pages(harness: &mut Harness) -> Vec<String> {
    let mut keys = Vec::new();
    while let [dispatch] = harness.dispatched().as_slice() {
        keys.push(dispatch.idempotency_key.clone());
        let output = dispatch.arguments.clone();
        harness.succeed(&dispatch.work, output);
    }
    keys
}

#[test]
fn a_rerun_of_a_repeat_step_starts_its_runs_over_with_keys_never_used_before() {
    let mut harness = Harness::start(PAGES, json!({}));
    let before = run_pages(&mut harness);
    assert_eq!(before.len(), 2, "{before:?}");
    assert_eq!(harness.state.status(), InstanceStatus::Completed);
    harness.input(rerun(Some("page"), None, json!({})));
    let after = run_pages(&mut harness);
    assert_eq!(harness.state.status(), InstanceStatus::Completed);
    assert_eq!(
        harness.state.output(),
        Some(&json!({"pages": [{"page": 1}, {"page": 2}]})),
        "the runs started over from the first"
    );
    assert_eq!(after.len(), 2, "{after:?}");
    for key in &after {
        assert!(
            !before.contains(key),
            "{key} was used before the re-run: {before:?}"
        );
    }
    assert_ne!(after[0], after[1]);
}

pub(super) const SCENARIOS: &[(&str, fn())] = &[
    (
        "a_rerun_of_a_repeat_step_starts_its_runs_over_with_keys_never_used_before",
        a_rerun_of_a_repeat_step_starts_its_runs_over_with_keys_never_used_before,
    ),
    (
        "a_rerun_from_the_failed_step_runs_it_and_its_dependents_with_edited_arguments",
        a_rerun_from_the_failed_step_runs_it_and_its_dependents_with_edited_arguments,
    ),
    (
        "a_rerun_without_a_step_evaluates_the_output_again_with_the_new_input",
        a_rerun_without_a_step_evaluates_the_output_again_with_the_new_input,
    ),
    (
        "a_rerun_that_leaves_a_failed_step_behind_or_of_a_running_or_cancelled_instance_is_refused",
        a_rerun_that_leaves_a_failed_step_behind_or_of_a_running_or_cancelled_instance_is_refused,
    ),
    (
        "a_migrated_instance_continues_on_the_new_versions_steps_and_replays_across_the_switch",
        a_migrated_instance_continues_on_the_new_versions_steps_and_replays_across_the_switch,
    ),
    (
        "migration_problems_name_missing_started_steps_kind_changes_and_renamed_active_steps",
        migration_problems_name_missing_started_steps_kind_changes_and_renamed_active_steps,
    ),
];
