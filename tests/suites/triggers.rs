//! Cron triggers in-process, on every backend, with a manual clock: ticks fire once, catch-up
//! after downtime follows each trigger's policy, overlap policies hold, and only the node
//! holding the cron lease fires. Webhook events are delivered once per event id, even
//! when a node crashed in the middle of a delivery.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use chrono::{DateTime, Utc};

use gridflow_connectors::Registry;
use gridflow_core::{DefinitionId, InstanceId, InstanceStatus};
use gridflow_runtime::{Engine, EngineOptions, ManualClock, Scheduler, SchedulerOptions};
use gridflow_store::sql::{SqlOptions, SqlStore};
use gridflow_store::{EventClaim, WebhookStore};
use gridflow_tests::{engine_on, on_every_database, wait_until};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|instant| instant.with_timezone(&Utc))
        .unwrap_or(DateTime::UNIX_EPOCH)
}

fn scheduler(engine: &Engine, node: &str) -> Scheduler {
    Scheduler::new(
        engine.clone(),
        SchedulerOptions {
            node: node.to_owned(),
            lease_duration: Duration::from_secs(90),
            poll_interval: Duration::from_secs(1),
            grace: Duration::from_secs(60),
        },
    )
}

/// The actor of each instance's `instance_started` event, by instance.
async fn started_by(engine: &Engine, instances: &[InstanceId]) -> anyhow::Result<Vec<String>> {
    let mut actors = Vec::new();
    for instance in instances {
        let history = engine.history(instance).await?;
        let first = history.first().context("an instance has a history")?;
        ensure!(first.event_type == "instance_started", "{first:?}");
        actors.push(first.actor.clone());
    }
    Ok(actors)
}

const CATCH_UP: &str = r#"
id: catch-up
triggers:
  - cron: "0 0 * * * *"
    catch_up: none
    overlap: allow
  - cron: "0 0 * * * *"
    catch_up: last
    overlap: allow
  - cron: "0 0 * * * *"
    catch_up: all
    overlap: allow
    input: {tick: "${event.tick_at}"}
steps:
  - id: only
    action: core.noop
"#;

async fn catch_up_follows_each_policy(url: &str) -> anyhow::Result<()> {
    let clock = Arc::new(ManualClock::new(at("2026-05-01T09:00:30Z")));
    let engine = engine_on(url, clock.clone(), EngineOptions::default()).await?;
    engine.deploy(CATCH_UP).await?;
    let node = scheduler(&engine, "node-a");

    // Nothing is due between the deploy and the next whole hour.
    let pass = node.tick().await?;
    ensure!(pass.leader && pass.started.is_empty(), "{pass:?}");

    // 10:00 is on time for every trigger.
    clock.set(at("2026-05-01T10:00:00.500Z"));
    let pass = node.tick().await?;
    ensure!(pass.started.len() == 3, "{pass:?}");
    ensure!(
        started_by(&engine, &pass.started).await?
            == [
                "trigger:catch-up/0@2026-05-01T10:00:00Z",
                "trigger:catch-up/1@2026-05-01T10:00:00Z",
                "trigger:catch-up/2@2026-05-01T10:00:00Z",
            ]
    );
    // A second pass at the same instant fires nothing again.
    ensure!(node.tick().await?.started.is_empty());

    // Down from 10:00 to 13:00:00.5: 11:00 and 12:00 were missed, 13:00 is on time.
    clock.set(at("2026-05-01T13:00:00.500Z"));
    let pass = node.tick().await?;
    let actors = started_by(&engine, &pass.started).await?;
    ensure!(
        actors
            == [
                "trigger:catch-up/0@2026-05-01T13:00:00Z",
                "trigger:catch-up/1@2026-05-01T12:00:00Z",
                "trigger:catch-up/1@2026-05-01T13:00:00Z",
                "trigger:catch-up/2@2026-05-01T11:00:00Z",
                "trigger:catch-up/2@2026-05-01T12:00:00Z",
                "trigger:catch-up/2@2026-05-01T13:00:00Z",
            ],
        "{actors:#?}"
    );
    ensure!(
        pass.dropped == 3,
        "none drops two, last drops one: {pass:?}"
    );
    // The tick is in scope as `event.tick_at` of the input template.
    let last = engine
        .instance(pass.started.last().context("started")?)
        .await?;
    ensure!(
        last.input == serde_json::json!({"tick": "2026-05-01T13:00:00Z"}),
        "{:?}",
        last.input
    );

    // Down again with nothing on time: `none` fires nothing but moves past the missed
    // ticks, so they are not planned again.
    clock.set(at("2026-05-01T15:30:00Z"));
    let pass = node.tick().await?;
    ensure!(
        started_by(&engine, &pass.started).await?
            == [
                "trigger:catch-up/1@2026-05-01T15:00:00Z",
                "trigger:catch-up/2@2026-05-01T14:00:00Z",
                "trigger:catch-up/2@2026-05-01T15:00:00Z",
            ]
    );
    ensure!(node.tick().await?.started.is_empty());
    Ok(())
}

#[tokio::test]
async fn catch_up_after_downtime_follows_each_triggers_policy() {
    on_every_database(|url| async move { catch_up_follows_each_policy(&url).await })
        .await
        .unwrap();
}

const OVERLAP: &str = r#"
id: overlap
triggers:
  - cron: "0 * * * * *"
    overlap: skip
  - cron: "0 * * * * *"
    overlap: buffer_one
steps:
  - id: nap
    sleep: 90s
"#;

async fn overlap_policies_hold(url: &str) -> anyhow::Result<()> {
    let clock = Arc::new(ManualClock::new(at("2026-05-01T09:59:30Z")));
    let engine = engine_on(url, clock.clone(), EngineOptions::default()).await?;
    engine.deploy(OVERLAP).await?;
    let node = scheduler(&engine, "node-a");
    let mut started: BTreeMap<String, InstanceId> = BTreeMap::new();
    let record = |engine: Engine, pass: gridflow_runtime::Pass| async move {
        let actors = started_by(&engine, &pass.started).await?;
        anyhow::Ok(actors.into_iter().zip(pass.started).collect::<Vec<_>>())
    };

    // 10:00: both triggers start an instance that sleeps until 10:01:30.5.
    clock.set(at("2026-05-01T10:00:00.500Z"));
    let pass = node.tick().await?;
    started.extend(record(engine.clone(), pass).await?);
    ensure!(started.len() == 2, "{started:?}");

    // 10:01: both still run: `skip` skips the tick, `buffer_one` remembers it.
    clock.set(at("2026-05-01T10:01:00.500Z"));
    let pass = node.tick().await?;
    ensure!(
        pass.started.is_empty() && pass.skipped == 1 && pass.buffered == 1,
        "{pass:?}"
    );

    // 10:02: the sleeps are over; the instances complete when the engine fires timers.
    clock.set(at("2026-05-01T10:02:00.500Z"));
    engine.tick().await?;
    for instance in started.values() {
        gridflow_tests::wait_until(
            Duration::from_secs(30),
            "the first instances to complete",
            || async {
                Ok(
                    (engine.instance(instance).await?.status == InstanceStatus::Completed)
                        .then_some(()),
                )
            },
        )
        .await?;
    }
    let pass = node.tick().await?;
    let actors = started_by(&engine, &pass.started).await?;
    // `skip` starts the 10:02 tick; `buffer_one` starts the remembered 10:01 tick first,
    // which then runs, so its 10:02 tick is remembered in turn.
    ensure!(
        actors
            == [
                "trigger:overlap/0@2026-05-01T10:02:00Z",
                "trigger:overlap/1@2026-05-01T10:01:00Z",
            ],
        "{actors:?}"
    );
    ensure!(pass.buffered == 1 && pass.skipped == 0, "{pass:?}");
    Ok(())
}

#[tokio::test]
async fn overlap_skip_and_buffer_one_hold_while_an_instance_runs() {
    on_every_database(|url| async move { overlap_policies_hold(&url).await })
        .await
        .unwrap();
}

const EVERY_MINUTE: &str = r#"
id: every-minute
triggers:
  - cron: "0 * * * * *"
    overlap: allow
steps:
  - id: only
    action: core.noop
"#;

async fn one_node_fires(url: &str) -> anyhow::Result<()> {
    let clock = Arc::new(ManualClock::new(at("2026-05-01T09:59:30Z")));
    let engine = engine_on(url, clock.clone(), EngineOptions::default()).await?;
    engine.deploy(EVERY_MINUTE).await?;
    let first = scheduler(&engine, "node-a");
    let second = scheduler(&engine, "node-b");

    clock.set(at("2026-05-01T10:00:00.500Z"));
    let (one, two) = tokio::join!(first.tick(), second.tick());
    let (one, two) = (one?, two?);
    ensure!(
        one.leader != two.leader,
        "exactly one leader: {one:?} {two:?}"
    );
    ensure!(
        one.started.len() + two.started.len() == 1,
        "{one:?} {two:?}"
    );
    let (leader, follower) = if one.leader {
        (first, second)
    } else {
        (second, first)
    };

    // The leader renews its lease on every pass; the follower fires nothing.
    clock.set(at("2026-05-01T10:01:00.500Z"));
    ensure!(!follower.tick().await?.leader);
    ensure!(leader.tick().await?.started.len() == 1);

    // The leader dies (stops renewing). Until its lease expires nobody fires; then the
    // follower takes over and fires the ticks since the last one, each once.
    clock.set(at("2026-05-01T10:02:00.500Z"));
    ensure!(!follower.tick().await?.leader);
    clock.set(at("2026-05-01T10:03:00.500Z"));
    let pass = follower.tick().await?;
    ensure!(pass.leader);
    let actors = started_by(&engine, &pass.started).await?;
    ensure!(
        actors
            == [
                "trigger:every-minute/0@2026-05-01T10:02:00Z",
                "trigger:every-minute/0@2026-05-01T10:03:00Z",
            ],
        "{actors:?}"
    );
    let all = engine
        .list_instances(
            &gridflow_store::InstanceFilter {
                definition: Some(DefinitionId::from("every-minute")),
                ..Default::default()
            },
            None,
            100,
        )
        .await?;
    ensure!(all.items.len() == 4, "one instance per tick");
    // A node that gives its lease up lets the other take over at once.
    follower.release().await?;
    ensure!(leader.tick().await?.leader);
    Ok(())
}

#[tokio::test]
async fn only_the_lease_holder_fires_and_another_node_takes_over_when_it_expires() {
    on_every_database(|url| async move { one_node_fires(&url).await })
        .await
        .unwrap();
}

const ON_PARTNER: &str = r#"
id: on-partner
triggers:
  - event: partner.created
    input: {partner: "${event.partner}"}
steps:
  - id: only
    action: core.noop
"#;

/// Waits twice for the same signal, so that a signal delivered again moves it on.
const TWO_WAITS: &str = r#"
id: two-waits
steps:
  - id: first
    wait: {signal: partner.created, timeout: 7d}
  - id: second
    needs: [first]
    wait: {signal: partner.created, timeout: 7d}
"#;

async fn webhook_taken_over_after_a_crash_is_not_delivered_twice(url: &str) -> anyhow::Result<()> {
    let clock = Arc::new(ManualClock::new(at("2026-12-07T09:00:00Z")));
    let store = Arc::new(SqlStore::connect(url, SqlOptions::default()).await?);
    let engine = Engine::start(
        store.clone(),
        Arc::new(Registry::with_builtin()),
        clock.clone(),
        EngineOptions::default(),
    )
    .await?;
    engine.deploy(TWO_WAITS).await?;
    let waiting = engine
        .start_instance(
            &DefinitionId::from("two-waits"),
            None,
            serde_json::json!({}),
            "ana",
        )
        .await?;
    wait_until(Duration::from_secs(10), "two-waits waits", || {
        let engine = engine.clone();
        let waiting = waiting.clone();
        async move {
            let state = engine.instance(&waiting).await?;
            Ok((state.status == InstanceStatus::Waiting).then_some(()))
        }
    })
    .await?;
    engine.deploy(ON_PARTNER).await?;
    let event = serde_json::json!({"type": "created", "id": "p-1", "partner": "acme"});

    // A node claimed the event, delivered it (started on-partner, signalled two-waits) and
    // crashed before marking it delivered. The delivery it did is the one `deliver_change`
    // does with the same id: the same derived instance id, the same signal.
    let now = engine.now();
    let claim = store
        .claim_webhook_event("partner", "p-1", now, now - chrono::Duration::seconds(60))
        .await?;
    ensure!(claim == EventClaim::New, "{claim:?}");
    let crashed = engine
        .deliver_change("partner.created", &event, "p-1", "event:partner")
        .await?;
    ensure!(crashed.started.len() == 1, "{crashed:?}");
    ensure!(crashed.signalled == vec![waiting.clone()], "{crashed:?}");

    // The sender retries at once: the claim is fresh, so it is in flight (409).
    let retry = engine
        .deliver_webhook("partner", "p-1", "partner.created", &event, "event:partner")
        .await;
    ensure!(
        matches!(retry, Err(gridflow_runtime::Error::Conflict(_))),
        "{retry:?}"
    );
    // A minute later the claim is stale: the retry takes it over and delivers idempotently.
    clock.advance(Duration::from_secs(61));
    let taken_over = engine
        .deliver_webhook("partner", "p-1", "partner.created", &event, "event:partner")
        .await?;
    ensure!(!taken_over.duplicate, "{taken_over:?}");
    ensure!(taken_over.outcome.started.is_empty(), "{taken_over:?}");
    ensure!(taken_over.outcome.signalled.is_empty(), "{taken_over:?}");
    // And every later copy is a duplicate.
    let again = engine
        .deliver_webhook("partner", "p-1", "partner.created", &event, "event:partner")
        .await?;
    ensure!(again.duplicate, "{again:?}");

    let started = engine
        .list_instances(
            &gridflow_store::InstanceFilter {
                status: None,
                definition: Some(DefinitionId::from("on-partner")),
            },
            None,
            10,
        )
        .await?;
    ensure!(
        started.items.len() == 1,
        "one instance of on-partner: {started:?}"
    );
    let history = engine.history(&waiting).await?;
    let signals = history
        .iter()
        .filter(|recorded| recorded.event_type == "signal_received")
        .count();
    ensure!(signals == 1, "two-waits got the signal once: {history:?}");
    let state = engine.instance(&waiting).await?;
    ensure!(state.status == InstanceStatus::Waiting, "{state:?}");
    Ok(())
}

#[tokio::test]
async fn webhook_delivery_taken_over_after_a_crash_starts_and_signals_nothing_twice() {
    on_every_database(|url| async move {
        webhook_taken_over_after_a_crash_is_not_delivered_twice(&url).await
    })
    .await
    .unwrap();
}
