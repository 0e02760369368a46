//! Process 11, the partner onboarding bundle (`workflows/partner-onboarding.yaml`), end to
//! end under `serve --sandbox`. Harbor Liquors joins the Aurora Springs community in the
//! hub; the hub's `partner.joined` event starts the process (nobody starts it by hand).
//! cara curates the bundle (the approved, unexpired latest versions of the brand's assets
//! in OTMM, bound to their digests); bob completes the onboarding task (a form: a group id
//! outside the library's is refused with 422, then Retailers and the US market); Harbor is
//! added to the Retailers group and gets its bundle with its onboarding tasks. Silent for
//! three days, it is reminded, then acknowledges. Asserted: the group and the post in the
//! hub, each file's digest equal to the DAM's latest version, the reminder, the ledger
//! (delivered and acknowledged), and replay. The unhappy path: a bundle the curator rejects
//! is not sent, and Harbor still gets its welcome with the curator's note.

use anyhow::{Context, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use gridflow_tests::process::Sandbox;
use gridflow_tests::process_campaign::{
    PATIENCE, acknowledge, ledger_rows, notifications_to, partner_call, posts_to, state,
};
use gridflow_tests::{on_every_database, wait_until};

const HARBOR: &str = "GC00977799GH";
const HARBOR_LOGIN: &str = "owner@harborliquors.example";
const COMMUNITY: &str = "cmty-aurora-partners";

/// Harbor Liquors joins the community in the hub, and the onboarding instance the hub's
/// event started.
async fn harbor_joins(sandbox: &Sandbox) -> anyhow::Result<String> {
    sandbox.deploy("partner-onboarding").await?;
    partner_call(
        sandbox,
        HARBOR_LOGIN,
        &format!("/partner/v1/communities/{COMMUNITY}/join"),
        json!({}),
    )
    .await?;
    let id = wait_until(PATIENCE, "the onboarding started by the join", || async {
        let (status, body) = sandbox
            .api(
                "ana",
                Method::GET,
                "/instances?definition=partner-onboarding",
                None,
            )
            .await?;
        ensure!((200..300).contains(&status), "{status} {body}");
        Ok(body["items"]
            .as_array()
            .and_then(|items| items.first())
            .and_then(|item| item["id"].as_str())
            .map(str::to_owned))
    })
    .await?;
    let view = sandbox.wait_step(&id, "partner", "succeeded").await?;
    ensure!(
        view["steps"]["partner"]["output"]["name"] == "Harbor Liquors",
        "{view}"
    );
    Ok(id)
}

/// The bundle's files (asset, version, digest) as the curator's approval binds them.
fn bundle(approval: &Value) -> Vec<(String, String, String)> {
    let mut files: Vec<(String, String, String)> = approval["artifacts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|artifact| {
            let text = |key: &str| artifact[key].as_str().unwrap_or_default().to_owned();
            (text("asset_id"), text("version"), text("sha256"))
        })
        .collect();
    files.sort();
    files
}

async fn onboarding(sandbox: &Sandbox) -> anyhow::Result<()> {
    let id = harbor_joins(sandbox).await?;
    let view = sandbox.wait_status(&id, "waiting").await?;
    ensure!(view["input"]["company_id"] == HARBOR, "{view}");

    let curate = sandbox.approval("cara", &id, "curate").await?;
    let files = bundle(&curate);
    ensure!(!files.is_empty(), "{curate}");
    assert_latest_in_dam(sandbox, &files)?;
    sandbox
        .decide(
            "cara",
            &curate,
            "approve",
            json!({}),
            Some("current pack shots and labels"),
        )
        .await?;

    let assign = sandbox.approval("bob", &id, "assign").await?;
    let assign_id = assign["id"].as_str().context("approval id")?;
    let (status, body) = sandbox
        .api(
            "bob",
            Method::POST,
            &format!("/approvals/{assign_id}/decision"),
            Some(json!({"decision": "approve", "data": {"group_id": "grp-wholesale", "market": "US"}})),
        )
        .await?;
    ensure!(status == 422, "{status} {body}");
    sandbox
        .decide(
            "bob",
            &assign,
            "approve",
            json!({"group_id": "grp-retailers", "market": "US"}),
            None,
        )
        .await?;

    let view = sandbox.wait_step(&id, "welcome", "succeeded").await?;
    let post_id = view["steps"]["welcome"]["output"]["post_id"]
        .as_str()
        .context("post id")?
        .to_owned();
    sandbox.wait_step(&id, "acknowledgement", "waiting").await?;
    sandbox.advance("73h").await?;
    sandbox
        .wait_step(&id, "late_acknowledgement", "waiting")
        .await?;
    acknowledge(sandbox, &post_id, HARBOR_LOGIN, "accepted").await?;
    let done = sandbox.wait_status(&id, "completed").await?;
    let output = &done["output"];
    ensure!(output["acknowledged"] == true, "{output}");
    ensure!(output["reminded"] == true, "{output}");
    ensure!(output["group_id"] == "grp-retailers", "{output}");
    ensure!(done["steps"]["escalate"]["status"] == "skipped", "{done}");

    let hub = state(sandbox, "trading_grid")?;
    let members = &hub["groups"]["grp-retailers"]["member_company_ids"];
    ensure!(
        members
            .as_array()
            .is_some_and(|ids| ids.iter().any(|id| id == HARBOR)),
        "{members}"
    );
    let post = &hub["posts"][post_id.as_str()];
    ensure!(post["recipients"] == json!([HARBOR]), "{post}");
    let mut received: Vec<String> = post["documents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|document| document["sha256"].as_str().map(str::to_owned))
        .collect();
    received.sort();
    let mut approved: Vec<String> = files.iter().map(|(_, _, sha)| sha.clone()).collect();
    approved.sort();
    ensure!(received == approved, "{received:?} {approved:?}");
    let reminders = notifications_to(&hub, &[HARBOR]);
    ensure!(
        reminders.len() == 1 && reminders[0]["post_id"] == post_id.as_str(),
        "{reminders:?}"
    );

    let rows = ledger_rows(sandbox, HARBOR, &id, files.len(), "acknowledged").await?;
    for row in &rows {
        let delivered = (
            row["asset_id"].as_str().unwrap_or_default().to_owned(),
            row["version"].as_str().unwrap_or_default().to_owned(),
            row["sha256"].as_str().unwrap_or_default().to_owned(),
        );
        ensure!(files.contains(&delivered), "{row}");
    }
    sandbox.assert_replay(&id).await
}

/// Each bound file is the latest version of its asset in OTMM, approved and unexpired.
fn assert_latest_in_dam(
    sandbox: &Sandbox,
    files: &[(String, String, String)],
) -> anyhow::Result<()> {
    let otmm = state(sandbox, "otmm")?;
    let assets = otmm["assets"].as_object().context("otmm assets")?;
    for (asset_id, version, _) in files {
        let latest = assets.values().find(|asset| {
            asset["original_asset_id"] == asset_id.as_str() && asset["latest_version"] == true
        });
        let latest = latest.with_context(|| format!("no latest version of {asset_id}"))?;
        ensure!(latest["version"] == version.parse::<u64>()?, "{latest}");
        ensure!(latest["expired"] == false, "{latest}");
        ensure!(
            latest["metadata"]["CUSTOM.FIELD.STATUS"][1] == "Approved",
            "{latest}"
        );
    }
    Ok(())
}

/// The curator rejects the bundle: nothing is delivered, Harbor gets the welcome and the
/// curator's note.
async fn bundle_rejected(sandbox: &Sandbox) -> anyhow::Result<()> {
    let id = harbor_joins(sandbox).await?;
    let note = "the Winter Berry files are being replaced this week";
    let curate = sandbox.approval("cara", &id, "curate").await?;
    sandbox
        .decide("cara", &curate, "reject", json!({}), Some(note))
        .await?;
    let assign = sandbox.approval("bea", &id, "assign").await?;
    sandbox
        .decide(
            "bea",
            &assign,
            "approve",
            json!({"group_id": "grp-retailers", "market": "US"}),
            None,
        )
        .await?;
    let done = sandbox.wait_status(&id, "completed").await?;
    ensure!(done["output"]["bundle"] == "rejected", "{done}");
    ensure!(done["steps"]["welcome"]["status"] == "skipped", "{done}");
    let hub = state(sandbox, "trading_grid")?;
    ensure!(posts_to(&hub, HARBOR).is_empty(), "Harbor got a post");
    let welcome = notifications_to(&hub, &[HARBOR]);
    ensure!(welcome.len() == 1, "{welcome:?}");
    ensure!(
        welcome[0]["message"]
            .as_str()
            .is_some_and(|message| message.contains(note)),
        "{welcome:?}"
    );
    let rows = sandbox.ledger(&format!("?partner={HARBOR}")).await?;
    ensure!(rows.is_empty(), "{rows:?}");
    sandbox.assert_replay(&id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_that_joins_gets_its_curated_bundle_and_is_reminded() {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        let outcome = onboarding(&sandbox).await;
        let stopped = sandbox.stop().await;
        outcome.and(stopped)
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_bundle_is_not_sent_but_the_partner_is_welcomed() {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        let outcome = bundle_rejected(&sandbox).await;
        let stopped = sandbox.stop().await;
        outcome.and(stopped)
    })
    .await
    .unwrap();
}
