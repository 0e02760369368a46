//! Rights windows as durable timers, in-process on every backend with a manual clock: a
//! window observed in an action's output (an in-test connector that declares
//! `effects.rights`) or reported by a connector's event starts a `rights` trigger's
//! definition once, when `now >= valid_until - expiring_within`, with the window in
//! `event`; a restarted engine starts nothing again; a changed window fires for its new
//! end only; an unknown end never fires; the spawned timer wakes when a window is observed;
//! one node fires at a time.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use gridflow_connectors::connector::{ActionSpec, EventEffects, EventSpec, Invocation};
use gridflow_connectors::effects::{Effects, ObservedRights};
use gridflow_connectors::{Connector, Registry};
use gridflow_core::{DefinitionId, InstanceId, InstanceStatus};
use gridflow_runtime::{Engine, EngineOptions, ManualClock, RightsOptions, RightsTimer};
use gridflow_store::sql::{SqlOptions, SqlStore};
use gridflow_store::{FiringState, InstanceFilter, RightsStore};
use gridflow_tests::{on_every_database, wait_for_status, wait_until};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|instant| instant.with_timezone(&Utc))
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// A DAM that reports the window it is asked to see (`dam.see`), a broken report
/// (`dam.see_garbage`), and licence changes as events (`dam.licence_changed`).
struct Dam {
    actions: Vec<ActionSpec>,
    events: Vec<EventSpec>,
}

impl Dam {
    fn new() -> Self {
        let rights = Effects {
            rights: true,
            ..Effects::default()
        };
        let optional = json!({"type": ["string", "null"]});
        let see = ActionSpec {
            name: "see".to_owned(),
            description: "Reports the rights window of an asset.".to_owned(),
            arguments: json!({"type": "object", "required": ["asset_id"],
                "properties": {"asset_id": {"type": "string"}, "valid_until": optional},
                "additionalProperties": false}),
            output: json!({"type": "object",
                "properties": {"observed_rights": ObservedRights::array_schema()}}),
            effects: Effects::default(),
        }
        .with_effects(rights.clone());
        let garbage = ActionSpec {
            name: "see_garbage".to_owned(),
            description: "Reports a window without its asset.".to_owned(),
            arguments: json!({"type": "object"}),
            output: json!({"type": "object"}),
            effects: Effects::default(),
        }
        .with_effects(rights.clone());
        let changed = EventSpec {
            name: "licence_changed".to_owned(),
            description: "An asset's licence changed.".to_owned(),
            payload: json!({"type": "object"}),
            effects: Effects::default(),
        }
        .with_effects(rights);
        Self {
            actions: vec![see, garbage],
            events: vec![changed],
        }
    }
}

fn observed(asset_id: &Value, valid_until: &Value) -> Value {
    json!([{"system": "dam", "asset_id": asset_id, "valid_from": "2026-01-01T00:00:00Z",
            "valid_until": valid_until}])
}

#[async_trait]
impl Connector for Dam {
    fn name(&self) -> &str {
        "dam"
    }

    fn actions(&self) -> &[ActionSpec] {
        &self.actions
    }

    fn events(&self) -> &[EventSpec] {
        &self.events
    }

    async fn invoke(&self, invocation: Invocation) -> gridflow_connectors::Result<Value> {
        let arguments = &invocation.arguments;
        Ok(match invocation.action.as_str() {
            "see" => json!({"observed_rights": observed(
                &arguments["asset_id"],
                arguments.get("valid_until").unwrap_or(&Value::Null)
            )}),
            _ => json!({"observed_rights": [{"system": "dam"}]}),
        })
    }

    fn event_effects(&self, event: &str, payload: &Value) -> EventEffects {
        if event != "licence_changed" {
            return EventEffects::default();
        }
        let rights = observed(&payload["asset_id"], &payload["valid_until"]);
        EventEffects {
            rights: serde_json::from_value(rights).unwrap_or_default(),
            ..EventEffects::default()
        }
    }
}

async fn engine(url: &str, clock: Arc<ManualClock>) -> anyhow::Result<Engine> {
    let store = SqlStore::connect(url, SqlOptions::default()).await?;
    let mut registry = Registry::with_builtin();
    registry.register(Arc::new(Dam::new()));
    Ok(Engine::start(
        Arc::new(store),
        Arc::new(registry),
        clock,
        EngineOptions::default(),
    )
    .await?)
}

fn timer(engine: &Engine, node: &str) -> RightsTimer {
    RightsTimer::new(
        engine.clone(),
        RightsOptions {
            node: node.to_owned(),
            lease_duration: Duration::from_secs(30),
            // Long: a test that passes sees the wake-ups, not the safety net.
            recheck: Duration::from_secs(3600),
            retry: Duration::from_millis(100),
        },
    )
}

const OBSERVE: &str = r#"
id: observe
steps:
  - id: see
    action: dam.see
    with: {asset_id: "${input.asset_id}", valid_until: "${input.valid_until}"}
"#;

const RECALL: &str = r#"
id: recall
triggers:
  - rights: {expiring_within: 7d, system: dam}
    input: {event: "${event}"}
steps:
  - id: only
    action: core.noop
"#;

/// Runs `dam.see` for one asset and waits for it to complete.
async fn see(engine: &Engine, asset: &str, valid_until: Option<&str>) -> anyhow::Result<()> {
    let input = json!({"asset_id": asset, "valid_until": valid_until});
    let instance = engine
        .start_instance(&DefinitionId::from("observe"), None, input, "analyst")
        .await?;
    wait_for_status(engine, &instance, InstanceStatus::Completed).await
}

/// The instances of `recall`, oldest first.
async fn recalls(engine: &Engine) -> anyhow::Result<Vec<InstanceId>> {
    let filter = InstanceFilter {
        definition: Some(DefinitionId::from("recall")),
        ..InstanceFilter::default()
    };
    let page = engine.list_instance_summaries(&filter, None, 100).await?;
    let mut ids: Vec<InstanceId> = page
        .items
        .into_iter()
        .map(|summary| InstanceId::from(summary.id))
        .collect();
    ids.reverse();
    Ok(ids)
}

/// The `event` an instance of `recall` was started with, and the actor that started it.
async fn started_with(engine: &Engine, instance: &InstanceId) -> anyhow::Result<(Value, String)> {
    let view = engine.instance(instance).await?;
    Ok((view.input["event"].clone(), view.started_by))
}

async fn fires_once_per_window_end(url: &str) -> anyhow::Result<()> {
    let clock = Arc::new(ManualClock::new(at("2026-12-01T00:00:00Z")));
    let first = engine(url, clock.clone()).await?;
    first.deploy(OBSERVE).await?;
    first.deploy(RECALL).await?;
    let node = timer(&first, "node-a");

    // a-1 seen by an action, a-2 with an unknown end, a-3 reported by an event.
    see(&first, "a-1", Some("2026-12-31T00:00:00Z")).await?;
    see(&first, "a-2", None).await?;
    first
        .deliver_event(
            "dam.licence_changed",
            &json!({"asset_id": "a-3", "valid_until": "2027-01-10T00:00:00Z"}),
            "event:dam",
        )
        .await?;
    let store = SqlStore::connect(url, SqlOptions::default()).await?;
    let row = store.rights_window("dam", "a-1").await?.context("a-1")?;
    ensure!(
        row.valid_until == Some(at("2026-12-31T00:00:00Z")),
        "{row:?}"
    );
    ensure!(row.seen_at == at("2026-12-01T00:00:00Z"), "{row:?}");

    // Nothing is due yet; the next is a-1's end minus 7 days.
    let pass = node.pass().await?;
    ensure!(pass.started.is_empty() && !pass.leader, "{pass:?}");
    ensure!(
        pass.next_due == Some(at("2026-12-24T00:00:00Z")),
        "{pass:?}"
    );
    clock.set(at("2026-12-23T23:59:59.999999Z"));
    ensure!(node.pass().await?.started.is_empty());

    // Due: the definition starts once, with the window in `event`.
    clock.set(at("2026-12-24T00:00:00Z"));
    let pass = node.pass().await?;
    ensure!(pass.leader && pass.started.len() == 1, "{pass:?}");
    ensure!(
        node.pass().await?.started.is_empty(),
        "a second pass fires nothing"
    );
    let fired = pass.started[0].clone();
    ensure!(recalls(&first).await? == std::slice::from_ref(&fired));
    let (event, actor) = started_with(&first, &fired).await?;
    ensure!(
        event
            == json!({"system": "dam", "asset_id": "a-1", "recipients": [],
                "window": {"valid_from": "2026-01-01T00:00:00Z", "valid_until": "2026-12-31T00:00:00Z"}}),
        "{event}"
    );
    ensure!(
        actor == "trigger:recall/0@rights:dam/a-1@2026-12-31T00:00:00Z",
        "{actor}"
    );
    wait_for_status(&first, &fired, InstanceStatus::Completed).await?;

    // A restarted node on the same database starts nothing again.
    drop(node);
    drop(first);
    let second = engine(url, clock.clone()).await?;
    let node = timer(&second, "node-b");
    ensure!(node.pass().await?.started.is_empty());
    ensure!(recalls(&second).await? == std::slice::from_ref(&fired));

    // A node that died between the start and its record fires the window again: the
    // derived instance id finds the instance, and nothing starts twice.
    let db = sea_orm::Database::connect(url).await?;
    sea_orm::ConnectionTrait::execute_unprepared(&db, "DELETE FROM rights_firing").await?;
    db.close().await?;
    clock.set(at("2026-12-24T00:01:00Z"));
    let pass = node.pass().await?;
    ensure!(pass.started == std::slice::from_ref(&fired), "{pass:?}");
    ensure!(recalls(&second).await? == std::slice::from_ref(&fired));

    // a-1's licence is extended after it fired, a-3's before: each fires at its new end
    // only (a-1 seven days before 2027-01-20, a-3 not at its old end).
    see(&second, "a-1", Some("2027-01-20T00:00:00Z")).await?;
    second
        .deliver_event(
            "dam.licence_changed",
            &json!({"asset_id": "a-3", "valid_until": "2027-02-10T00:00:00Z"}),
            "event:dam",
        )
        .await?;
    let pass = node.pass().await?;
    ensure!(pass.started.is_empty(), "{pass:?}");
    ensure!(
        pass.next_due == Some(at("2027-01-13T00:00:00Z")),
        "{pass:?}"
    );
    clock.set(at("2027-01-13T00:00:00Z"));
    let pass = node.pass().await?;
    ensure!(
        pass.started.len() == 1 && pass.started[0] != fired,
        "{pass:?}"
    );
    let (event, _) = started_with(&second, &pass.started[0]).await?;
    ensure!(event["asset_id"] == "a-1", "{event}");
    ensure!(
        event["window"]["valid_until"] == "2027-01-20T00:00:00Z",
        "{event}"
    );
    ensure!(
        pass.next_due == Some(at("2027-02-03T00:00:00Z")),
        "{pass:?}"
    );

    // A year on: a-3 fires once at its new end; a-2, whose end is unknown, never.
    clock.set(at("2027-12-31T00:00:00Z"));
    let pass = node.pass().await?;
    ensure!(pass.started.len() == 1, "{pass:?}");
    let (event, _) = started_with(&second, &pass.started[0]).await?;
    ensure!(event["asset_id"] == "a-3", "{event}");
    ensure!(
        event["window"]["valid_until"] == "2027-02-10T00:00:00Z",
        "{event}"
    );
    ensure!(pass.next_due.is_none(), "{pass:?}");
    ensure!(node.pass().await?.started.is_empty());
    ensure!(recalls(&second).await?.len() == 3);
    let firings = store.rights_firings(&DefinitionId::from("recall")).await?;
    let ends: Vec<(String, String)> = firings
        .iter()
        .map(|firing| (firing.asset_id.clone(), firing.valid_until.to_rfc3339()))
        .collect();
    ensure!(
        ends == [
            ("a-1".to_owned(), "2026-12-31T00:00:00+00:00".to_owned()),
            ("a-1".to_owned(), "2027-01-20T00:00:00+00:00".to_owned()),
            ("a-3".to_owned(), "2027-02-10T00:00:00+00:00".to_owned()),
        ],
        "{ends:?}"
    );
    ensure!(
        firings
            .iter()
            .all(|firing| firing.state == FiringState::Started)
    );
    store.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rights_window_starts_its_definition_once_per_end() {
    on_every_database(|url| async move { fires_once_per_window_end(&url).await })
        .await
        .unwrap();
}

async fn timer_wakes_on_observed_windows(url: &str) -> anyhow::Result<()> {
    let clock = Arc::new(ManualClock::new(at("2026-12-01T00:00:00Z")));
    let engine = engine(url, clock.clone()).await?;
    engine.deploy(OBSERVE).await?;
    engine.deploy(RECALL).await?;
    let node = timer(&engine, "node-a");
    let task = node.clone().spawn();

    // A window already within 7 days of its end: its commit wakes the timer, which fires
    // it (the timer would otherwise sleep for an hour).
    see(&engine, "b-1", Some("2026-12-04T00:00:00Z")).await?;
    let first = wait_until(Duration::from_secs(30), "b-1 to start recall", || async {
        Ok(recalls(&engine).await?.first().cloned())
    })
    .await?;
    ensure!(started_with(&engine, &first).await?.0["asset_id"] == "b-1");

    // One due later: the clock moves past it and the task is woken.
    see(&engine, "b-2", Some("2026-12-20T00:00:00Z")).await?;
    clock.set(at("2026-12-13T00:00:00Z"));
    node.wake();
    wait_until(Duration::from_secs(30), "b-2 to start recall", || async {
        Ok((recalls(&engine).await?.len() == 2).then_some(()))
    })
    .await?;
    task.abort();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timer_wakes_when_a_window_is_observed() {
    on_every_database(|url| async move { timer_wakes_on_observed_windows(&url).await })
        .await
        .unwrap();
}

const FILTERED: &str = r#"
id: recall
triggers:
  - rights: {expiring_within: 0s}
    when: "${event.asset_id != 'c-2'}"
    input: {event: "${event}"}
steps:
  - id: only
    action: core.noop
"#;

const GARBAGE: &str = r#"
id: garbage
steps:
  - id: see
    action: dam.see_garbage
    with: {}
"#;

async fn filters_and_refusals(url: &str) -> anyhow::Result<()> {
    let clock = Arc::new(ManualClock::new(at("2026-12-01T00:00:00Z")));
    let engine = engine(url, clock.clone()).await?;
    engine.deploy(OBSERVE).await?;
    engine.deploy(FILTERED).await?;
    engine.deploy(GARBAGE).await?;
    let node = timer(&engine, "node-a");

    // The trigger's `when` keeps c-2 from starting, once and for all.
    see(&engine, "c-1", Some("2026-12-02T00:00:00Z")).await?;
    see(&engine, "c-2", Some("2026-12-02T00:00:00Z")).await?;
    clock.set(at("2026-12-02T00:00:00Z"));
    let pass = node.pass().await?;
    ensure!(pass.started.len() == 1 && pass.filtered == 1, "{pass:?}");
    let pass = node.pass().await?;
    ensure!(pass.started.is_empty() && pass.filtered == 0, "{pass:?}");

    // Another node fires nothing while this one holds the lease.
    see(&engine, "c-3", Some("2026-12-02T00:00:00Z")).await?;
    let other = timer(&engine, "node-b").pass().await?;
    ensure!(
        other.waiting_for_lease && other.started.is_empty(),
        "{other:?}"
    );
    ensure!(node.pass().await?.started.len() == 1);

    // An output whose windows do not read fails the step for good, and records nothing.
    let instance = engine
        .start_instance(&DefinitionId::from("garbage"), None, json!({}), "analyst")
        .await?;
    wait_for_status(&engine, &instance, InstanceStatus::Failed).await?;
    let view = engine.instance(&instance).await?;
    let step = view.steps.get("see").context("step see")?;
    let error = step.error.as_ref().context("an error")?;
    ensure!(
        error.code == "invalid_observed_rights" && !error.retryable && step.attempts == 1,
        "{step:?}"
    );
    ensure!(error.message.contains("observed_rights"), "{error:?}");

    // A bad `expiring_within` is refused at deploy, at its path.
    let refused = engine
        .deploy(&FILTERED.replace("expiring_within: 0s", "expiring_within: soonish"))
        .await;
    let message = format!("{:?}", refused.err().context("refused")?);
    ensure!(
        message.contains("triggers[0].rights.expiring_within"),
        "{message}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_windows_and_unreadable_reports_start_nothing() {
    on_every_database(|url| async move { filters_and_refusals(&url).await })
        .await
        .unwrap();
}
