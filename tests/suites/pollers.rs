//! The OTMM and Trading Grid pollers of a real `gridflow serve`, against simulators that
//! keep running while the server is killed and restarted: every change made while the
//! server was up or down starts (or signals) exactly one instance, and a cursor rewound
//! as by a crash between a delivery and its cursor save delivers nothing twice.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use gridflow_connectors::config::Config;
use gridflow_connectors::sandbox::Sandbox;
use gridflow_connectors::simulator::otmm::seeded_asset_id;
use gridflow_connectors::simulator::{
    SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD, SANDBOX_USERNAME,
};
use gridflow_connectors::{Invocation, Registry};
use gridflow_core::{InstanceId, StepId};
use gridflow_store::CursorStore;
use gridflow_store::sql::{SqlOptions, SqlStore};
use gridflow_tests::{Body, Server, on_every_database, wait_until};

/// Started by every OTMM change, with the asset and the change id as input.
const ASSET_CHANGED: &str = r#"
id: asset-changed
input:
  type: object
  required: [asset_id, change]
  properties:
    asset_id: {type: string}
    change: {type: string}
triggers:
  - event: otmm.asset_changed
    input: {asset_id: "${event.asset_id}", change: "${event.change_id}"}
steps:
  - id: note
    action: core.noop
"#;

/// Started when a partner opens an issue; completes when that issue is updated.
const PARTNER_ISSUE: &str = r#"
id: partner-issue
input:
  type: object
  required: [issue_id]
  properties:
    issue_id: {type: string}
triggers:
  - event: trading_grid.issue_created
    input: {issue_id: "${event.issue_id}"}
steps:
  - id: resolved
    wait: {signal: trading_grid.issue_updated, timeout: 1h, on_timeout: fail, correlate: "${event.issue_id == input.issue_id}"}
"#;

/// A trigger on the same event whose input cannot be made from it (OTMM changes carry no
/// `sku`): it is logged and left out, and the other triggers still start.
const NEEDS_A_SKU: &str = r#"
id: needs-a-sku
input:
  type: object
  required: [sku]
  properties:
    sku: {type: string}
triggers:
  - event: otmm.asset_changed
    input: {sku: "${event.sku}"}
steps:
  - id: note
    action: core.noop
"#;

const TIMEOUT: Duration = Duration::from_secs(30);

/// The systems, their connectors (to make changes as their users would) and the
/// configuration that points a server at them.
struct Systems {
    sandbox: Sandbox,
    registry: Registry,
    config_file: tempfile::NamedTempFile,
}

impl Systems {
    async fn start() -> anyhow::Result<Self> {
        let sandbox = Sandbox::start(None).await?;
        let mut registry = Registry::new();
        for connector in sandbox.connectors(&Config::default())? {
            registry.register(connector);
        }
        let url = |name: &str| -> anyhow::Result<String> {
            Ok(sandbox
                .simulator(name)
                .context("simulator")?
                .base_url()
                .to_string())
        };
        let config = format!(
            "[connectors.trading_grid]\nbase_url = \"{tg}\"\ncompany_id = \"GC00804444LX\"\n\
             client_id_env = \"TEST_TG_ID\"\nclient_secret_env = \"TEST_TG_SECRET\"\npoll_interval = \"200ms\"\n\n\
             [connectors.otmm]\nbase_url = \"{otmm}/otmmapi/v6\"\nusername_env = \"TEST_OTMM_USER\"\n\
             password_env = \"TEST_OTMM_PASSWORD\"\nclient_id_env = \"TEST_TG_ID\"\n\
             client_secret_env = \"TEST_TG_SECRET\"\npoll_interval = \"200ms\"\n",
            tg = url("trading_grid")?,
            otmm = url("otmm")?,
        );
        let mut config_file = tempfile::NamedTempFile::new()?;
        std::io::Write::write_all(&mut config_file, config.as_bytes())?;
        Ok(Self {
            sandbox,
            registry,
            config_file,
        })
    }

    /// Starts `gridflow serve` with the pollers of both systems, as node `poll-node`
    /// (a restarted node keeps its name, and so its leases).
    fn serve(&self, url: &str) -> anyhow::Result<Server> {
        let config = self.config_file.path().to_string_lossy().into_owned();
        Server::start_with_env(
            url,
            &[
                ("GRIDFLOW_CONFIG", config.as_str()),
                ("GRIDFLOW_NODE", "poll-node"),
                ("TEST_TG_ID", SANDBOX_CLIENT_ID),
                ("TEST_TG_SECRET", SANDBOX_CLIENT_SECRET),
                ("TEST_OTMM_USER", SANDBOX_USERNAME),
                ("TEST_OTMM_PASSWORD", SANDBOX_PASSWORD),
            ],
        )
    }

    /// Runs an action the way a user of the system would, outside gridflow.
    async fn act(&self, action: &str, arguments: Value) -> anyhow::Result<Value> {
        let (connector, _) = self.registry.action(action).context("action")?;
        let name = action.split_once('.').context("action name")?.1;
        let invocation = Invocation::new(
            name,
            arguments,
            InstanceId::from(user_action_key(action)),
            StepId::from("user"),
            None,
            1,
        );
        connector
            .invoke(invocation)
            .await
            .map_err(|error| anyhow::anyhow!("{action}: {error}"))
    }

    /// Edits seeded asset `number`, a latest version (2, 3, 4…; asset 1 is version 1 of 2).
    async fn edit_asset(&self, number: u64, region: &str) -> anyhow::Result<()> {
        self.act(
            "otmm.update_metadata",
            json!({"asset_id": seeded_asset_id(number), "fields": {"CUSTOM.FIELD.REGION": region}}),
        )
        .await?;
        Ok(())
    }
}

/// A fresh key per user action, so no two of them are deduplicated by the systems.
fn user_action_key(action: &str) -> String {
    format!(
        "{action}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.as_nanos())
            .unwrap_or_default()
    )
}

async fn cursors(store: &SqlStore) -> anyhow::Result<(Option<String>, Option<String>)> {
    Ok((
        store.load_cursor("otmm").await?,
        store.load_cursor("trading_grid").await?,
    ))
}

async fn instances(server: &Server, definition: &str) -> anyhow::Result<Vec<Value>> {
    let page = server
        .get(&format!("/instances?definition={definition}&limit=500"))
        .await?;
    Ok(page["items"].as_array().cloned().unwrap_or_default())
}

/// Waits until `definition` has `count` instances, all in `status`.
async fn wait_for_instances(
    server: &Server,
    definition: &str,
    count: usize,
    status: &str,
) -> anyhow::Result<Vec<Value>> {
    wait_until(
        TIMEOUT,
        &format!("{count} {status} {definition}"),
        || async {
            let listed = instances(server, definition).await?;
            ensure!(
                listed.len() <= count,
                "more {definition} instances than changes: {listed:#?}"
            );
            let done = listed.len() == count && listed.iter().all(|item| item["status"] == status);
            Ok(done.then_some(listed))
        },
    )
    .await
}

async fn poll_across_restarts(url: &str) -> anyhow::Result<()> {
    let systems = Systems::start().await?;
    let server = systems.serve(url)?;
    // The test's own view of the database, to read and (as a crash would leave them)
    // rewind the cursors.
    let store = SqlStore::connect(url, SqlOptions::default()).await?;
    for definition in [ASSET_CHANGED, PARTNER_ISSUE, NEEDS_A_SKU] {
        server
            .post("/definitions", Body::Text(definition.to_owned()))
            .await?;
    }
    // The first pass of each poller takes the position of now; changes count from then.
    wait_until(TIMEOUT, "both pollers' first cursor", || async {
        let (otmm, tg) = cursors(&store).await?;
        Ok((otmm.is_some() && tg.is_some()).then_some(()))
    })
    .await?;

    // Up: two asset edits and a partner opening an issue.
    systems.edit_asset(2, "EU-West").await?;
    systems.edit_asset(3, "US-East").await?;
    let issue = systems
        .act(
            "trading_grid.open_issue",
            json!({"title": "Wrong pack shot", "description": "The 12oz can shows last year's label.",
                   "partner_company_id": "GC00933311CD", "severity": "high"}),
        )
        .await?;
    let issue_id = issue["issue_id"].as_str().context("issue id")?.to_owned();
    wait_for_instances(&server, "asset-changed", 2, "completed").await?;
    let waiting = wait_for_instances(&server, "partner-issue", 1, "waiting").await?;
    ensure!(waiting[0]["input"]["issue_id"] == issue_id.as_str());
    let issue_instance = waiting[0]["id"].as_str().context("id")?.to_owned();
    server.kill()?;
    let after_first_run = cursors(&store).await?;

    // Down: two more asset edits (one of an asset edited before) and the issue resolved.
    systems.edit_asset(4, "APAC").await?;
    systems.edit_asset(2, "EU-Central").await?;
    systems
        .act(
            "trading_grid.update_issue",
            json!({"issue_id": issue_id, "status": "resolved"}),
        )
        .await?;

    let server = systems.serve(url)?;
    let changed = wait_for_instances(&server, "asset-changed", 4, "completed").await?;
    wait_for_instances(&server, "partner-issue", 1, "completed").await?;
    let mut assets: Vec<String> = changed
        .iter()
        .map(|item| {
            item["input"]["asset_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assets.sort();
    let mut expected = vec![
        seeded_asset_id(2),
        seeded_asset_id(2),
        seeded_asset_id(3),
        seeded_asset_id(4),
    ];
    expected.sort();
    ensure!(assets == expected, "one instance per edit: {assets:?}");
    let change_ids: BTreeSet<&str> = changed
        .iter()
        .filter_map(|item| item["input"]["change"].as_str())
        .collect();
    ensure!(change_ids.len() == 4, "distinct changes: {change_ids:?}");
    let signals = |history: &Value| {
        history["events"]
            .as_array()
            .map(|events| {
                events
                    .iter()
                    .filter(|event| event["type"] == "signal_received")
                    .count()
            })
            .unwrap_or(0)
    };
    let history = server
        .get(&format!("/instances/{issue_instance}/history"))
        .await?;
    ensure!(signals(&history) == 1, "one signal: {history:#}");
    server.kill()?;
    let after_second_run = cursors(&store).await?;
    ensure!(after_second_run != after_first_run, "the cursors moved");

    // A crash after delivering and before saving the cursor: the cursors point back
    // before the second run's changes, which are read and delivered again.
    let now = chrono::Utc::now();
    let (otmm, tg) = after_first_run.clone();
    store
        .save_cursor("otmm", &otmm.context("otmm cursor")?, now)
        .await?;
    store
        .save_cursor("trading_grid", &tg.context("trading grid cursor")?, now)
        .await?;
    let server = systems.serve(url)?;
    wait_until(TIMEOUT, "the redelivery to catch up", || async {
        Ok((cursors(&store).await? == after_second_run).then_some(()))
    })
    .await?;
    ensure!(instances(&server, "asset-changed").await?.len() == 4);
    ensure!(instances(&server, "partner-issue").await?.len() == 1);
    ensure!(
        instances(&server, "needs-a-sku").await?.is_empty(),
        "a trigger whose input is invalid starts nothing"
    );
    let history = server
        .get(&format!("/instances/{issue_instance}/history"))
        .await?;
    ensure!(signals(&history) == 1, "still one signal: {history:#}");
    server.kill()?;
    store.close().await?;
    systems.sandbox.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pollers_resume_from_their_cursor_without_missing_or_repeating_a_change() {
    on_every_database(|url| async move { poll_across_restarts(&url).await })
        .await
        .unwrap();
}
