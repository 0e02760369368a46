//! The engine in-process, on every backend: real runs end to end, and for every instance
//! the suite runs, folding its stored history yields exactly its stored state.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::json;

use gridflow_core::{DefinitionId, InstanceId, InstanceStatus, StepId};
use gridflow_runtime::{Engine, EngineOptions, Error, ManualClock, SystemClock};
use gridflow_tests::{
    assert_replay_matches, engine_on, on_every_database, wait_for_status, wait_until,
};

const WORKFLOW: &str = r#"
id: engine-suite
input:
  type: object
  required: [assets]
  properties:
    assets: {type: array, items: {type: string}}
steps:
  - id: fetch
    action: core.echo
    with: {assets: "${input.assets}"}
  - id: deliver
    needs: [fetch]
    for_each: "${steps.fetch.output.assets}"
    concurrency: 2
    action: core.echo
    with: {asset: "${item}"}
  - id: optional
    needs: [fetch]
    when: "${size(input.assets) > 100}"
    action: core.noop
  - id: flaky
    needs: [deliver]
    action: core.fail_until
    with: {attempts: 2}
    retry: {max_attempts: 3, initial_interval: 10ms, jitter: false}
output: {delivered: "${steps.deliver.output}"}
"#;

async fn runs_end_to_end(url: &str) -> anyhow::Result<()> {
    let engine = engine_on(url, Arc::new(SystemClock), EngineOptions::default()).await?;
    let deployed = engine.deploy(WORKFLOW).await?;
    ensure!(deployed.created && deployed.version == 1);
    ensure!(
        !engine.deploy(WORKFLOW).await?.created,
        "identical content is a no-op"
    );
    let definition = DefinitionId::from("engine-suite");

    match engine
        .start_instance(&definition, None, json!({"assets": "not a list"}), "alice")
        .await
    {
        Err(Error::Invalid { details, .. }) => {
            ensure!(
                details.iter().any(|detail| detail.path.contains("assets")),
                "{details:?}"
            )
        }
        other => anyhow::bail!("bad input was accepted: {other:?}"),
    }

    let id = engine
        .start_instance(
            &definition,
            None,
            json!({"assets": ["a1", "a2", "a3"]}),
            "alice",
        )
        .await?;
    wait_for_status(&engine, &id, InstanceStatus::Completed).await?;
    let view = engine.instance(&id).await?;
    ensure!(
        view.output
            == Some(json!({"delivered": [{"asset": "a1"}, {"asset": "a2"}, {"asset": "a3"}]})),
        "output {:?}",
        view.output
    );
    ensure!(view.steps["optional"].status == gridflow_core::StepStatus::Skipped);
    ensure!(view.steps["flaky"].attempts == 2);
    assert_replay_matches(&engine, &id).await?;

    // Cancelling a finished instance is refused; a waiting one is cancelled.
    ensure!(matches!(
        engine.cancel(&id, None, "alice").await,
        Err(Error::Conflict(_))
    ));
    engine
        .deploy("id: engine-nap\nsteps:\n  - id: nap\n    sleep: 1h\n")
        .await?;
    let napping = engine
        .start_instance(&DefinitionId::from("engine-nap"), None, json!({}), "alice")
        .await?;
    wait_for_status(&engine, &napping, InstanceStatus::Waiting).await?;
    engine
        .cancel(&napping, Some("no longer needed".into()), "bob")
        .await?;
    let view = engine.instance(&napping).await?;
    ensure!(view.status == InstanceStatus::Cancelled);
    let history = engine.history(&napping).await?;
    let cancelled = history.last().context("empty history")?;
    ensure!(cancelled.event_type == "instance_cancelled" && cancelled.actor == "bob");
    assert_replay_matches(&engine, &napping).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_runs_end_to_end_and_replays_to_its_stored_state() {
    on_every_database(|url| async move { runs_end_to_end(&url).await })
        .await
        .unwrap();
}

/// With an injected clock, a retry waits for its backoff and a failed step can be
/// retried by an operator.
async fn retry_with_manual_clock(url: &str) -> anyhow::Result<()> {
    let clock = Arc::new(ManualClock::new(
        chrono::DateTime::parse_from_rfc3339("2026-11-22T09:00:00Z")?.with_timezone(&chrono::Utc),
    ));
    let engine = engine_on(url, clock.clone(), EngineOptions::default()).await?;
    engine
        .deploy(
            "id: manual-retry\nsteps:\n  - id: flaky\n    action: core.fail_until\n    with: {attempts: 3}\n    retry: {max_attempts: 2, initial_interval: 1m, jitter: false}\n",
        )
        .await?;
    let id = engine
        .start_instance(
            &DefinitionId::from("manual-retry"),
            None,
            json!({}),
            "alice",
        )
        .await?;
    // Attempt 1 fails; the retry waits a minute of the injected clock.
    wait_until(
        Duration::from_secs(30),
        "the first retry to be scheduled",
        || async {
            Ok((engine.instance(&id).await?.steps["flaky"].status
                == gridflow_core::StepStatus::Retrying)
                .then_some(()))
        },
    )
    .await?;
    clock.advance(Duration::from_secs(59));
    engine.tick().await?;
    ensure!(
        scheduled(&engine, &id).await? == 1,
        "the retry fired before its backoff"
    );
    ensure!(engine.instance(&id).await?.status == InstanceStatus::Waiting);
    clock.advance(Duration::from_secs(1));
    engine.tick().await?;
    ensure!(
        scheduled(&engine, &id).await? == 2,
        "the retry did not fire when due"
    );
    // Attempt 2 fails too and max_attempts is 2: the instance fails.
    wait_for_status(&engine, &id, InstanceStatus::Failed).await?;
    // The operator retries: attempt 3 succeeds.
    engine
        .retry_step(&id, &StepId::from("flaky"), "operator")
        .await?;
    wait_for_status(&engine, &id, InstanceStatus::Completed).await?;
    ensure!(engine.instance(&id).await?.steps["flaky"].attempts == 3);
    assert_replay_matches(&engine, &id).await?;
    Ok(())
}

async fn scheduled(engine: &Engine, id: &InstanceId) -> anyhow::Result<usize> {
    Ok(engine
        .history(id)
        .await?
        .iter()
        .filter(|event| event.event_type == "step_scheduled")
        .count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_waits_for_backoff_on_the_injected_clock_and_operator_retry_completes() {
    on_every_database(|url| async move { retry_with_manual_clock(&url).await })
        .await
        .unwrap();
}
