//! A workflow over the Trading Grid, OTMM and VIP connectors, run by the in-process
//! engine against the sandbox simulators with injected faults: it completes through
//! retries, each simulator records one effect per logical action, and no credential or
//! token reaches the history.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::json;

use gridflow_connectors::Registry;
use gridflow_connectors::config::Config;
use gridflow_connectors::sandbox::Sandbox;
use gridflow_connectors::simulator::{Fault, FaultRule, SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD};
use gridflow_core::{DefinitionId, InstanceStatus};
use gridflow_runtime::{Engine, EngineOptions, SystemClock};
use gridflow_store::sql::{SqlOptions, SqlStore};
use gridflow_tests::{on_every_database, wait_until};

const WORKFLOW: &str = r#"
id: sandbox-suite
steps:
  - id: find
    action: otmm.search_assets
    with: {query: citrus}
  - id: tag
    needs: [find]
    action: otmm.update_metadata
    with: {asset_id: "${steps.find.output.assets[0].asset_id}", fields: {"CUSTOM.FIELD.REGION": "US-East"}}
    retry: {max_attempts: 4, initial_interval: 10ms, jitter: false}
  - id: package
    needs: [find]
    action: vip.create_package
    with:
      title: Citrus Spritz kit
      recipients: {group_ids: [grp-key-retailers]}
      rights: {valid_from: "2026-01-01T00:00:00Z", valid_until: "2030-01-01T00:00:00Z"}
    retry: {max_attempts: 4, initial_interval: 10ms, jitter: false}
  - id: publish
    needs: [package]
    action: vip.publish_package
    with: {package_id: "${steps.package.output.package_id}"}
    retry: {max_attempts: 4, initial_interval: 10ms, jitter: false}
  - id: announce
    needs: [publish, tag]
    action: trading_grid.post_message
    with: {community_id: cmty-aurora-partners, group_ids: [grp-retailers], title: Citrus Spritz kit published, body: Approved images are in VIP.}
    retry: {max_attempts: 4, initial_interval: 10ms, jitter: false}
"#;

/// Whether `text` holds a simulator token (`sim-` and 48 hex digits).
fn holds_token(text: &str) -> bool {
    text.match_indices("sim-").any(|(index, _)| {
        let rest = &text[index + 4..];
        rest.len() >= 48 && rest[..48].chars().all(|c| c.is_ascii_hexdigit())
    })
}

async fn sandbox_run(url: &str) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(None).await?;
    let mut registry = Registry::with_builtin();
    for connector in sandbox.connectors(&Config::default())? {
        registry.register(connector);
    }
    let store = SqlStore::connect(url, SqlOptions::default()).await?;
    let engine = Engine::start(
        Arc::new(store),
        Arc::new(registry),
        Arc::new(SystemClock),
        EngineOptions::default(),
    )
    .await?;

    let simulator = |name: &str| sandbox.simulator(name).context("simulator");
    simulator("otmm")?
        .faults()
        .push(FaultRule::on(Fault::Drop, "PATCH", "/otmmapi/v6/assets"));
    simulator("vip")?.faults().push(FaultRule::on(
        Fault::RateLimit {
            retry_after_secs: 1,
        },
        "POST",
        "/v1/packages",
    ));
    simulator("vip")?
        .faults()
        .push(FaultRule::on(Fault::ServerError, "POST", "/v1/packages/"));
    simulator("trading_grid")?.faults().push(FaultRule::on(
        Fault::ServerError,
        "POST",
        "/hub/v1/communities",
    ));

    engine.deploy(WORKFLOW).await?;
    let id = engine
        .start_instance(
            &DefinitionId::from("sandbox-suite"),
            None,
            json!({}),
            "alice",
        )
        .await?;
    wait_until(
        Duration::from_secs(60),
        "the sandbox workflow to finish",
        || async {
            let status = engine.instance(&id).await?.status;
            Ok(matches!(
                status,
                InstanceStatus::Completed | InstanceStatus::Failed | InstanceStatus::Cancelled
            )
            .then_some(()))
        },
    )
    .await?;
    let view = engine.instance(&id).await?;
    ensure!(
        view.status == InstanceStatus::Completed,
        "instance: {view:?}"
    );
    for step in ["tag", "package", "publish", "announce"] {
        ensure!(
            view.steps[step].attempts == 2,
            "{step} retried once: {:?}",
            view.steps[step]
        );
    }

    let count = |name: &str, action: &str| -> anyhow::Result<usize> {
        Ok(simulator(name)?
            .effects()
            .iter()
            .filter(|effect| effect.action == action)
            .count())
    };
    ensure!(count("otmm", "metadata.updated")? == 1);
    ensure!(count("vip", "package.created")? == 1);
    ensure!(count("vip", "package.published")? == 1);
    ensure!(count("trading_grid", "post.published")? == 1);

    let history = serde_json::to_string(
        &engine
            .history(&id)
            .await?
            .iter()
            .map(|event| json!({"type": event.event_type, "data": event.data}))
            .collect::<Vec<_>>(),
    )?;
    for secret in [SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD] {
        ensure!(
            !history.contains(secret),
            "a credential reached the history"
        );
    }
    ensure!(!holds_token(&history), "a token reached the history");
    sandbox.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_over_three_simulators_completes_through_faults_with_one_effect_each() {
    on_every_database(|url| async move { sandbox_run(&url).await })
        .await
        .unwrap();
}
