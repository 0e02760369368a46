//! Child workflows on every backend: a workflow step starts a child instance and takes its
//! output; a failed child fails the step and a retry starts a new child; `for_each` makes
//! one child per item; cancelling the parent cancels its children; a definition's workflow
//! steps are checked against the definitions they start; and a server killed with SIGKILL
//! in the middle of a fan-out over children ends with exactly one child per item. For every
//! instance, parents and children alike, the replayed history equals the stored state.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use gridflow_core::{DefinitionId, InstanceId, InstanceStatus};
use gridflow_runtime::{Engine, EngineOptions, Error, InstanceView, SystemClock};
use gridflow_tests::{
    Body, Server, assert_replay_matches, engine_on, on_every_database, wait_for_status, wait_until,
};

const CHILD: &str = r#"
id: partner-child
input:
  type: object
  required: [partner]
  properties:
    partner: {type: string}
steps:
  - id: greet
    action: core.echo
    with: {partner: "${input.partner}"}
output: {ack: "${steps.greet.output.partner}"}
"#;

const PARENT: &str = r#"
id: partner-parent
steps:
  - id: sub
    workflow: {id: partner-child, input: {partner: "${input.partner}"}}
  - id: after
    needs: [sub]
    action: core.echo
    with: {got: "${steps.sub.output.ack}"}
output: {child: "${steps.sub.output}", after: "${steps.after.output.got}"}
"#;

const FAILING_CHILD: &str = r#"
id: failing-child
steps:
  - id: boom
    action: core.fail
    with: {message: "partner refused"}
"#;

const RETRYING_PARENT: &str = r#"
id: retrying-parent
steps:
  - id: sub
    workflow: {id: failing-child}
    retry: {max_attempts: 2, initial_interval: 10ms, jitter: false}
"#;

const FAN_OUT_PARENT: &str = r#"
id: fan-out-parent
steps:
  - id: partners
    for_each: "${input.partners}"
    concurrency: 2
    workflow: {id: partner-child, input: {partner: "${item}-${index}"}}
output: {acks: "${steps.partners.output}"}
"#;

const WAITING_CHILD: &str = r#"
id: waiting-child
steps:
  - id: ack
    wait: {signal: partner_acknowledged}
"#;

const WAITING_PARENT: &str = r#"
id: waiting-parent
steps:
  - id: partners
    for_each: [a, b]
    workflow: {id: waiting-child}
"#;

/// Instance ids and statuses of the children listed under `step` of `view`.
fn children(
    view: &InstanceView,
    step: &str,
) -> Vec<(InstanceId, Option<u32>, u32, InstanceStatus)> {
    view.steps
        .get(step)
        .map(|step| {
            step.children
                .iter()
                .map(|child| {
                    (
                        InstanceId::from(child.instance_id.as_str()),
                        child.item,
                        child.attempt,
                        child.status,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn start(engine: &Engine, definition: &str, input: Value) -> anyhow::Result<InstanceId> {
    Ok(engine
        .start_instance(&DefinitionId::from(definition), None, input, "alice")
        .await?)
}

async fn one_child_completes(engine: &Engine) -> anyhow::Result<()> {
    let parent = start(engine, "partner-parent", json!({"partner": "acme"})).await?;
    wait_for_status(engine, &parent, InstanceStatus::Completed).await?;
    let view = engine.instance(&parent).await?;
    ensure!(
        view.output == Some(json!({"child": {"ack": "acme"}, "after": "acme"})),
        "parent output {:?}",
        view.output
    );
    let listed = children(&view, "sub");
    ensure!(listed.len() == 1, "children of sub: {listed:?}");
    let (child, item, attempt, status) = listed[0].clone();
    ensure!(item.is_none() && attempt == 1 && status == InstanceStatus::Completed);
    let child_view = engine.instance(&child).await?;
    let link = child_view.parent.context("the child names no parent")?;
    ensure!(link.instance_id == parent.as_str() && link.step == "sub" && link.item.is_none());
    ensure!(child_view.definition == "partner-child" && child_view.version == 1);
    let started: Vec<_> = engine
        .history(&parent)
        .await?
        .into_iter()
        .filter(|event| event.event_type == "child_started")
        .collect();
    ensure!(started.len() == 1, "child_started events: {started:?}");
    ensure!(started[0].data["child"] == child.as_str() && started[0].data["version"] == 1);
    assert_replay_matches(engine, &parent).await?;
    assert_replay_matches(engine, &child).await
}

async fn failed_child_is_retried(engine: &Engine) -> anyhow::Result<()> {
    let parent = start(engine, "retrying-parent", json!({})).await?;
    wait_for_status(engine, &parent, InstanceStatus::Failed).await?;
    let view = engine.instance(&parent).await?;
    let error = view.error.clone().context("no error")?;
    ensure!(error.code == "child_failed", "error {error:?}");
    ensure!(error.message.contains("partner refused"), "error {error:?}");
    let listed = children(&view, "sub");
    ensure!(
        listed.len() == 2
            && listed[0].2 == 1
            && listed[1].2 == 2
            && listed[0].0 != listed[1].0
            && listed.iter().all(|child| child.3 == InstanceStatus::Failed),
        "one failed child per attempt: {listed:?}"
    );
    assert_replay_matches(engine, &parent).await?;
    for child in &listed {
        assert_replay_matches(engine, &child.0).await?;
    }
    Ok(())
}

async fn fan_out_over_children(engine: &Engine) -> anyhow::Result<()> {
    let parent = start(
        engine,
        "fan-out-parent",
        json!({"partners": ["a", "b", "c"]}),
    )
    .await?;
    wait_for_status(engine, &parent, InstanceStatus::Completed).await?;
    let view = engine.instance(&parent).await?;
    ensure!(
        view.output == Some(json!({"acks": [{"ack": "a-0"}, {"ack": "b-1"}, {"ack": "c-2"}]})),
        "outputs in item order: {:?}",
        view.output
    );
    let listed = children(&view, "partners");
    ensure!(listed.len() == 3, "children: {listed:?}");
    for (index, (child, item, attempt, status)) in listed.iter().enumerate() {
        ensure!(*item == Some(index as u32) && *attempt == 1);
        ensure!(*status == InstanceStatus::Completed);
        let child_view = engine.instance(child).await?;
        let link = child_view.parent.context("no parent")?;
        ensure!(link.item == Some(index as u32) && link.step == "partners");
        assert_replay_matches(engine, child).await?;
    }
    assert_replay_matches(engine, &parent).await
}

async fn cancel_reaches_children(engine: &Engine) -> anyhow::Result<()> {
    let parent = start(engine, "waiting-parent", json!({})).await?;
    let waiting = wait_until(Duration::from_secs(30), "both children waiting", || async {
        let listed = children(&engine.instance(&parent).await?, "partners");
        Ok((listed.len() == 2
            && listed
                .iter()
                .all(|child| child.3 == InstanceStatus::Waiting))
        .then_some(listed))
    })
    .await?;
    engine
        .cancel(&parent, Some("not needed".into()), "alice")
        .await?;
    for child in &waiting {
        wait_for_status(engine, &child.0, InstanceStatus::Cancelled).await?;
        assert_replay_matches(engine, &child.0).await?;
    }
    ensure!(engine.instance(&parent).await?.status == InstanceStatus::Cancelled);
    assert_replay_matches(engine, &parent).await
}

async fn bad_child_input_fails_the_step(engine: &Engine) -> anyhow::Result<()> {
    // `partner` must be a string; a number only shows when the step runs.
    let parent = start(engine, "partner-parent", json!({"partner": 7})).await?;
    wait_for_status(engine, &parent, InstanceStatus::Failed).await?;
    let view = engine.instance(&parent).await?;
    let error = view.steps["sub"].error.clone().context("no step error")?;
    ensure!(error.code == "invalid_input", "error {error:?}");
    ensure!(
        error.message.contains("partner-child") && error.message.contains("partner"),
        "error {error:?}"
    );
    ensure!(children(&view, "sub").is_empty(), "no child was started");
    assert_replay_matches(engine, &parent).await
}

async fn workflow_steps_are_checked_at_deploy(engine: &Engine) -> anyhow::Result<()> {
    let refused = |yaml: &'static str, path: &'static str| async move {
        match engine.deploy(yaml).await {
            Err(Error::Invalid { details, .. }) => ensure!(
                details.iter().any(|detail| detail.path == path),
                "no error at {path}: {details:?}"
            ),
            other => anyhow::bail!("expected {path} to be refused, got {other:?}"),
        }
        Ok(())
    };
    refused(
        "id: orphan\nsteps:\n  - id: s\n    workflow: {id: nowhere}\n",
        "steps[0].workflow.id",
    )
    .await?;
    refused(
        "id: pinned\nsteps:\n  - id: s\n    workflow: {id: partner-child, version: 9, input: {partner: x}}\n",
        "steps[0].workflow.version",
    )
    .await?;
    refused(
        "id: incomplete\nsteps:\n  - id: s\n    workflow: {id: partner-child, input: {}}\n",
        "steps[0].workflow.input",
    )
    .await?;
    refused(
        "id: itself\nsteps:\n  - id: s\n    workflow: {id: itself}\n",
        "steps[0].workflow.id",
    )
    .await
}

async fn suite(url: &str) -> anyhow::Result<()> {
    let engine = engine_on(url, Arc::new(SystemClock), EngineOptions::default()).await?;
    for definition in [
        CHILD,
        PARENT,
        FAILING_CHILD,
        RETRYING_PARENT,
        FAN_OUT_PARENT,
        WAITING_CHILD,
        WAITING_PARENT,
    ] {
        engine.deploy(definition).await?;
    }
    one_child_completes(&engine).await.context("one child")?;
    failed_child_is_retried(&engine)
        .await
        .context("failed child")?;
    fan_out_over_children(&engine).await.context("fan-out")?;
    cancel_reaches_children(&engine).await.context("cancel")?;
    bad_child_input_fails_the_step(&engine)
        .await
        .context("bad input")?;
    workflow_steps_are_checked_at_deploy(&engine)
        .await
        .context("deploy checks")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_workflows_run_fail_fan_out_and_cancel() {
    on_every_database(|url| async move { suite(&url).await })
        .await
        .unwrap();
}

const ONE_WAITING_PARENT: &str = r#"
id: one-waiting-parent
steps:
  - id: sub
    workflow: {id: waiting-child}
output: "${steps.sub.output}"
"#;

/// A restart while a child runs executes the parent's start row again: it finds the
/// child, starts no second one, and the child's end still reaches the parent.
async fn restart_while_a_child_runs(url: &str) -> anyhow::Result<()> {
    let first = engine_on(url, Arc::new(SystemClock), EngineOptions::default()).await?;
    first.deploy(WAITING_CHILD).await?;
    first.deploy(ONE_WAITING_PARENT).await?;
    let parent = start(&first, "one-waiting-parent", json!({})).await?;
    let child = wait_until(Duration::from_secs(30), "the child to wait", || async {
        let listed = children(&first.instance(&parent).await?, "sub");
        Ok(listed
            .first()
            .filter(|child| child.3 == InstanceStatus::Waiting)
            .map(|child| child.0.clone()))
    })
    .await?;
    // A second engine on the same database starts up as a restarted node would: it
    // executes the queued start of the child again.
    let second = engine_on(url, Arc::new(SystemClock), EngineOptions::default()).await?;
    second.tick().await?;
    let listed = children(&second.instance(&parent).await?, "sub");
    ensure!(
        listed.len() == 1 && listed[0].0 == child,
        "children: {listed:?}"
    );
    let all = second
        .list_instance_summaries(
            &gridflow_store::InstanceFilter {
                definition: Some(DefinitionId::from("waiting-child")),
                ..Default::default()
            },
            None,
            100,
        )
        .await?;
    ensure!(
        all.items.len() == 1,
        "{} waiting-child instances",
        all.items.len()
    );
    second
        .signal(
            &child,
            "partner_acknowledged",
            json!({"ok": true}),
            "partner",
        )
        .await?;
    wait_for_status(&second, &parent, InstanceStatus::Completed).await?;
    let history = second.history(&parent).await?;
    let started = history
        .iter()
        .filter(|event| event.event_type == "child_started")
        .count();
    ensure!(started == 1, "{started} child_started events");
    assert_replay_matches(&second, &parent).await?;
    assert_replay_matches(&second, &child).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_while_a_child_runs_starts_no_second_child() {
    on_every_database(|url| async move { restart_while_a_child_runs(&url).await })
        .await
        .unwrap();
}

const ITEMS: usize = 24;

const CRASH_CHILD: &str = r#"
id: crash-child
steps:
  - id: work
    action: core.delay
    with: {ms: 150}
  - id: answer
    needs: [work]
    action: core.echo
    with: {n: "${input.n}"}
output: "${steps.answer.output.n}"
"#;

const CRASH_PARENT: &str = r#"
id: crash-parent
steps:
  - id: each
    for_each: "${input.items}"
    concurrency: 6
    workflow: {id: crash-child, input: {n: "${item}"}}
output: "${steps.each.output}"
"#;

fn listed_children(view: &Value) -> Vec<Value> {
    view["steps"]["each"]["children"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn crash_mid_fan_out(url: &str) -> anyhow::Result<()> {
    let server = Server::start(url)?;
    server
        .post("/definitions", Body::Text(CRASH_CHILD.into()))
        .await?;
    server
        .post("/definitions", Body::Text(CRASH_PARENT.into()))
        .await?;
    let items: Vec<usize> = (0..ITEMS).collect();
    let started = server
        .post(
            "/definitions/crash-parent/instances",
            Body::Json(json!({"input": {"items": items}})),
        )
        .await?;
    let parent = started["instance_id"].as_str().context("no id")?.to_owned();
    let path = format!("/instances/{parent}");
    // Kill once some children ended and others run: starts, ends and notices in flight.
    let at_kill = wait_until(Duration::from_secs(60), "a few children to end", || async {
        let view = server.get(&path).await?;
        let ended = listed_children(&view)
            .iter()
            .filter(|child| child["status"] == "completed")
            .count();
        Ok((ended >= 4).then_some(view))
    })
    .await?;
    server.kill()?;
    ensure!(
        at_kill["status"] != "completed",
        "the parent completed before the kill, so nothing was tested"
    );

    let server = Server::start(url)?;
    let view = wait_until(
        Duration::from_secs(120),
        "the parent to complete",
        || async {
            let view = server.get(&path).await?;
            Ok((view["status"] == "completed").then_some(view))
        },
    )
    .await?;
    let expected: Vec<Value> = items.iter().map(|n| json!(n)).collect();
    ensure!(
        view["output"] == json!(expected),
        "output {}",
        view["output"]
    );
    let listed = listed_children(&view);
    ensure!(
        listed.len() == ITEMS,
        "{} children listed: {listed:?}",
        listed.len()
    );
    for (index, child) in listed.iter().enumerate() {
        ensure!(
            child["item"] == json!(index) && child["attempt"] == 1,
            "one child per item, first attempt: {child}"
        );
    }
    let all = server
        .get("/instances?definition=crash-child&limit=500")
        .await?;
    let all = all["items"].as_array().context("no items")?;
    ensure!(all.len() == ITEMS, "{} child instances exist", all.len());
    for id in std::iter::once(parent.clone()).chain(
        listed
            .iter()
            .filter_map(|child| child["instance_id"].as_str().map(str::to_owned)),
    ) {
        let replay = server.get(&format!("/instances/{id}/replay")).await?;
        ensure!(
            replay["matches_stored"] == Value::Bool(true),
            "instance {id}: replayed state differs from the stored state"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_ends_with_exactly_one_child_per_item() {
    on_every_database(|url| async move { crash_mid_fan_out(&url).await })
        .await
        .unwrap();
}
