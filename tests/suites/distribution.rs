//! The partner side of issue 13 end to end, on every database, with the real connectors
//! against their simulators, the real runtime and store, the real HTTP API served by this
//! process (so the hub's and VIP's signed callbacks reach `POST /api/v1/events/<source>`),
//! and an injected clock:
//!
//! - an asset fetched from OTMM by digest is approved with its bytes bound to the
//!   approval; when the bytes change in OTMM between the approval and the delivery, the
//!   delivery is refused with `artifact_not_approved`, in history, and nothing reaches a
//!   partner;
//! - otherwise it is delivered to three partners over two channels (two on the Trading
//!   Grid hub, one on VIP); a download and an acknowledgement come back as signed
//!   callbacks and the ledger (`GET /api/v1/ledger`) shows it all; then the clock passes
//!   the asset's licence end: the recall definition (a `rights` trigger) starts once with
//!   the ledger's recipients, notifies every partner and withdraws every share once, and a
//!   restart of the server in between changes none of that.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use gridflow::http::event_secrets::EventSecrets;
use gridflow::http::state::TokenSettings;
use gridflow::{AppState, app};
use gridflow_connectors::Registry;
use gridflow_connectors::config::{Config, WebhooksConfig};
use gridflow_connectors::http::Secret;
use gridflow_connectors::sandbox::Sandbox;
use gridflow_connectors::simulator::{SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET};
use gridflow_core::approval::Verdict;
use gridflow_core::{DefinitionId, InstanceId, InstanceStatus};
use gridflow_runtime::{
    Approver, DecisionRequest, Engine, EngineOptions, ManualClock, RightsOptions, RightsTimer,
};
use gridflow_store::sql::{SqlOptions, SqlStore};
use gridflow_tests::{ADMIN_TOKEN, on_every_database, wait_for_status, wait_until};

/// OTMM's seeded pack shot (version 2), licensed until the end of 2027-03-31.
const ASSET: &str = "9df3f341f9ddbf5d15998eb65c6c7363936490f9";
/// Two hub partners and their users, and one VIP recipient.
const GREEN_MOUNTAIN: (&str, &str) = ("GC00912345AB", "buyer@greenmountain.example");
const METRO_FRESH: (&str, &str) = ("GC00933311CD", "media@metrofresh.example");
const HARBOR: &str = "rcp-harbor-liquors";
const HUB_SECRET: &str = "hub-callback-secret-for-the-suite";
const VIP_SECRET: &str = "vip-webhook-secret-for-the-suite";

const DISTRIBUTE: &str = r#"
id: distribute-pack-shot
input:
  type: object
  required: [asset_id]
  properties:
    asset_id: {type: string}
steps:
  - id: fetch
    action: otmm.fetch_content
    with: {asset_id: "${input.asset_id}"}
  - id: approve
    needs: [fetch]
    approval:
      title: "Share ${steps.fetch.output.content.file_name} with partners?"
      users: [ann]
      bind: "${steps.fetch.output.content}"
  - id: launch
    needs: [approve]
    sleep: 1h
  - id: current
    needs: [launch]
    action: otmm.fetch_content
    with: {asset_id: "${input.asset_id}"}
  - id: hub
    needs: [current]
    action: trading_grid.publish_content
    with:
      community_id: cmty-aurora-partners
      partner_company_ids: [GC00912345AB, GC00933311CD]
      title: "New pack shot"
      body: "The approved pack shot for the spring reset."
      requires_ack: true
      content: ["${steps.current.output.content}"]
  - id: vip
    needs: [current]
    action: vip.publish_content
    with:
      title: "New pack shot"
      recipients: {recipient_ids: [rcp-harbor-liquors]}
      content: ["${steps.current.output.content}"]
"#;

const RECALL: &str = r#"
id: recall-on-licence-end
triggers:
  - rights: {expiring_within: 7d, system: otmm}
    input: {event: "${event}"}
input:
  type: object
  required: [event]
  properties:
    event: {type: object}
steps:
  - id: notify_hub
    for_each: "${input.event.recipients.filter(r, r.channel == 'trading_grid')}"
    action: trading_grid.notify_partners
    with:
      company_ids: ["${item.partner}"]
      channel: portal
      subject: "Licence ends: stop using ${input.event.asset_id}"
      message: "The licence ends at ${input.event.window.valid_until}; the share is withdrawn."
  - id: withdraw_hub
    needs: [notify_hub]
    for_each: "${input.event.recipients.filter(r, r.channel == 'trading_grid')}"
    action: trading_grid.withdraw_post
    with: {post_id: "${item.reference}", partner_company_ids: ["${item.partner}"], reason: licence ended}
  - id: notify_vip
    for_each: "${input.event.recipients.filter(r, r.channel == 'vip')}"
    action: vip.notify_recipients
    with:
      recipient_ids: ["${item.partner}"]
      subject: "Licence ends: stop using ${input.event.asset_id}"
      message: "The licence ends at ${input.event.window.valid_until}; the delivery is revoked."
  - id: revoke_vip
    needs: [notify_vip]
    for_each: "${input.event.recipients.filter(r, r.channel == 'vip')}"
    action: vip.revoke_delivery
    with: {delivery_id: "${item.receipt}", reason: licence ended}
"#;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("an RFC 3339 instant")
        .with_timezone(&Utc)
}

/// One gridflow server in this process: the engine on the database at `url` with the
/// sandbox's connectors, its HTTP API on `address`, and its rights timer.
struct Node {
    engine: Engine,
    timer: RightsTimer,
    server: tokio::task::JoinHandle<()>,
    base: String,
}

impl Node {
    async fn start(
        url: &str,
        sandbox: &Sandbox,
        config: &Config,
        clock: Arc<ManualClock>,
        address: SocketAddr,
    ) -> anyhow::Result<Self> {
        let mut registry = Registry::with_builtin();
        for connector in sandbox.connectors(config)? {
            registry.register(connector);
        }
        let store = SqlStore::connect(url, SqlOptions::default()).await?;
        let engine = Engine::start(
            Arc::new(store),
            Arc::new(registry),
            clock,
            EngineOptions::default(),
        )
        .await?;
        let secrets = EventSecrets::new([("trading_grid", HUB_SECRET), ("vip", VIP_SECRET)])
            .with_settings(WebhooksConfig::default().with_sandbox_sources());
        let state = AppState {
            engine: engine.clone(),
            admin_token: Arc::from(ADMIN_TOKEN),
            event_secrets: secrets,
            tokens: TokenSettings::new(&config.tokens),
            sandbox_clock: None,
            console: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind(address).await?;
        let base = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app(state)).await;
        });
        let timer = RightsTimer::new(
            engine.clone(),
            RightsOptions {
                node: format!("node-{}", base),
                lease_duration: Duration::from_secs(30),
                recheck: Duration::from_secs(3600),
                retry: Duration::from_millis(100),
            },
        );
        Ok(Self {
            engine,
            timer,
            server,
            base,
        })
    }

    /// Stops serving and drops the engine: what a restart of the server does to this
    /// process's part.
    async fn stop(self) {
        self.server.abort();
        let _ = self.server.await;
        drop(self.timer);
        drop(self.engine);
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = reqwest::Client::new()
            .get(format!("{}/api/v1{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        ensure!(status.is_success(), "GET {path}: {status} {body}");
        Ok(body)
    }

    /// The ledger's deliveries of `ASSET`, by partner.
    async fn ledger(&self) -> anyhow::Result<Vec<Value>> {
        let page = self.get("/ledger?system=otmm&limit=50").await?;
        let mut items = page["items"]
            .as_array()
            .cloned()
            .with_context(|| format!("no items in {page}"))?;
        items.sort_by_key(|delivery| delivery["partner"].as_str().unwrap_or_default().to_owned());
        Ok(items)
    }
}

fn approver() -> Approver<'static> {
    Approver {
        user: "ann",
        groups: &[],
    }
}

async fn approve_pending(engine: &Engine, instance: &InstanceId) -> anyhow::Result<Value> {
    let approval = format!("{instance}:approve:1");
    wait_until(Duration::from_secs(30), "the approval", || async {
        Ok(engine
            .list_approvals(&approver(), None, None, 50)
            .await?
            .items
            .iter()
            .any(|item| item.id == approval)
            .then_some(()))
    })
    .await?;
    let decided = engine
        .decide(
            &approval,
            &approver(),
            DecisionRequest::Decide {
                decision: Verdict::Approve,
                comment: Some("pack shot checked".to_owned()),
                data: Value::Null,
            },
        )
        .await?;
    Ok(serde_json::to_value(decided)?)
}

async fn simulators() -> anyhow::Result<(Sandbox, SocketAddr)> {
    let sandbox = Sandbox::start(None).await?;
    // The API's address is fixed before the first start so that the simulators' callbacks
    // reach the restarted server too.
    let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
    let address = probe.local_addr()?;
    drop(probe);
    let events_url = format!("http://{address}/api/v1/events");
    sandbox
        .subscribe_hub_webhooks(&events_url, &Secret::new(HUB_SECRET))
        .await
        .map_err(|error| anyhow::anyhow!(error))?;
    sandbox
        .subscribe_vip(&events_url, &Secret::new(VIP_SECRET))
        .await
        .map_err(|error| anyhow::anyhow!(error))?;
    Ok((sandbox, address))
}

fn config(content: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.content.dir = Some(content.to_owned());
    config
}

/// The simulator effects named `action`.
fn effects(sandbox: &Sandbox, system: &str, action: &str) -> Vec<String> {
    sandbox
        .simulator(system)
        .map(|simulator| simulator.effects())
        .unwrap_or_default()
        .into_iter()
        .filter(|effect| effect.action == action)
        .map(|effect| effect.path)
        .collect()
}

async fn changed_bytes_are_never_delivered(url: &str) -> anyhow::Result<()> {
    let content = tempfile::tempdir()?;
    let config = config(content.path());
    let (sandbox, address) = simulators().await?;
    let clock = Arc::new(ManualClock::new(at("2026-12-07T09:00:00Z")));
    let node = Node::start(url, &sandbox, &config, clock.clone(), address).await?;
    node.engine.deploy(DISTRIBUTE).await?;
    let instance = node
        .engine
        .start_instance(
            &DefinitionId::from("distribute-pack-shot"),
            None,
            json!({"asset_id": ASSET}),
            "analyst",
        )
        .await?;
    let decided = approve_pending(&node.engine, &instance).await?;
    let approved = decided.to_string();

    // Behind the DAM's back, the approved version's bytes change before the launch.
    let otmm = sandbox.simulator("otmm").context("otmm")?.base_url();
    let response = reqwest::Client::new()
        .put(format!(
            "{otmm}/_sim/otmm/assets/{ASSET}/versions/2/content"
        ))
        .header("content-type", "image/png")
        .body(b"a different pack shot".to_vec())
        .send()
        .await?;
    ensure!(response.status().is_success(), "{}", response.status());
    clock.advance(Duration::from_secs(3_601));
    node.engine.tick().await?;
    wait_for_status(&node.engine, &instance, InstanceStatus::Failed).await?;

    let history = node.engine.history(&instance).await?;
    let history = serde_json::to_value(&history)?;
    let refusals: Vec<&Value> = history
        .as_array()
        .into_iter()
        .flatten()
        .filter(|event| {
            event.pointer("/event/type") == Some(&json!("step_failed"))
                || event["type"] == "step_failed"
        })
        .filter(|event| event.to_string().contains("artifact_not_approved"))
        .collect();
    ensure!(!refusals.is_empty(), "no refusal in history: {history}");
    let refusal = refusals[0].to_string();
    let view = node.engine.instance(&instance).await?;
    let fetched = view.steps["current"]
        .output
        .as_ref()
        .context("current has no output")?["content"]["sha256"]
        .as_str()
        .context("no digest")?
        .to_owned();
    ensure!(
        refusal.contains(&fetched),
        "the refusal names the bytes offered {fetched}: {refusal}"
    );
    ensure!(
        !approved.contains(&fetched),
        "the approval bound other bytes: {approved}"
    );
    // Nothing reached a partner on either channel.
    ensure!(effects(&sandbox, "trading_grid", "post.published").is_empty());
    ensure!(
        effects(&sandbox, "trading_grid", "document.uploaded").is_empty()
            && effects(&sandbox, "vip", "package.published").is_empty(),
        "{:?} {:?}",
        sandbox.simulator("trading_grid").map(|s| s.effects()),
        sandbox.simulator("vip").map(|s| s.effects())
    );
    ensure!(node.ledger().await?.is_empty());
    node.stop().await;
    sandbox.shutdown().await;
    Ok(())
}

async fn delivered_recorded_and_recalled(url: &str) -> anyhow::Result<()> {
    let content = tempfile::tempdir()?;
    let config = config(content.path());
    let (sandbox, address) = simulators().await?;
    let clock = Arc::new(ManualClock::new(at("2026-12-07T09:00:00Z")));
    let node = Node::start(url, &sandbox, &config, clock.clone(), address).await?;
    node.engine.deploy(DISTRIBUTE).await?;
    node.engine.deploy(RECALL).await?;
    let instance = node
        .engine
        .start_instance(
            &DefinitionId::from("distribute-pack-shot"),
            None,
            json!({"asset_id": ASSET}),
            "analyst",
        )
        .await?;
    approve_pending(&node.engine, &instance).await?;
    clock.advance(Duration::from_secs(3_601));
    node.engine.tick().await?;
    wait_for_status(&node.engine, &instance, InstanceStatus::Completed).await?;

    // Three partners, two channels, one row each.
    let view = node.engine.instance(&instance).await?;
    let hub = view.steps["hub"].output.clone().context("hub output")?;
    let vip = view.steps["vip"].output.clone().context("vip output")?;
    let post = hub["post_id"].as_str().context("post id")?.to_owned();
    let document = hub["documents"][0]["document_id"]
        .as_str()
        .context("document id")?
        .to_owned();
    let sha = view.steps["current"].output.clone().context("current")?["content"]["sha256"].clone();
    let ledger = node.ledger().await?;
    ensure!(ledger.len() == 3, "{ledger:?}");
    let partners: Vec<&str> = ledger
        .iter()
        .map(|row| row["partner"].as_str().unwrap_or_default())
        .collect();
    ensure!(
        partners == [GREEN_MOUNTAIN.0, METRO_FRESH.0, HARBOR],
        "{partners:?}"
    );
    for row in &ledger {
        ensure!(
            row["sha256"] == sha && row["status"] == "delivered",
            "{row}"
        );
        ensure!(row["instance_id"] == instance.as_str(), "{row}");
    }
    let harbor_delivery = ledger[2]["receipt"]
        .as_str()
        .context("vip receipt")?
        .to_owned();
    ensure!(ledger[2]["channel"] == "vip" && ledger[0]["channel"] == "trading_grid");
    ensure!(
        vip["ledger"].as_array().is_some_and(|l| l.len() == 1),
        "{vip}"
    );

    // Green Mountain downloads on the hub, Metro Fresh acknowledges there, and Harbor
    // downloads on VIP: each comes back as a signed callback.
    let client = reqwest::Client::new();
    let hub_base = sandbox.simulator("trading_grid").context("hub")?.base_url();
    let downloaded = client
        .get(format!(
            "{hub_base}/partner/v1/posts/{post}/documents/{document}"
        ))
        .header("X-Partner-Login", GREEN_MOUNTAIN.1)
        .send()
        .await?;
    ensure!(downloaded.status().is_success(), "{}", downloaded.status());
    let acknowledged = client
        .post(format!(
            "{hub_base}/partner/v1/posts/{post}/acknowledgements"
        ))
        .header("X-Partner-Login", METRO_FRESH.1)
        .json(&json!({"ack_type": "received"}))
        .send()
        .await?;
    ensure!(
        acknowledged.status().is_success(),
        "{}",
        acknowledged.status()
    );
    let vip_base = sandbox.simulator("vip").context("vip")?.base_url();
    let token: Value = client
        .post(format!("{vip_base}/v1/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", SANDBOX_CLIENT_ID),
            ("client_secret", SANDBOX_CLIENT_SECRET),
        ])
        .send()
        .await?
        .json()
        .await?;
    let fetched = client
        .get(format!(
            "{vip_base}/v1/deliveries/{harbor_delivery}/download"
        ))
        .bearer_auth(token["access_token"].as_str().unwrap_or_default())
        .header("X-Recipient-Id", HARBOR)
        .send()
        .await?;
    ensure!(fetched.status().is_success(), "{}", fetched.status());

    let statuses = wait_until(
        Duration::from_secs(30),
        "the callbacks in the ledger",
        || async {
            let ledger = node.ledger().await?;
            let statuses: Vec<String> = ledger
                .iter()
                .map(|row| row["status"].as_str().unwrap_or_default().to_owned())
                .collect();
            Ok((statuses == ["downloaded", "acknowledged", "downloaded"]).then_some(ledger))
        },
    )
    .await?;
    ensure!(
        statuses[0]["downloaded_at"].is_string(),
        "{:?}",
        statuses[0]
    );
    ensure!(
        statuses[1]["acknowledged_at"].is_string(),
        "{:?}",
        statuses[1]
    );
    let filtered = node
        .get(&format!(
            "/ledger?partner={}&status=downloaded",
            GREEN_MOUNTAIN.0
        ))
        .await?;
    ensure!(
        filtered["items"]
            .as_array()
            .is_some_and(|items| items.len() == 1),
        "{filtered}"
    );
    let detail = node
        .get(&format!(
            "/ledger/{}",
            statuses[0]["delivery_id"].as_str().unwrap_or_default()
        ))
        .await?;
    ensure!(detail.to_string().contains(GREEN_MOUNTAIN.1), "{detail}");

    // Past the licence end (2027-03-31, a week's notice): the recall starts once.
    clock.set(at("2027-04-01T00:00:00Z"));
    let pass = node.timer.pass().await?;
    ensure!(pass.started.len() == 1, "{pass:?}");
    let recall = pass.started[0].clone();
    let started = node.engine.instance(&recall).await?;
    let recipients = started.input["event"]["recipients"].clone();
    ensure!(
        recipients.as_array().is_some_and(|r| r.len() == 3),
        "{recipients}"
    );

    // The server restarts while the recall runs: nothing fires or happens twice.
    node.stop().await;
    let node = Node::start(url, &sandbox, &config, clock.clone(), address).await?;
    node.engine.tick().await?;
    ensure!(node.timer.pass().await?.started.is_empty());
    wait_for_status(&node.engine, &recall, InstanceStatus::Completed).await?;
    clock.advance(Duration::from_secs(86_400));
    node.engine.tick().await?;
    ensure!(node.timer.pass().await?.started.is_empty());

    let hub_notifications = sandbox
        .simulator("trading_grid")
        .map(|s| s.effects())
        .unwrap_or_default()
        .into_iter()
        .filter(|effect| effect.path == "/hub/v1/notifications")
        .count();
    ensure!(
        hub_notifications == 2,
        "{hub_notifications} hub notifications, not one per hub partner"
    );
    ensure!(effects(&sandbox, "vip", "notification.sent").len() == 1);
    let withdrawals = sandbox
        .simulator("trading_grid")
        .map(|s| s.effects())
        .unwrap_or_default()
        .into_iter()
        .filter(|effect| effect.path.ends_with("/withdrawal"))
        .count();
    ensure!(withdrawals == 2, "{withdrawals} hub withdrawals");
    let revocations = sandbox
        .simulator("vip")
        .map(|s| s.effects())
        .unwrap_or_default()
        .into_iter()
        .filter(|effect| effect.path.ends_with("/revoke"))
        .count();
    ensure!(revocations == 1, "{revocations} VIP revocations");
    let ledger = node.ledger().await?;
    ensure!(
        ledger.iter().all(|row| row["status"] == "withdrawn"),
        "{ledger:?}"
    );
    let recalls = node
        .get("/instances?definition=recall-on-licence-end&limit=50")
        .await?;
    ensure!(
        recalls["items"]
            .as_array()
            .is_some_and(|items| items.len() == 1),
        "{recalls}"
    );

    // Nothing secret or expiring in any history or ledger row of this run.
    for id in [&instance, &recall] {
        let history = serde_json::to_string(&node.engine.history(id).await?)?;
        for needle in [
            "Signature=",
            "Expires=",
            "access_token",
            HUB_SECRET,
            VIP_SECRET,
            SANDBOX_CLIENT_SECRET,
            "http://",
        ] {
            ensure!(!history.contains(needle), "{needle} in the history of {id}");
        }
    }
    let rows = serde_json::to_string(&ledger)?;
    ensure!(
        !rows.contains("http://") && !rows.contains("Signature="),
        "{rows}"
    );
    node.stop().await;
    sandbox.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_changed_after_approval_never_reach_a_partner() -> anyhow::Result<()> {
    on_every_database(|url| async move { changed_bytes_are_never_delivered(&url).await }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_ledgered_and_recalled_once_at_the_licence_end() -> anyhow::Result<()> {
    on_every_database(|url| async move { delivered_recorded_and_recalled(&url).await }).await
}
