//! Process 8, launch coordination (`workflows/launch-coordination.yaml`), end to end under
//! `serve --sandbox`. The Citrus Spritz launch for three partners: cody cannot pass the
//! readiness checklist with an item open (422), then passes it; no brand manager decides
//! the launch within a day, so it escalates to the marketing directors and max approves it
//! (bound to the package's digests). Nothing reaches a partner before the launch instant
//! (9:00 in New York, three days out): an hour before it the package is still held, right
//! after it every partner has it. Green Mountain and Atlantic confirm receipt; Metro Fresh
//! stays silent, is reminded a day later, and a day after that an issue of high severity
//! is opened with it. Asserted: the hub's post, reminder and issue, the ledger (delivered to
//! all three, acknowledged by two), the launch recorded in OTMM, the escalation in history,
//! and replay. The unhappy path: a checklist the content team rejects postpones the launch,
//! and every partner hears it with the reason, while nothing is delivered.

use anyhow::{Context, ensure};
use chrono::{DateTime, Duration, FixedOffset, Timelike, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use gridflow_tests::on_every_database;
use gridflow_tests::process::Sandbox;
use gridflow_tests::process_campaign::{
    acknowledge, ledger_rows, notifications_to, otmm_field, posts_to, state,
};

const GREEN_MOUNTAIN: &str = "GC00912345AB";
const METRO_FRESH: &str = "GC00933311CD";
const ATLANTIC: &str = "GC00955577EF";
const CAN: &str = "f9de6bb3e5c869aaba88bd7d5aded3f91c68c34b";
const CAN_LATEST: &str = "9df3f341f9ddbf5d15998eb65c6c7363936490f9";
const LABEL_FR_CA: &str = "9ed42740029b6e29a4b2cc5caceaf2b5aa27c9c0";
const LAUNCH: &str = "Citrus Spritz summer launch";

/// 9:00 in New York (UTC-5 in winter) on the third day after `now`.
fn launch_instant(now: DateTime<Utc>) -> anyhow::Result<DateTime<FixedOffset>> {
    let new_york = FixedOffset::west_opt(5 * 3600).context("offset")?;
    let local = (now + Duration::days(3)).with_timezone(&new_york);
    local
        .with_hour(9)
        .and_then(|at| at.with_minute(0))
        .and_then(|at| at.with_second(0))
        .and_then(|at| at.with_nanosecond(0))
        .context("9:00")
}

fn launch_input(launch_at: &DateTime<FixedOffset>) -> Value {
    json!({
        "launch": LAUNCH,
        "launch_at": launch_at.to_rfc3339(),
        "timezone": "America/New_York",
        "community_id": "cmty-aurora-partners",
        "assets": [{"asset_id": CAN}, {"asset_id": LABEL_FR_CA}],
        "partners": [
            {"company_id": GREEN_MOUNTAIN, "name": "Green Mountain Beverage"},
            {"company_id": METRO_FRESH, "name": "Metro Fresh Markets"},
            {"company_id": ATLANTIC, "name": "Atlantic Wine & Spirits"},
        ],
    })
}

/// The sandbox's clock now: the time of the last event of `instance`'s history.
async fn sandbox_now(sandbox: &Sandbox, instance: &str) -> anyhow::Result<DateTime<Utc>> {
    let history = sandbox.history(instance).await?;
    let at = history
        .last()
        .and_then(|event| event["at"].as_str())
        .context("empty history")?;
    Ok(DateTime::parse_from_rfc3339(at)?.with_timezone(&Utc))
}

fn checklist(translations_ready: bool) -> Value {
    json!({"files_final": true, "translations_ready": translations_ready, "partners_briefed": true})
}

/// The checklist without its last item: refused.
fn incomplete_checklist() -> Value {
    json!({"files_final": true, "translations_ready": true})
}

async fn launch(sandbox: &Sandbox) -> anyhow::Result<()> {
    sandbox.deploy("launch-coordination").await?;
    let now = Utc::now();
    let launch_at = launch_instant(now)?;
    let id = sandbox
        .start_instance("launch-coordination", launch_input(&launch_at))
        .await?;

    // The checklist answers every item.
    let readiness = sandbox.approval("cody", &id, "readiness").await?;
    // 9:00 at UTC-5 is 9h on New York's clock in winter, 10h in summer.
    ensure!(
        readiness["title"]
            .as_str()
            .is_some_and(|title| title.contains(", 9h local") || title.contains(", 10h local")),
        "{readiness}"
    );
    let approval_id = readiness["id"].as_str().context("approval id")?;
    let (status, body) = sandbox
        .api(
            "cody",
            Method::POST,
            &format!("/approvals/{approval_id}/decision"),
            Some(json!({"decision": "approve", "data": incomplete_checklist()})),
        )
        .await?;
    ensure!(status == 422, "{status} {body}");
    sandbox
        .decide(
            "cody",
            &readiness,
            "approve",
            checklist(true),
            Some("ready"),
        )
        .await?;

    // No brand manager decides within a day: the marketing directors get it.
    let approval = sandbox.approval("bob", &id, "approve_launch").await?;
    ensure!(
        approval["artifacts"].as_array().map(Vec::len) == Some(2),
        "{approval}"
    );
    sandbox.advance("25h").await?;
    let escalated = sandbox.approval("max", &id, "approve_launch").await?;
    sandbox
        .decide("max", &escalated, "approve", json!({}), Some("go"))
        .await?;
    sandbox.wait_step(&id, "launch_instant", "waiting").await?;

    // Held until the launch instant.
    let before = sandbox_now(sandbox, &id).await?;
    let wait = launch_at.with_timezone(&Utc) - before - Duration::hours(1);
    sandbox.advance(&format!("{}s", wait.num_seconds())).await?;
    let view = sandbox.wait_step(&id, "launch_instant", "waiting").await?;
    ensure!(view["steps"]["publish"]["status"] == "pending", "{view}");
    let hub = state(sandbox, "trading_grid")?;
    ensure!(
        posts_to(&hub, METRO_FRESH).is_empty(),
        "published before the launch"
    );
    sandbox.advance("2h").await?;
    let view = sandbox.wait_step(&id, "publish", "succeeded").await?;
    let post_id = view["steps"]["publish"]["output"]["post_id"]
        .as_str()
        .context("post id")?
        .to_owned();
    let published_at = published_at(sandbox, &id).await?;
    ensure!(
        published_at >= launch_at.with_timezone(&Utc),
        "{published_at} before {launch_at}"
    );

    // Two partners confirm; Metro Fresh is reminded, then escalated.
    acknowledge(sandbox, &post_id, "buyer@greenmountain.example", "received").await?;
    acknowledge(sandbox, &post_id, "buyer@atlanticws.example", "accepted").await?;
    ledger_rows(sandbox, GREEN_MOUNTAIN, &id, 2, "acknowledged").await?;
    ledger_rows(sandbox, ATLANTIC, &id, 2, "acknowledged").await?;
    sandbox.advance("25h").await?;
    sandbox.wait_step(&id, "grace", "waiting").await?;
    let hub = state(sandbox, "trading_grid")?;
    let reminders = notifications_to(&hub, &[METRO_FRESH]);
    ensure!(
        reminders.len() == 1 && reminders[0]["post_id"] == post_id.as_str(),
        "{reminders:?}"
    );
    sandbox.advance("25h").await?;
    let done = sandbox.wait_status(&id, "completed").await?;

    assert_outcome(sandbox, &id, &post_id, &done).await?;
    let history = sandbox.history(&id).await?;
    ensure!(
        history
            .iter()
            .any(|event| event["type"] == "approval_escalated"),
        "no escalation in history"
    );
    sandbox.assert_replay(&id).await
}

/// When the package was posted: the `step_succeeded` of `publish` in history.
async fn published_at(sandbox: &Sandbox, id: &str) -> anyhow::Result<DateTime<Utc>> {
    let history = sandbox.history(id).await?;
    let at = history
        .iter()
        .find(|event| event["type"] == "step_succeeded" && event["data"]["step"] == "publish")
        .and_then(|event| event["at"].as_str())
        .context("publish never succeeded")?;
    Ok(DateTime::parse_from_rfc3339(at)?.with_timezone(&Utc))
}

async fn assert_outcome(
    sandbox: &Sandbox,
    id: &str,
    post_id: &str,
    done: &Value,
) -> anyhow::Result<()> {
    let output = &done["output"];
    ensure!(output["decision"] == "approved", "{output}");
    ensure!(
        output["escalated"].as_array().map(Vec::len) == Some(1),
        "{output}"
    );
    let mut confirmed: Vec<&str> = output["confirmed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    confirmed.sort_unstable();
    ensure!(confirmed == [GREEN_MOUNTAIN, ATLANTIC], "{output}");

    let hub = state(sandbox, "trading_grid")?;
    let post = &hub["posts"][post_id];
    ensure!(
        post["recipients"] == json!([GREEN_MOUNTAIN, METRO_FRESH, ATLANTIC]),
        "{post}"
    );
    ensure!(
        post["documents"].as_array().map(Vec::len) == Some(2),
        "{post}"
    );
    let issue_id = output["escalated"][0].as_str().context("issue id")?;
    let issue = &hub["issues"][issue_id];
    ensure!(issue["partner_company_id"] == METRO_FRESH, "{issue}");
    ensure!(issue["severity"] == "high", "{issue}");
    ensure!(issue["related"]["post_id"] == post_id, "{issue}");
    ensure!(notifications_to(&hub, &[GREEN_MOUNTAIN]).is_empty());
    ensure!(notifications_to(&hub, &[ATLANTIC]).is_empty());

    // Delivered to all three, the same digests everywhere; Metro Fresh's not acknowledged.
    let silent = ledger_rows(sandbox, METRO_FRESH, id, 2, "delivered").await?;
    let documents = post["documents"].as_array().context("documents")?;
    for row in &silent {
        ensure!(row["reference"] == post_id, "{row}");
        ensure!(
            documents
                .iter()
                .any(|document| document["sha256"] == row["sha256"]),
            "{row}"
        );
    }
    let otmm = state(sandbox, "otmm")?;
    for asset in [CAN_LATEST, LABEL_FR_CA] {
        let launch = otmm_field(&otmm, asset, "CUSTOM.FIELD.LAUNCH").unwrap_or_default();
        ensure!(launch.starts_with(LAUNCH), "{asset}: {launch:?}");
    }
    Ok(())
}

/// The content team rejects the checklist: the launch is postponed, every partner hears
/// why, and nothing is delivered.
async fn postponed(sandbox: &Sandbox) -> anyhow::Result<()> {
    sandbox.deploy("launch-coordination").await?;
    let launch_at = launch_instant(Utc::now())?;
    let id = sandbox
        .start_instance("launch-coordination", launch_input(&launch_at))
        .await?;
    let readiness = sandbox.approval("cody", &id, "readiness").await?;
    let reason = "the fr-CA label is still in translation";
    sandbox
        .decide("cody", &readiness, "reject", checklist(false), Some(reason))
        .await?;
    let done = sandbox.wait_status(&id, "completed").await?;
    ensure!(done["output"]["post_id"].is_null(), "{done}");
    ensure!(done["steps"]["publish"]["status"] == "skipped", "{done}");
    let hub = state(sandbox, "trading_grid")?;
    let notices = notifications_to(&hub, &[GREEN_MOUNTAIN, METRO_FRESH, ATLANTIC]);
    ensure!(notices.len() == 1, "{notices:?}");
    ensure!(
        notices[0]["message"]
            .as_str()
            .is_some_and(|message| message.contains(reason)),
        "{notices:?}"
    );
    for partner in [GREEN_MOUNTAIN, METRO_FRESH, ATLANTIC] {
        ensure!(
            posts_to(&hub, partner)
                .iter()
                .all(|post| post["correlation_id"] != id.as_str())
        );
        let rows = sandbox.ledger(&format!("?partner={partner}")).await?;
        ensure!(
            rows.iter().all(|row| row["instance_id"] != id.as_str()),
            "{rows:?}"
        );
    }
    sandbox.assert_replay(&id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_launch_package_reaches_every_partner_at_the_launch_instant() {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        let outcome = launch(&sandbox).await;
        let stopped = sandbox.stop().await;
        outcome.and(stopped)
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_that_is_not_ready_is_postponed_and_every_partner_hears_why() {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        let outcome = postponed(&sandbox).await;
        let stopped = sandbox.stop().await;
        outcome.and(stopped)
    })
    .await
    .unwrap();
}
