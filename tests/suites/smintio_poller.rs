//! The Smint.io change feed through the runtime's poller, in-process on every backend: a
//! licence change made in the simulator starts the definition triggered by
//! `smintio.licence_changed` once, with the new licence window in `event`; a cursor
//! rewound (a crash between a delivery and its cursor save) and a restarted engine deliver
//! nothing twice.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::json;

use gridflow_connectors::config::SmintioConfig;
use gridflow_connectors::http::Secret;
use gridflow_connectors::simulator::smintio::{API_ROOT, SANDBOX_REFRESH_TOKEN};
use gridflow_connectors::simulator::{self, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SimOptions};
use gridflow_connectors::smintio::{SmintioConnector, SmintioCredentials};
use gridflow_connectors::{Connector, Registry};
use gridflow_runtime::{Engine, EngineOptions, Poller, PollerOptions, SystemClock};
use gridflow_store::CursorStore;
use gridflow_store::sql::{SqlOptions, SqlStore};
use gridflow_tests::on_every_database;

const ASSET: &str = "5e0c1a2b-3c4d-4e5f-8a6b-7c8d9e0f0003";

/// Started by every licence change, with the asset and its new end of use.
const LICENCE_CHANGED: &str = r#"
id: licence-changed
input:
  type: object
  required: [asset_id, valid_until]
  properties:
    asset_id: {type: string}
    valid_until: {type: ["string", "null"]}
triggers:
  - event: smintio.licence_changed
    input: {asset_id: "${event.asset_id}", valid_until: "${event.observed_rights[0].valid_until}"}
steps:
  - id: note
    action: core.noop
"#;

fn smintio(base_url: &str) -> anyhow::Result<Arc<SmintioConnector>> {
    let config = SmintioConfig {
        base_url: format!("{base_url}{API_ROOT}"),
        identity_url: base_url.to_owned(),
        client_id_env: "SMINTIO_CLIENT_ID".to_owned(),
        client_secret_env: "SMINTIO_CLIENT_SECRET".to_owned(),
        refresh_token_env: "SMINTIO_REFRESH_TOKEN".to_owned(),
        timeout: Duration::from_secs(10),
        poll_interval: Duration::from_secs(1),
    };
    let credentials = SmintioCredentials {
        client_id: Secret::new(SANDBOX_CLIENT_ID),
        client_secret: Secret::new(SANDBOX_CLIENT_SECRET),
        refresh_token: Secret::new(SANDBOX_REFRESH_TOKEN),
    };
    Ok(Arc::new(SmintioConnector::new(&config, credentials)?))
}

/// An engine on `url` with the built-in connectors and Smint.io, and its poller.
async fn node(url: &str, base_url: &str, name: &str) -> anyhow::Result<(Engine, Poller)> {
    let connector = smintio(base_url)?;
    let mut registry = Registry::with_builtin();
    registry.register(connector.clone());
    let store = SqlStore::connect(url, SqlOptions::default()).await?;
    let engine = Engine::start(
        Arc::new(store),
        Arc::new(registry),
        Arc::new(SystemClock),
        EngineOptions::default(),
    )
    .await?;
    let feed = connector.change_feed().context("smintio has a feed")?;
    let options = PollerOptions {
        node: name.to_owned(),
        ..PollerOptions::default()
    };
    Ok((engine.clone(), Poller::new(engine, feed, options)))
}

async fn change_licence(base_url: &str, until: &str) -> anyhow::Result<()> {
    let terms =
        json!([{"sequence_number": 1, "valid_from": "2026-01-01T00:00:00Z", "valid_until": until}]);
    let response = reqwest::Client::new()
        .put(format!(
            "{base_url}/_sim/smintio/assets/{ASSET}/license-terms"
        ))
        .json(&terms)
        .send()
        .await?;
    ensure!(response.status() == 200, "{}", response.text().await?);
    Ok(())
}

async fn licence_changes_start_once(url: String) -> anyhow::Result<()> {
    let simulator = simulator::smintio::start(SimOptions::in_memory()).await?;
    let base_url = simulator.base_url();
    let (engine, poller) = node(&url, &base_url, "node-a").await?;
    engine.deploy(LICENCE_CHANGED).await?;

    let pass = poller.poll().await?;
    ensure!(
        pass.leader && pass.started.is_empty(),
        "the past is not replayed: {pass:?}"
    );
    let store = SqlStore::connect(&url, SqlOptions::default()).await?;
    let before = store.load_cursor("smintio").await?.context("a cursor")?;

    change_licence(&base_url, "2026-09-30T23:59:59Z").await?;
    let pass = poller.poll().await?;
    ensure!(pass.started.len() == 1, "{pass:?}");
    let started = engine.instance(&pass.started[0]).await?;
    ensure!(
        started.input == json!({"asset_id": ASSET, "valid_until": "2026-09-30T23:59:59Z"}),
        "{:?}",
        started.input
    );
    ensure!(poller.poll().await?.started.is_empty(), "each change once");

    // As after a crash between the delivery and the cursor save: read again, start nothing.
    store
        .save_cursor("smintio", &before, chrono::Utc::now())
        .await?;
    let pass = poller.poll().await?;
    ensure!(pass.delivered == 1 && pass.started.is_empty(), "{pass:?}");

    // A restarted node goes on from the saved cursor.
    let (_, restarted) = node(&url, &base_url, "node-a").await?;
    ensure!(restarted.poll().await?.started.is_empty());
    change_licence(&base_url, "2026-08-31T23:59:59Z").await?;
    let pass = restarted.poll().await?;
    ensure!(pass.started.len() == 1, "{pass:?}");
    simulator.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smintio_licence_changes_start_their_definition_once() {
    on_every_database(licence_changes_start_once)
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
}
