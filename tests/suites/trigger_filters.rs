//! Trigger filters on the real binary, on every backend: two definitions triggered by the
//! same event, one with `when: "${event.created_by != 'gridflow'}"`, and a third whose
//! filter fails on these events. Signed webhooks start exactly the instances whose filter
//! holds; a filtered-out event and a failing filter start nothing, each counted per
//! definition in `/metrics`, the failure logged with its definition and trigger index.
//! Every started instance completes and replays to its stored state. A poller's changes
//! (`deliver_change`) go through the same filters.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use gridflow_core::webhook::{EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature};
use gridflow_core::{InstanceId, InstanceStatus};
use gridflow_runtime::{EngineOptions, SystemClock, TriggerFilterCounts};
use gridflow_tests::{
    Body, Server, assert_replay_matches, engine_on, on_every_database, wait_for_status, wait_until,
};

const SECRET: &str = "partner-hub-webhook-secret";

/// Every issue opened on the partner hub.
const EVERY_ISSUE: &str = r#"
id: every-issue
triggers:
  - event: partner.issue_opened
    input: {issue: "${event.issue}"}
steps:
  - id: note
    action: core.echo
    with: {issue: "${input.issue}"}
"#;

/// Issues opened by partners, not by our own workflows.
const PARTNER_ISSUE: &str = r#"
id: partner-issue
triggers:
  - event: partner.issue_opened
    when: "${event.created_by != 'gridflow'}"
    input: {issue: "${event.issue}"}
steps:
  - id: note
    action: core.echo
    with: {issue: "${input.issue}"}
"#;

/// A filter over a field these events lack: it fails at run time.
const LABELLED_ISSUE: &str = r#"
id: labelled-issue
triggers:
  - event: partner.issue_opened
    when: "${size(event.labels) > 0}"
steps:
  - id: note
    action: core.noop
"#;

/// POSTs a signed `partner.issue_opened` event; returns the instances it started.
async fn send(
    server: &Server,
    id: &str,
    issue: &str,
    created_by: &str,
) -> anyhow::Result<Vec<String>> {
    let body = json!({"type": "issue_opened", "id": id, "issue": issue, "created_by": created_by})
        .to_string();
    let now = chrono::Utc::now().timestamp();
    let answer = reqwest::Client::new()
        .post(format!("{}/api/v1/events/partner", server.url))
        .header(TIMESTAMP_HEADER, now.to_string())
        .header(
            SIGNATURE_HEADER,
            signature(SECRET.as_bytes(), now, body.as_bytes()),
        )
        .header(EVENT_ID_HEADER, id)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = answer.status().as_u16();
    let text = answer.text().await?;
    ensure!(status == 202, "event {id}: {status} {text}");
    let outcome: Value = serde_json::from_str(&text)?;
    Ok(outcome["started"]
        .as_array()
        .context("started")?
        .iter()
        .filter_map(|id| id.as_str().map(str::to_owned))
        .collect())
}

/// `(instance id, its input's issue)` of every instance of `definition`, by issue.
async fn instances_of(server: &Server, definition: &str) -> anyhow::Result<Vec<(String, String)>> {
    let listed = server
        .get(&format!("/instances?definition={definition}&view=summary"))
        .await?;
    let mut instances: Vec<(String, String)> = listed["items"]
        .as_array()
        .context("items")?
        .iter()
        .map(|item| {
            (
                item["id"].as_str().unwrap_or_default().to_owned(),
                item["input"]["issue"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    instances.sort_by(|left, right| left.1.cmp(&right.1));
    Ok(instances)
}

/// The value of the `/metrics` sample `name{definition="<definition>"}`, if listed.
fn sample(metrics: &str, name: &str, definition: &str) -> Option<u64> {
    let prefix = format!("{name}{{definition=\"{definition}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
}

async fn filtered_events_start_nothing(database_url: &str) -> anyhow::Result<()> {
    let server = Server::start_captured(
        database_url,
        &[],
        &[("GRIDFLOW_EVENT_SECRET_PARTNER", SECRET)],
    )?;
    for definition in [EVERY_ISSUE, PARTNER_ISSUE, LABELLED_ISSUE] {
        server
            .post("/definitions", Body::Text(definition.to_owned()))
            .await?;
    }

    // Opened by a partner: both plain and filtered definitions start.
    let from_partner = send(&server, "evt-1", "ISS-1", "partner-7").await?;
    // Opened by one of our workflows: only the unfiltered definition starts.
    let from_us = send(&server, "evt-2", "ISS-2", "gridflow").await?;
    ensure!(from_partner.len() == 2, "{from_partner:?}");
    ensure!(from_us.len() == 1, "{from_us:?}");

    let every = instances_of(&server, "every-issue").await?;
    let partner = instances_of(&server, "partner-issue").await?;
    let labelled = instances_of(&server, "labelled-issue").await?;
    ensure!(
        every
            .iter()
            .map(|(_, issue)| issue.as_str())
            .collect::<Vec<_>>()
            == ["ISS-1", "ISS-2"],
        "{every:?}"
    );
    ensure!(
        partner
            .iter()
            .map(|(_, issue)| issue.as_str())
            .collect::<Vec<_>>()
            == ["ISS-1"],
        "{partner:?}"
    );
    ensure!(labelled.is_empty(), "{labelled:?}");
    let mut started: Vec<&String> = from_partner.iter().chain(&from_us).collect();
    started.sort();
    let mut listed: Vec<&String> = every.iter().chain(&partner).map(|(id, _)| id).collect();
    listed.sort();
    ensure!(started == listed, "{started:?} vs {listed:?}");
    ensure!(from_us == [every[1].0.clone()], "{from_us:?}");

    // The event reached each started instance, which completes and replays.
    for id in &listed {
        let instance = wait_until(
            Duration::from_secs(20),
            "the instance completes",
            || async {
                let instance = server.get(&format!("/instances/{id}")).await?;
                Ok((instance["status"] == "completed").then_some(instance))
            },
        )
        .await?;
        ensure!(
            instance["steps"]["note"]["output"]["issue"] == instance["input"]["issue"],
            "{instance}"
        );
        let replay = server.get(&format!("/instances/{id}/replay")).await?;
        ensure!(replay["matches_stored"] == true, "{id}: {replay}");
    }

    let metrics = reqwest::get(format!("{}/metrics", server.url))
        .await?
        .text()
        .await?;
    let filtered = "gridflow_trigger_events_filtered_total";
    let failed = "gridflow_trigger_filter_errors_total";
    ensure!(
        sample(&metrics, filtered, "partner-issue") == Some(1),
        "{metrics}"
    );
    ensure!(
        sample(&metrics, failed, "partner-issue") == Some(0),
        "{metrics}"
    );
    ensure!(
        sample(&metrics, failed, "labelled-issue") == Some(2),
        "{metrics}"
    );
    ensure!(
        sample(&metrics, filtered, "labelled-issue") == Some(0),
        "{metrics}"
    );
    ensure!(
        sample(&metrics, filtered, "every-issue").is_none(),
        "{metrics}"
    );

    // Each failure is logged with the definition and the trigger's index.
    let logged = server
        .output()
        .iter()
        .filter(|(_, line)| {
            line.contains("trigger filter failed")
                && line.contains("labelled-issue")
                && line.contains("trigger=0")
        })
        .count();
    ensure!(logged == 2, "{:#?}", server.output());
    Ok(())
}

#[tokio::test]
async fn a_filtered_trigger_starts_only_the_instances_whose_when_holds_and_counts_the_rest() {
    on_every_database(|url| async move { filtered_events_start_nothing(&url).await })
        .await
        .unwrap();
}

/// A poller's changes pass the same filters: a change a filter rejects starts nothing and
/// is counted; one it admits starts its instance once, however often it is delivered.
async fn changes_pass_the_same_filters(database_url: &str) -> anyhow::Result<()> {
    let engine = engine_on(
        database_url,
        Arc::new(SystemClock),
        EngineOptions::default(),
    )
    .await?;
    engine.deploy(PARTNER_ISSUE).await?;
    engine.deploy(LABELLED_ISSUE).await?;
    let event = |created_by: &str| json!({"issue": "ISS-9", "created_by": created_by});
    let name = "partner.issue_opened";
    let ours = engine
        .deliver_change(name, &event("gridflow"), "chg-1", "poller:partner")
        .await?;
    ensure!(ours.started.is_empty(), "{ours:?}");
    let theirs = engine
        .deliver_change(name, &event("partner-3"), "chg-2", "poller:partner")
        .await?;
    ensure!(theirs.started.len() == 1, "{theirs:?}");
    let again = engine
        .deliver_change(name, &event("partner-3"), "chg-2", "poller:partner")
        .await?;
    ensure!(again.started.is_empty(), "{again:?}");
    let started: &InstanceId = &theirs.started[0];
    wait_for_status(&engine, started, InstanceStatus::Completed).await?;
    assert_replay_matches(&engine, started).await?;
    ensure!(
        engine.trigger_filter_counts()
            == [
                TriggerFilterCounts {
                    definition: "labelled-issue".to_owned(),
                    filtered: 0,
                    failed: 3,
                },
                TriggerFilterCounts {
                    definition: "partner-issue".to_owned(),
                    filtered: 1,
                    failed: 0,
                },
            ],
        "{:?}",
        engine.trigger_filter_counts()
    );
    Ok(())
}

#[tokio::test]
async fn a_pollers_changes_pass_the_same_trigger_filters() {
    on_every_database(|url| async move { changes_pass_the_same_filters(&url).await })
        .await
        .unwrap();
}
