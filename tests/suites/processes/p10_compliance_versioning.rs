//! Process 10, `workflows/compliance-versioning.yaml`: legal approves the exact bytes of
//! one OTMM version and attaches its usage restrictions before any external share.
//!
//! - Approved: the approval binds the version's digest and refuses a decision without
//!   restrictions; OTMM holds the decision, the digest and the restrictions on that
//!   version; nothing reaches a partner before the share date; on it both partners get the
//!   approved bytes with the restrictions, and the ledger has one row each.
//! - Changed after approval: the share is refused (`artifact_not_approved`, in history),
//!   OTMM records the approval as void with the digest it now holds, nothing is posted or
//!   ledgered, and the instance ends failed.
//! - Rejected: OTMM records legal's reason and nothing is shared.

use anyhow::{Context, ensure};
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use gridflow_tests::on_every_database;
use gridflow_tests::process::Sandbox;

const DEFINITION: &str = "compliance-versioning";
/// OTMM's Winter Berry 750ml shelf talker (a wine product: legal reviews its claims).
const ASSET: &str = "f84d81b3186b0110621d1c08229d931280c96fd7";
const PARTNERS: [&str; 2] = ["GC00912345AB", "GC00955577EF"];
const RESTRICTIONS: &str =
    "Only where the sale of wine to adults is legal; never aimed at under-21s.";

fn input(share_at: DateTime<Utc>) -> Value {
    json!({
        "asset_id": ASSET,
        "version": 1,
        "community_id": "cmty-aurora-partners",
        "partner_company_ids": PARTNERS,
        "share_at": share_at.to_rfc3339(),
        "title": "Winter Berry 750ml shelf talker, legal-approved",
        "message": "The shelf talker for the holiday season.",
    })
}

fn legal_data() -> Value {
    json!({"usage_restrictions": RESTRICTIONS, "markets": "US, CA", "valid_until": "2027-01-31"})
}

/// The value of an OTMM metadata field of `asset`, as the simulator holds it.
fn otmm_field(sandbox: &Sandbox, asset: &str, field: &str) -> anyhow::Result<Option<String>> {
    let otmm = sandbox.records("otmm")?;
    let metadata = otmm
        .pointer(&format!("/state/assets/{asset}/metadata"))
        .with_context(|| format!("no OTMM asset {asset}"))?;
    Ok(metadata[field][1].as_str().map(str::to_owned))
}

/// The hub's posts of `instance` and the ledger rows it wrote.
async fn shared(sandbox: &Sandbox, instance: &str) -> anyhow::Result<(Vec<Value>, Vec<Value>)> {
    let hub = sandbox.records("trading_grid")?;
    let posts = hub["state"]["posts"]
        .as_object()
        .context("hub posts")?
        .values()
        .filter(|post| post["correlation_id"] == instance)
        .cloned()
        .collect();
    let rows = sandbox
        .ledger("?system=otmm")
        .await?
        .into_iter()
        .filter(|row| row["instance_id"] == instance)
        .collect();
    Ok((posts, rows))
}

/// Starts the process with a share date a day ahead and returns the instance, the
/// approval of legal, and how far the clock must move to pass the share date.
async fn start(sandbox: &Sandbox) -> anyhow::Result<(String, Value, String)> {
    sandbox.deploy(DEFINITION).await?;
    let share_at = Utc::now() + chrono::Duration::days(1);
    let instance = sandbox.start_instance(DEFINITION, input(share_at)).await?;
    let approval = sandbox.approval("lea", &instance, "legal").await?;
    let view = sandbox.instance(&instance).await?;
    // The server's clock, which may not be this process's: the instance was created on it.
    let created: DateTime<Utc> = view["created_at"].as_str().context("created_at")?.parse()?;
    let hours = (share_at - created).num_hours().max(0) + 2;
    Ok((instance, approval, format!("{hours}h")))
}

/// The approval binds exactly the version fetched; returns its digest.
fn bound_digest(approval: &Value) -> anyhow::Result<String> {
    let artifacts = approval["artifacts"].as_array().context("artifacts")?;
    ensure!(artifacts.len() == 1, "{approval}");
    let artifact = &artifacts[0];
    ensure!(
        artifact["system"] == "otmm" && artifact["asset_id"] == ASSET && artifact["version"] == "1",
        "{artifact}"
    );
    Ok(artifact["sha256"].as_str().context("sha256")?.to_owned())
}

async fn approved_then_shared_on_the_date(url: String) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(&url).await?;
    let (instance, approval, past_share_date) = start(&sandbox).await?;
    let digest = bound_digest(&approval)?;
    ensure!(
        approval["title"]
            .as_str()
            .is_some_and(|title| title.contains(&digest)),
        "{approval}"
    );

    // Legal cannot approve without attaching the usage restrictions.
    let id = approval["id"].as_str().context("approval id")?;
    let (status, body) = sandbox
        .api(
            "lea",
            Method::POST,
            &format!("/approvals/{id}/decision"),
            Some(json!({"decision": "approve", "comment": "claims checked"})),
        )
        .await?;
    ensure!(status == 422, "{status} {body}");
    sandbox
        .decide(
            "lea",
            &approval,
            "approve",
            legal_data(),
            Some("claims checked"),
        )
        .await?;
    sandbox.wait_step(&instance, "embargo", "waiting").await?;

    // OTMM holds the decision on the exact version, before anything is shared.
    ensure!(
        otmm_field(&sandbox, ASSET, "CUSTOM.FIELD.LEGAL_STATUS")?.as_deref()
            == Some("Approved by legal (lea)")
    );
    ensure!(otmm_field(&sandbox, ASSET, "CUSTOM.FIELD.LEGAL_SHA256")? == Some(digest.clone()));
    ensure!(
        otmm_field(&sandbox, ASSET, "CUSTOM.FIELD.USAGE_RESTRICTIONS")?.as_deref()
            == Some(RESTRICTIONS)
    );
    ensure!(otmm_field(&sandbox, ASSET, "CUSTOM.FIELD.MARKETS")?.as_deref() == Some("US, CA"));
    let (posts, rows) = shared(&sandbox, &instance).await?;
    ensure!(
        posts.is_empty() && rows.is_empty(),
        "shared before the date: {posts:?} {rows:?}"
    );

    sandbox.advance(&past_share_date).await?;
    let view = sandbox.wait_status(&instance, "completed").await?;
    ensure!(view["output"]["shared"] == true, "{view}");
    let (posts, rows) = shared(&sandbox, &instance).await?;
    ensure!(posts.len() == 1, "{posts:?}");
    let post = &posts[0];
    ensure!(post["recipients"] == json!(PARTNERS), "{post}");
    let body = post["body"].as_str().unwrap_or_default();
    ensure!(
        body.contains(RESTRICTIONS)
            && body.contains("Markets: US, CA")
            && body.contains("2027-01-31"),
        "the restrictions are not attached: {body}"
    );
    ensure!(post["documents"][0]["sha256"] == digest.as_str(), "{post}");
    let mut rows = rows;
    rows.sort_by_key(|row| row["partner"].as_str().unwrap_or_default().to_owned());
    ensure!(rows.len() == 2, "{rows:?}");
    for (row, partner) in rows.iter().zip(PARTNERS) {
        ensure!(
            row["partner"] == partner
                && row["sha256"] == digest.as_str()
                && row["version"] == "1"
                && row["status"] == "delivered",
            "{row}"
        );
    }
    sandbox.assert_replay(&instance).await?;
    sandbox.stop().await?;
    Ok(())
}

async fn changed_file_is_refused(url: String) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(&url).await?;
    let (instance, approval, past_share_date) = start(&sandbox).await?;
    let digest = bound_digest(&approval)?;
    sandbox
        .decide("lea", &approval, "approve", legal_data(), None)
        .await?;
    sandbox.wait_step(&instance, "embargo", "waiting").await?;

    // After legal's approval the file is replaced in OTMM behind the process's back.
    let otmm = sandbox.simulator_url("otmm");
    let replaced = reqwest::Client::new()
        .put(format!(
            "{otmm}/_sim/otmm/assets/{ASSET}/versions/1/content"
        ))
        .header("content-type", "application/pdf")
        .body(b"a shelf talker with an unreviewed claim".to_vec())
        .send()
        .await?;
    ensure!(replaced.status().is_success(), "{}", replaced.status());
    let replaced: Value = replaced.json().await?;
    let changed = replaced["content_checksum"]
        .as_str()
        .context("checksum")?
        .to_owned();
    ensure!(changed != digest);

    sandbox.advance(&past_share_date).await?;
    let view = sandbox.wait_status(&instance, "failed").await?;
    ensure!(
        view["steps"]["share"]["error"]["code"] == "artifact_not_approved",
        "{view}"
    );
    let history = sandbox.history(&instance).await?;
    let refusal = history
        .iter()
        .find(|event| event["type"] == "step_failed" && event["data"]["step"] == "share")
        .with_context(|| format!("no refusal in history: {history:?}"))?
        .to_string();
    ensure!(
        refusal.contains("artifact_not_approved")
            && refusal.contains(&changed)
            && refusal.contains(&digest),
        "{refusal}"
    );
    ensure!(
        otmm_field(&sandbox, ASSET, "CUSTOM.FIELD.LEGAL_STATUS")?.as_deref()
            == Some("Approval void: the file changed after legal approved it; not shared")
    );
    ensure!(otmm_field(&sandbox, ASSET, "CUSTOM.FIELD.LEGAL_CURRENT_SHA256")? == Some(changed));
    let (posts, rows) = shared(&sandbox, &instance).await?;
    ensure!(posts.is_empty() && rows.is_empty(), "{posts:?} {rows:?}");
    let hub = sandbox.records("trading_grid")?;
    ensure!(
        hub["state"]["documents"]
            .as_object()
            .is_none_or(|documents| documents.is_empty()),
        "bytes reached the hub: {}",
        hub["state"]["documents"]
    );
    sandbox.assert_replay(&instance).await?;
    sandbox.stop().await?;
    Ok(())
}

async fn rejection_shares_nothing(url: String) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(&url).await?;
    let (instance, approval, past_share_date) = start(&sandbox).await?;
    sandbox
        .decide(
            "lea",
            &approval,
            "reject",
            Value::Null,
            Some("the health claim is not allowed in CA"),
        )
        .await?;
    let view = sandbox.wait_status(&instance, "completed").await?;
    ensure!(
        view["output"]["decision"] == "rejected" && view["output"]["shared"] == false,
        "{view}"
    );
    ensure!(
        otmm_field(&sandbox, ASSET, "CUSTOM.FIELD.LEGAL_STATUS")?.as_deref()
            == Some("Rejected by legal: the health claim is not allowed in CA")
    );
    ensure!(otmm_field(&sandbox, ASSET, "CUSTOM.FIELD.USAGE_RESTRICTIONS")?.is_none());
    sandbox.advance(&past_share_date).await?;
    let (posts, rows) = shared(&sandbox, &instance).await?;
    ensure!(posts.is_empty() && rows.is_empty(), "{posts:?} {rows:?}");
    sandbox.assert_replay(&instance).await?;
    sandbox.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legal_approval_bound_to_the_file_is_shared_with_its_restrictions_on_the_date()
-> anyhow::Result<()> {
    on_every_database(approved_then_shared_on_the_date).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_after_legal_approval_is_refused_and_the_approval_voided()
-> anyhow::Result<()> {
    on_every_database(changed_file_is_refused).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legal_rejection_shares_nothing() -> anyhow::Result<()> {
    on_every_database(rejection_shares_nothing).await
}
