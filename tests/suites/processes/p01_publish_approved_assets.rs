//! Process 1, `workflows/publish-approved-assets.yaml`: the assets approved for a keyword in
//! OTMM, iconik and Canto, and the approved Smint.io licence the analyst names, are copied
//! by digest, approved by a brand manager as exactly those files, and published to the
//! partner community on the hub.
//!
//! - Approved: every partner the community reaches holds one post with the five files,
//!   whose digests (computed by the hub from the bytes it received) are the approved ones;
//!   the ledger has one row per partner and file; a download and an acknowledgement on the
//!   hub come back into the ledger; the pending Smint.io licence, iconik's requested
//!   banner and Canto's pending spot reach nobody.
//! - Rejected: nothing is uploaded or posted on the hub and the ledger stays empty.

use anyhow::{Context, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use gridflow_tests::process::Sandbox;
use gridflow_tests::{on_every_database, wait_until};

const DEFINITION: &str = "publish-approved-assets";
const COMMUNITY: &str = "cmty-aurora-partners";
/// Every partner company the community's post reaches: its members and its groups'.
const PARTNERS: [&str; 4] = [
    "GC00912345AB",
    "GC00933311CD",
    "GC00955577EF",
    "GC00977799GH",
];
const GREEN_MOUNTAIN_LOGIN: &str = "buyer@greenmountain.example";
const METRO_FRESH: (&str, &str) = ("GC00933311CD", "media@metrofresh.example");
/// Smint.io licences: one approved without an end, one still pending approval.
const SMINTIO_APPROVED: &str = "5e0c1a2b-3c4d-4e5f-8a6b-7c8d9e0f0004";
const SMINTIO_PENDING: &str = "5e0c1a2b-3c4d-4e5f-8a6b-7c8d9e0f0005";
/// The approved "citrus" assets of the seeds: (system, asset, version).
const EXPECTED: [(&str, &str, &str); 5] = [
    ("canto", "hl26cs0001", "1"),
    (
        "iconik",
        "a1f0c3d2-5b6e-4f70-8a91-b2c3d4e5f601",
        "b2e1d4c3-6a7f-4081-9b2c-c3d4e5f6a700",
    ),
    ("otmm", "9ed42740029b6e29a4b2cc5caceaf2b5aa27c9c0", "1"),
    ("otmm", "f9de6bb3e5c869aaba88bd7d5aded3f91c68c34b", "2"),
    ("smintio", SMINTIO_APPROVED, "1"),
];

fn input() -> Value {
    json!({
        "query": "citrus",
        "community_id": COMMUNITY,
        "title": "Citrus Spritz 12oz: summer artwork",
        "message": "The approved artwork for the summer reset, from every DAM.",
        "smintio_asset_ids": [SMINTIO_APPROVED, SMINTIO_PENDING],
    })
}

fn text<'a>(value: &'a Value, pointer: &str) -> anyhow::Result<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .with_context(|| format!("no text at {pointer} in {value}"))
}

/// `(system, asset, version)` of an artifact or ledger row.
fn key(value: &Value) -> (String, String, String) {
    let field = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
    (field("system"), field("asset_id"), field("version"))
}

fn expected_keys() -> Vec<(String, String, String)> {
    EXPECTED
        .iter()
        .map(|(system, asset, version)| {
            (
                (*system).to_owned(),
                (*asset).to_owned(),
                (*version).to_owned(),
            )
        })
        .collect()
}

/// The ledger rows this instance wrote.
async fn ledger_of(sandbox: &Sandbox, instance: &str) -> anyhow::Result<Vec<Value>> {
    let rows = sandbox.ledger("").await?;
    Ok(rows
        .into_iter()
        .filter(|row| row["instance_id"] == instance)
        .collect())
}

/// Starts the process and waits for the brand managers' approval, checking what it binds.
async fn start_and_review(sandbox: &Sandbox, approver: &str) -> anyhow::Result<(String, Value)> {
    sandbox.deploy(DEFINITION).await?;
    let instance = sandbox.start_instance(DEFINITION, input()).await?;
    let approval = sandbox.approval(approver, &instance, "review").await?;
    let mut bound: Vec<_> = approval["artifacts"]
        .as_array()
        .with_context(|| format!("the approval binds no artifacts: {approval}"))?
        .iter()
        .map(key)
        .collect();
    bound.sort();
    ensure!(
        bound == expected_keys(),
        "the approval binds {bound:?}, not the approved assets"
    );
    ensure!(
        text(&approval, "/title")?.starts_with("Publish 5 approved files"),
        "{approval}"
    );
    Ok((instance, approval))
}

async fn approved_assets_reach_every_partner(url: String) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(&url).await?;
    let (instance, approval) = start_and_review(&sandbox, "bob").await?;
    let artifacts = approval["artifacts"].clone();
    sandbox
        .decide(
            "bob",
            &approval,
            "approve",
            json!({}),
            Some("summer artwork checked"),
        )
        .await?;
    let view = sandbox.wait_status(&instance, "completed").await?;
    let post_id = text(&view, "/output/post_id")?.to_owned();
    ensure!(view["output"]["recipients"] == json!(PARTNERS), "{view}");

    // The hub holds one post with the five files, as the hub hashed the bytes it received.
    let hub = sandbox.records("trading_grid")?;
    let post = hub
        .pointer(&format!("/state/posts/{post_id}"))
        .with_context(|| format!("no post {post_id} on the hub"))?;
    ensure!(post["recipients"] == json!(PARTNERS), "{post}");
    ensure!(
        post["community_id"] == COMMUNITY && post["requires_ack"] == true,
        "{post}"
    );
    let mut posted: Vec<&str> = post["documents"]
        .as_array()
        .context("post documents")?
        .iter()
        .filter_map(|document| document["sha256"].as_str())
        .collect();
    let mut approved: Vec<&str> = artifacts
        .as_array()
        .context("artifacts")?
        .iter()
        .filter_map(|artifact| artifact["sha256"].as_str())
        .collect();
    posted.sort_unstable();
    approved.sort_unstable();
    ensure!(
        posted == approved,
        "posted {posted:?}, approved {approved:?}"
    );

    // One ledger row per partner and file, each with the approved digest.
    let rows = ledger_of(&sandbox, &instance).await?;
    ensure!(rows.len() == 20, "{} ledger rows: {rows:?}", rows.len());
    for partner in PARTNERS {
        let mut held: Vec<_> = rows
            .iter()
            .filter(|row| row["partner"] == partner)
            .map(key)
            .collect();
        held.sort();
        ensure!(held == expected_keys(), "{partner} holds {held:?}");
    }
    for row in &rows {
        let artifact = artifacts
            .as_array()
            .into_iter()
            .flatten()
            .find(|artifact| key(artifact) == key(row))
            .with_context(|| format!("ledger row of no approved artifact: {row}"))?;
        ensure!(
            row["sha256"] == artifact["sha256"]
                && row["reference"] == post_id.as_str()
                && row["channel"] == "trading_grid"
                && row["status"] == "delivered",
            "{row}"
        );
    }
    let unapproved = [
        SMINTIO_PENDING,
        "a1f0c3d2-5b6e-4f70-8a91-b2c3d4e5f602",
        "cs26vd0003",
    ];
    ensure!(
        rows.iter()
            .all(|row| !unapproved.contains(&row["asset_id"].as_str().unwrap_or_default())),
        "an unapproved asset was delivered"
    );

    // Green Mountain downloads the OTMM pack shot; Metro Fresh acknowledges the post.
    let can = post["documents"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|document| {
            artifacts.as_array().into_iter().flatten().any(|artifact| {
                artifact["system"] == "otmm"
                    && artifact["version"] == "2"
                    && artifact["sha256"] == document["sha256"]
            })
        })
        .context("the OTMM pack shot is not in the post")?;
    let document_id = text(can, "/document_id")?;
    let hub_url = sandbox.simulator_url("trading_grid");
    let client = reqwest::Client::new();
    let download = client
        .get(format!(
            "{hub_url}/partner/v1/posts/{post_id}/documents/{document_id}"
        ))
        .header("X-Partner-Login", GREEN_MOUNTAIN_LOGIN)
        .send()
        .await?;
    ensure!(download.status().is_success(), "{}", download.status());
    let bytes = download.bytes().await?;
    ensure!(Some(bytes.len() as u64) == can["size"].as_u64(), "{can}");
    let (status, acknowledged) = sandbox
        .partner(
            "trading_grid",
            Some(METRO_FRESH.1),
            Method::POST,
            &format!("/partner/v1/posts/{post_id}/acknowledgements"),
            Some(json!({"ack_type": "received", "comment": "in the summer planogram"})),
        )
        .await?;
    ensure!((200..300).contains(&status), "{status} {acknowledged}");
    wait_until(
        std::time::Duration::from_secs(30),
        "the download and the acknowledgement in the ledger",
        || async {
            let rows = ledger_of(&sandbox, &instance).await?;
            let downloaded = rows
                .iter()
                .filter(|row| row["status"] == "downloaded")
                .map(|row| (row["partner"].clone(), row["receipt"].clone()))
                .collect::<Vec<_>>();
            let acknowledged = rows
                .iter()
                .filter(|row| row["status"] == "acknowledged")
                .all(|row| row["partner"] == METRO_FRESH.0);
            let metro = rows
                .iter()
                .filter(|row| row["partner"] == METRO_FRESH.0)
                .all(|row| row["status"] == "acknowledged");
            Ok((downloaded == [(json!("GC00912345AB"), json!(document_id))]
                && acknowledged
                && metro)
                .then_some(()))
        },
    )
    .await?;

    // The auditor's view: Metro Fresh acknowledged all five files; replay equals the
    // stored state.
    let (status, page) = sandbox
        .api(
            "otto",
            Method::GET,
            &format!(
                "/ledger?partner={}&status=acknowledged&limit=50",
                METRO_FRESH.0
            ),
            None,
        )
        .await?;
    ensure!(status == 200, "{status} {page}");
    ensure!(
        page["items"]
            .as_array()
            .is_some_and(|items| items.len() == 5),
        "{page}"
    );
    sandbox.assert_replay(&instance).await?;
    sandbox.stop().await?;
    Ok(())
}

async fn a_rejection_reaches_no_partner(url: String) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(&url).await?;
    let (instance, approval) = start_and_review(&sandbox, "bea").await?;
    sandbox
        .decide(
            "bea",
            &approval,
            "reject",
            Value::Null,
            Some("wait for the new summer labels"),
        )
        .await?;
    let view = sandbox.wait_status(&instance, "completed").await?;
    ensure!(view["output"]["decision"] == "rejected", "{view}");
    ensure!(view["output"]["post_id"].is_null(), "{view}");
    ensure!(view["steps"]["publish"]["status"] == "skipped", "{view}");

    let hub = sandbox.records("trading_grid")?;
    let posts = hub["state"]["posts"].as_object().context("hub posts")?;
    ensure!(
        posts
            .values()
            .all(|post| post["correlation_id"] != instance.as_str()),
        "a post of the rejected instance: {posts:?}"
    );
    ensure!(
        hub["state"]["documents"]
            .as_object()
            .is_none_or(|documents| documents.is_empty()),
        "documents were uploaded: {}",
        hub["state"]["documents"]
    );
    ensure!(ledger_of(&sandbox, &instance).await?.is_empty());
    sandbox.assert_replay(&instance).await?;
    sandbox.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_assets_from_four_dams_reach_every_partner_of_the_community() -> anyhow::Result<()>
{
    on_every_database(approved_assets_reach_every_partner).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_publication_reaches_no_partner() -> anyhow::Result<()> {
    on_every_database(a_rejection_reaches_no_partner).await
}
