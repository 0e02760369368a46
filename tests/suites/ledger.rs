//! The distribution ledger end to end, on every database: deliveries land with the step's
//! success, status events update them once per event, a crash between an action and its
//! commit writes nothing twice, `ledger.recipients` reads them back for a recall, the HTTP
//! API and the CLI of the real binary list them, and tampering by raw SQL is reported by
//! `audit verify`.
//!
//! The in-test connector `partner` declares ledger effects: it tests the ledger's
//! mechanism, not a real system (the system connectors have their own contract tests).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, ensure};
use async_trait::async_trait;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

use gridflow_connectors::effects::{DeliveryStatus, Effects, LedgerChange, StatusChange};
use gridflow_connectors::{ActionSpec, Connector, EventEffects, EventSpec, Invocation, Registry};
use gridflow_core::audit::{ExportVerifier, ProblemKind};
use gridflow_core::{DefinitionId, InstanceId, InstanceStatus};
use gridflow_runtime::{Engine, EngineOptions, SystemClock};
use gridflow_store::sql::{SqlOptions, SqlStore};
use gridflow_store::{AuditFilter, LedgerFilter};
use gridflow_tests::{
    ADMIN_TOKEN, Server, gridflow_binary, on_every_database, wait_for_status, wait_until,
};

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// The in-test partner channel: `deliver` shares an asset with partners, `withdraw` takes
/// one partner's share back, `broken` reports a ledger that does not read. With `hang`,
/// `deliver` does its work and then never reports (a crash before the commit).
struct Partner {
    actions: Vec<ActionSpec>,
    events: Vec<EventSpec>,
    hang: bool,
    delivered: Arc<AtomicUsize>,
}

impl Partner {
    fn new(hang: bool, delivered: Arc<AtomicUsize>) -> Self {
        let ledger = Effects {
            ledger: true,
            ..Effects::default()
        };
        let action = |name: &str| {
            ActionSpec {
                name: name.to_owned(),
                description: format!("test {name}"),
                arguments: json!({"type": "object"}),
                output: json!({"type": "object"}),
                effects: Effects::default(),
            }
            .with_effects(ledger.clone())
        };
        let event = |name: &str| {
            EventSpec {
                name: name.to_owned(),
                description: format!("test {name}"),
                payload: json!({"type": "object"}),
                effects: Effects::default(),
            }
            .with_effects(ledger.clone())
        };
        Self {
            actions: vec![action("deliver"), action("withdraw"), action("broken")],
            events: vec![event("downloaded"), event("acknowledged")],
            hang,
            delivered,
        }
    }
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_owned()
}

#[async_trait]
impl Connector for Partner {
    fn name(&self) -> &str {
        "partner"
    }

    fn actions(&self) -> &[ActionSpec] {
        &self.actions
    }

    fn events(&self) -> &[EventSpec] {
        &self.events
    }

    async fn invoke(&self, invocation: Invocation) -> gridflow_connectors::Result<Value> {
        let arguments = &invocation.arguments;
        match invocation.action.as_str() {
            "deliver" => {
                self.delivered.fetch_add(1, Ordering::SeqCst);
                if self.hang {
                    std::future::pending::<()>().await;
                }
                let reference = text(arguments, "reference");
                let ledger: Vec<Value> = arguments["partners"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|partner| {
                        let partner = partner.as_str().unwrap_or_default();
                        json!({"change": "delivered", "system": "otmm",
                               "asset_id": text(arguments, "asset_id"),
                               "version": text(arguments, "version"), "sha256": SHA,
                               "partner": partner, "channel": text(arguments, "channel"),
                               "reference": reference,
                               "receipt": format!("{reference}-{partner}")})
                    })
                    .collect();
                Ok(json!({"reference": reference, "ledger": ledger}))
            }
            "withdraw" => Ok(
                json!({"ledger": [{"change": "status", "status": "withdrawn",
                "channel": text(arguments, "channel"), "reference": text(arguments, "reference"),
                "partner": text(arguments, "partner"), "detail": {"reason": "licence ended"}}]}),
            ),
            "broken" => Ok(json!({"ledger": [{"change": "delivered", "system": "otmm"}]})),
            other => Err(gridflow_connectors::Error::permanent(
                "unknown_action",
                other,
            )),
        }
    }

    fn event_effects(&self, event: &str, payload: &Value) -> EventEffects {
        let status = match event {
            "downloaded" => DeliveryStatus::Downloaded,
            "acknowledged" => DeliveryStatus::Acknowledged,
            _ => return EventEffects::default(),
        };
        EventEffects {
            ledger: vec![LedgerChange::Status(StatusChange {
                status,
                channel: text(payload, "channel"),
                reference: text(payload, "reference"),
                partner: Some(text(payload, "partner")),
                receipt: None,
                at: None,
                detail: Some(json!({"login": text(payload, "login")})),
            })],
            rights: Vec::new(),
        }
    }
}

async fn engine(url: &str, hang: bool, delivered: Arc<AtomicUsize>) -> anyhow::Result<Engine> {
    let mut registry = Registry::with_builtin();
    registry.register(Arc::new(Partner::new(hang, delivered)));
    let store = SqlStore::connect(url, SqlOptions::default()).await?;
    Ok(Engine::start(
        Arc::new(store),
        Arc::new(registry),
        Arc::new(SystemClock),
        EngineOptions::default(),
    )
    .await?)
}

const DELIVER: &str = r#"
id: ledger-deliver
steps:
  - id: vip
    action: partner.deliver
    with: {asset_id: a-1, version: "2", channel: vip, reference: pkg-1, partners: [GC1, GC2]}
  - id: hub
    needs: [vip]
    action: partner.deliver
    with: {asset_id: a-1, version: "2", channel: trading_grid, reference: post-1, partners: [GC3]}
"#;

const RECALL: &str = r#"
id: ledger-recall
steps:
  - id: recipients
    action: ledger.recipients
    with: {system: otmm, asset_id: a-1}
  - id: recall
    needs: [recipients]
    for_each: "${steps.recipients.output.recipients}"
    action: partner.withdraw
    with: {channel: "${item.channel}", reference: "${item.reference}", partner: "${item.partner}"}
output: {recalled: "${size(steps.recipients.output.recipients)}"}
"#;

const BROKEN: &str = r#"
id: ledger-broken
steps:
  - id: share
    action: partner.broken
"#;

async fn run(engine: &Engine, source: &str, wanted: InstanceStatus) -> anyhow::Result<InstanceId> {
    let deployed = engine.deploy(source).await?;
    let id = engine
        .start_instance(
            &DefinitionId::from(deployed.id.as_str()),
            None,
            json!({}),
            "tester",
        )
        .await?;
    wait_for_status(engine, &id, wanted).await?;
    Ok(id)
}

async fn all(
    engine: &Engine,
    filter: LedgerFilter,
) -> anyhow::Result<Vec<gridflow_store::ledger::Delivery>> {
    Ok(engine.ledger(&filter, None, 100).await?.items)
}

fn partner(name: &str) -> LedgerFilter {
    LedgerFilter {
        partner: Some(name.to_owned()),
        ..LedgerFilter::default()
    }
}

#[tokio::test]
async fn deliveries_land_with_their_step_and_events_update_them() -> anyhow::Result<()> {
    on_every_database(|url| async move {
        let engine = engine(&url, false, Arc::default()).await?;
        let id = run(&engine, DELIVER, InstanceStatus::Completed).await?;
        let rows = all(&engine, LedgerFilter::default()).await?;
        ensure!(rows.len() == 3, "{rows:?}");
        for row in &rows {
            ensure!(row.facts.instance_id.as_ref() == Some(&id));
            ensure!(row.status == gridflow_store::ledger::Status::Delivered && row.head_seq == 1);
            ensure!(row.facts.sha256 == SHA && row.facts.version == "2");
        }
        let vip = all(
            &engine,
            LedgerFilter {
                channel: Some("vip".into()),
                ..LedgerFilter::default()
            },
        )
        .await?;
        ensure!(vip.len() == 2);
        ensure!(
            vip.iter()
                .all(|row| row.delivery_id.starts_with(&format!("{id}:vip:1:")))
        );

        // A download reported twice (the same event id) is one entry; an acknowledgement
        // outranks it.
        let download =
            json!({"channel": "vip", "reference": "pkg-1", "partner": "GC1", "login": "ann"});
        for _ in 0..2 {
            engine
                .deliver_change("partner.downloaded", &download, "evt-1", "poller:partner")
                .await?;
        }
        let ack = json!({"channel": "vip", "reference": "pkg-1", "partner": "GC1", "login": "ann"});
        engine
            .deliver_change("partner.acknowledged", &ack, "evt-2", "poller:partner")
            .await?;
        let gc1 = &all(&engine, partner("GC1")).await?[0];
        ensure!(
            gc1.status == gridflow_store::ledger::Status::Acknowledged && gc1.head_seq == 3,
            "{gc1:?}"
        );
        ensure!(gc1.downloaded_at.is_some() && gc1.acknowledged_at.is_some());
        let detail = engine.delivery(&gc1.delivery_id).await?;
        ensure!(detail.entries[1].detail == json!({"login": "ann"}));
        ensure!(detail.entries[1].origin["event_id"] == "evt-1");
        let gc2 = &all(&engine, partner("GC2")).await?[0];
        ensure!(gc2.head_seq == 1, "the event named GC1 only");

        // The recall takes its recipients from the ledger and withdraws each share once.
        let recall = run(&engine, RECALL, InstanceStatus::Completed).await?;
        let view = engine.instance(&recall).await?;
        ensure!(
            view.output == Some(json!({"recalled": 3})),
            "{:?}",
            view.output
        );
        let recipients = &view.steps["recipients"]
            .output
            .as_ref()
            .context("recipients")?["recipients"];
        ensure!(
            recipients[0]["partner"] == "GC1" && recipients[0]["status"] == "acknowledged",
            "{recipients}"
        );
        let withdrawn = LedgerFilter {
            statuses: vec![gridflow_store::ledger::Status::Withdrawn],
            ..LedgerFilter::default()
        };
        ensure!(all(&engine, withdrawn).await?.len() == 3);
        let gc1 = &all(&engine, partner("GC1")).await?[0];
        ensure!(gc1.head_seq == 4, "one withdrawal entry: {gc1:?}");
        // Nothing is held any more: a second recall finds no one.
        let again = run(&engine, RECALL, InstanceStatus::Completed).await?;
        ensure!(engine.instance(&again).await?.output == Some(json!({"recalled": 0})));

        let report = engine.verify().await?;
        ensure!(report.ok, "{:?}", report.problems);
        check_export(&engine, 3).await?;
        api_and_cli(&url).await
    })
    .await
}

async fn check_export(engine: &Engine, deliveries: usize) -> anyhow::Result<()> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel(64);
    let export = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.export(&AuditFilter::default(), sender).await })
    };
    let mut verifier = ExportVerifier::new(Some(engine.audit_public_key()));
    let mut lines = 0;
    while let Some(line) = receiver.recv().await {
        if line.contains("\"kind\":\"delivery\"") {
            lines += 1;
        }
        verifier.line(line.trim_end().as_bytes());
    }
    export.await??;
    let report = verifier.finish();
    ensure!(report.ok, "{:?}", report.problems);
    ensure!(lines == deliveries, "{lines} delivery lines");
    Ok(())
}

/// The real binary on the same database: the API filters and pages, the catalogue lists
/// `ledger.recipients`, and the CLI prints the ledger.
async fn api_and_cli(url: &str) -> anyhow::Result<()> {
    let server = Server::start(url)?;
    let page = server
        .get("/ledger?asset=a-1&version=2&channel=vip")
        .await?;
    ensure!(page["items"].as_array().map(Vec::len) == Some(2), "{page}");
    let page = server
        .get("/ledger?partner=GC3&status=withdrawn,delivered")
        .await?;
    ensure!(page["items"][0]["reference"] == "post-1", "{page}");
    let first = server.get("/ledger?limit=2").await?;
    let cursor = first["next_cursor"].as_str().context("a next page")?;
    let second = server
        .get(&format!("/ledger?limit=2&cursor={cursor}"))
        .await?;
    ensure!(second["items"].as_array().map(Vec::len) == Some(1) && second["next_cursor"].is_null());
    let id = text(&first["items"][0], "delivery_id");
    let one = server.get(&format!("/ledger/{id}")).await?;
    ensure!(
        one["entries"][0]["status"] == "delivered"
            && one["head_seq"] == json!(one["entries"].as_array().map(Vec::len))
    );
    let (status, body) = server
        .call(reqwest::Method::GET, "/ledger?status=lost", None)
        .await?;
    ensure!(
        status == 400 && body.to_string().contains("status"),
        "{status} {body}"
    );
    let (status, _) = server
        .call(reqwest::Method::GET, "/ledger/nope", None)
        .await?;
    ensure!(status == 404);
    let catalogue = server.get("/connectors").await?;
    let ledger = catalogue["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|item| item["name"] == "ledger");
    ensure!(
        ledger.is_some_and(|item| {
            let names: Vec<&Value> = item["actions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|action| &action["name"])
                .collect();
            names == ["deliveries", "recipients"]
        }),
        "{catalogue}"
    );

    let cli = |args: &[&str]| -> anyhow::Result<String> {
        let output = std::process::Command::new(gridflow_binary()?)
            .arg("ledger")
            .args(args)
            .args(["--server", &server.url])
            .env("GRIDFLOW_TOKEN", ADMIN_TOKEN)
            .output()?;
        ensure!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8(output.stdout)?)
    };
    let json: Value = serde_json::from_str(&cli(&["--partner", "GC2", "--json"])?)?;
    ensure!(json["items"][0]["partner"] == "GC2", "{json}");
    let table = cli(&["--asset", "a-1"])?;
    ensure!(
        table.lines().count() == 4 && table.contains("otmm:a-1"),
        "{table}"
    );
    Ok(())
}

#[tokio::test]
async fn an_unreadable_ledger_fails_the_step_for_good() -> anyhow::Result<()> {
    on_every_database(|url| async move {
        let engine = engine(&url, false, Arc::default()).await?;
        let id = run(&engine, BROKEN, InstanceStatus::Failed).await?;
        let view = engine.instance(&id).await?;
        let error = view.steps["share"].error.clone().context("an error")?;
        ensure!(
            error.code == "invalid_ledger" && !error.retryable,
            "{error:?}"
        );
        ensure!(error.message.contains("ledger[0]"), "{}", error.message);
        ensure!(view.steps["share"].attempts == 1);
        ensure!(all(&engine, LedgerFilter::default()).await?.is_empty());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_crash_before_the_commit_writes_each_delivery_once() -> anyhow::Result<()> {
    on_every_database(|url| async move {
        // The first engine's action shares the asset, then the process "dies" before the
        // outcome is committed: its runtime is dropped with the action in flight.
        let delivered = Arc::new(AtomicUsize::new(0));
        let first = {
            let (url, delivered) = (url.clone(), delivered.clone());
            std::thread::spawn(move || -> anyhow::Result<InstanceId> {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?;
                let id = runtime.block_on(async {
                    let engine = engine(&url, true, delivered.clone()).await?;
                    let deployed = engine.deploy(DELIVER).await?;
                    let id = engine
                        .start_instance(
                            &DefinitionId::from(deployed.id.as_str()),
                            None,
                            json!({}),
                            "tester",
                        )
                        .await?;
                    wait_until(Duration::from_secs(30), "the action to run", || async {
                        Ok((delivered.load(Ordering::SeqCst) == 1).then_some(()))
                    })
                    .await?;
                    anyhow::Ok(id)
                })?;
                runtime.shutdown_background();
                Ok(id)
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the first engine panicked"))??
        };
        ensure!(delivered.load(Ordering::SeqCst) == 1);
        // Restarted, the queued action runs again with the same key: one row per partner.
        for _ in 0..2 {
            let engine = engine(&url, false, delivered.clone()).await?;
            wait_for_status(&engine, &first, InstanceStatus::Completed).await?;
            let rows = all(&engine, LedgerFilter::default()).await?;
            ensure!(rows.len() == 3, "{rows:?}");
            ensure!(rows.iter().all(|row| row.head_seq == 1));
            let history = engine.history(&first).await?;
            let successes = history
                .iter()
                .filter(|event| event.event_type == "step_succeeded")
                .count();
            ensure!(successes == 2, "one success per step: {successes}");
            ensure!(engine.verify().await?.ok);
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn ledger_tampering_is_reported_by_verify() -> anyhow::Result<()> {
    on_every_database(|url| async move {
        let engine = engine(&url, false, Arc::default()).await?;
        run(&engine, DELIVER, InstanceStatus::Completed).await?;
        let download =
            json!({"channel": "vip", "reference": "pkg-1", "partner": "GC1", "login": "ann"});
        engine
            .deliver_change("partner.downloaded", &download, "evt-1", "poller:partner")
            .await?;
        ensure!(engine.verify().await?.ok);
        let gc1 = all(&engine, partner("GC1")).await?.remove(0).delivery_id;
        let gc3 = all(&engine, partner("GC3")).await?.remove(0).delivery_id;
        let db = Database::connect(url.as_str()).await?;
        let sql = |statement: String| {
            let db = db.clone();
            async move { db.execute_unprepared(&statement).await.map(|_| ()) }
        };
        let ledger_problems = |engine: Engine| async move {
            let report = engine.verify().await?;
            let found: Vec<String> = report
                .problems
                .iter()
                .filter(|problem| problem.kind == ProblemKind::Ledger)
                .map(|problem| problem.message.clone())
                .collect();
            ensure!(!report.ok);
            anyhow::Ok(found)
        };

        sql(format!(
            "UPDATE ledger_delivery SET partner = 'GC9' WHERE delivery_id = '{gc1}'"
        ))
        .await?;
        let found = ledger_problems(engine.clone()).await?;
        ensure!(
            found
                .iter()
                .any(|message| message.contains(&gc1) && message.contains("partner")),
            "{found:?}"
        );
        sql(format!(
            "UPDATE ledger_delivery SET partner = 'GC1' WHERE delivery_id = '{gc1}'"
        ))
        .await?;
        ensure!(engine.verify().await?.ok, "restored");

        sql(format!(
            "DELETE FROM ledger_entry WHERE delivery_id = '{gc1}' AND seq = 2"
        ))
        .await?;
        let found = ledger_problems(engine.clone()).await?;
        ensure!(
            found
                .iter()
                .any(|message| message.contains(&gc1) && message.contains("removed from the end")),
            "{found:?}"
        );

        sql(format!(
            "DELETE FROM ledger_entry WHERE delivery_id = '{gc3}'"
        ))
        .await?;
        sql(format!(
            "DELETE FROM ledger_delivery WHERE delivery_id = '{gc3}'"
        ))
        .await?;
        let found = ledger_problems(engine.clone()).await?;
        ensure!(
            found
                .iter()
                .any(|message| message.contains("GC3") && message.contains("no such delivery")),
            "{found:?}"
        );
        db.close().await?;
        Ok(())
    })
    .await
}
