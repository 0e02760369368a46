//! Two `gridflow serve` processes on one PostgreSQL database fire a per-second cron
//! trigger: each tick starts exactly one instance, also when one node is killed and the
//! other takes the cron lease over. Skipped (with a notice) without `DATABASE_URL`.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, ensure};
use chrono::{DateTime, Utc};
use serde_json::Value;

use gridflow_store::test_util::postgres_database;
use gridflow_tests::{Body, Server, wait_until};

const EVERY_SECOND: &str = r#"
id: every-second
triggers:
  - cron: "* * * * * *"
    overlap: allow
steps:
  - id: only
    action: core.noop
"#;

/// The tick of each instance of `every-second`, read from the actor of its
/// `instance_started` event (`trigger:every-second/0@<tick>`).
async fn ticks(server: &Server) -> anyhow::Result<Vec<DateTime<Utc>>> {
    let list = server
        .get("/instances?definition=every-second&limit=500")
        .await?;
    let mut ticks = Vec::new();
    for item in list["items"].as_array().context("items")? {
        let id = item["id"].as_str().context("id")?;
        let history = server.get(&format!("/instances/{id}/history")).await?;
        let first = &history["events"][0];
        ensure!(first["type"] == "instance_started", "{first}");
        let actor = first["actor"].as_str().context("actor")?;
        let tick = actor
            .strip_prefix("trigger:every-second/0@")
            .with_context(|| format!("unexpected actor {actor:?}"))?;
        ticks.push(DateTime::parse_from_rfc3339(tick)?.with_timezone(&Utc));
    }
    ticks.sort();
    Ok(ticks)
}

async fn instance_count(server: &Server) -> anyhow::Result<usize> {
    let list: Value = server
        .get("/instances?definition=every-second&limit=500")
        .await?;
    Ok(list["items"].as_array().map_or(0, Vec::len))
}

async fn two_nodes(url: &str) -> anyhow::Result<()> {
    let settings = |node| {
        [
            ("GRIDFLOW_NODE", node),
            ("GRIDFLOW_CRON_LEASE", "2s"),
            ("GRIDFLOW_CRON_POLL", "100ms"),
        ]
    };
    let first = Server::start_with_env(url, &settings("node-1"))?;
    let second = Server::start_with_env(url, &settings("node-2"))?;
    first
        .post("/definitions", Body::Text(EVERY_SECOND.to_owned()))
        .await?;

    wait_until(Duration::from_secs(60), "four ticks", || async {
        Ok((instance_count(&second).await? >= 4).then_some(()))
    })
    .await?;
    // Kill one node without letting it release the lease. If it held the lease, the
    // other takes over once the lease expires and fires the ticks since the last one.
    first.kill()?;
    let before = instance_count(&second).await?;
    wait_until(Duration::from_secs(60), "four more ticks", || async {
        Ok((instance_count(&second).await? >= before + 4).then_some(()))
    })
    .await?;

    let ticks = ticks(&second).await?;
    let distinct: BTreeSet<_> = ticks.iter().collect();
    ensure!(
        distinct.len() == ticks.len(),
        "a tick started more than one instance: {ticks:?}"
    );
    // Every second between the first and the last tick started an instance, except at
    // most one: a node killed between claiming a tick and starting its instance loses
    // that tick (ticks fire at most once).
    let first_tick = ticks.first().context("ticks")?;
    let last_tick = ticks.last().context("ticks")?;
    let seconds = usize::try_from((*last_tick - *first_tick).num_seconds())? + 1;
    ensure!(
        ticks.len() + 1 >= seconds,
        "{} ticks over {seconds} seconds: {ticks:?}",
        ticks.len()
    );
    Ok(())
}

#[tokio::test]
async fn two_servers_on_one_postgres_start_exactly_one_instance_per_tick() {
    let Some(database) = postgres_database().await else {
        return;
    };
    let outcome = two_nodes(&database.url).await;
    database.drop().await;
    outcome.unwrap();
}
