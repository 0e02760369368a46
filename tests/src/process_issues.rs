//! What the tests of the issue, version-change and recall processes (3, 6, 13) share on
//! top of [`crate::process::Sandbox`]: an earlier delivery of an asset to partners (the
//! ledger rows those processes start from), the partners' own view of the hub, the hub's
//! and OTMM's recorded state, and the instances a trigger started.

use std::time::Duration;

use anyhow::Context;
use reqwest::Method;
use serde_json::{Value, json};

use crate::process::Sandbox;
use crate::wait_until;

/// The OTMM asset of the Citrus Spritz 12oz can (versions 1 and 2), as the ledger names it.
pub const CITRUS_CAN: &str = "f9de6bb3e5c869aaba88bd7d5aded3f91c68c34b";

/// The Aurora Springs partner community on the hub.
pub const COMMUNITY: &str = "cmty-aurora-partners";

/// How long a trigger, a poller or a step chain may take in these tests.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// The partner companies and their users on the hub.
pub const GREEN_MOUNTAIN: (&str, &str) = ("GC00912345AB", "buyer@greenmountain.example");
/// Metro Fresh Markets.
pub const METRO_FRESH: (&str, &str) = ("GC00933311CD", "media@metrofresh.example");
/// Atlantic Wine & Spirits.
pub const ATLANTIC: (&str, &str) = ("GC00955577EF", "buyer@atlanticws.example");

/// Delivers `asset_id` of `system` (`version`, or the latest) to `partners` on the hub, as
/// an earlier distribution would have: a definition of the test's own fetches it into the
/// content store and publishes it. Returns that instance's output
/// `{post_id, content, rights}`.
pub async fn deliver(
    sandbox: &Sandbox,
    system: &str,
    asset_id: &str,
    version: Option<&str>,
    partners: &[&str],
) -> anyhow::Result<Value> {
    let id = format!("earlier-delivery-{system}");
    let mut fetch = json!({"asset_id": "${input.asset_id}"});
    if version.is_some() {
        fetch["version"] = json!("${input.version}");
    }
    let definition = json!({
        "id": id,
        "name": "An earlier delivery (test setup)",
        "input": {"type": "object", "required": ["asset_id", "partners"]},
        "steps": [
            {"id": "fetch", "action": format!("{system}.fetch_content"), "with": fetch},
            {"id": "publish", "needs": ["fetch"], "action": "trading_grid.publish_content", "with": {
                "community_id": COMMUNITY, "partner_company_ids": "${input.partners}",
                "title": "Spring reset artwork", "body": "Approved artwork for the spring reset.",
                "content": ["${steps.fetch.output.content}"]}}
        ],
        "output": {"post_id": "${steps.publish.output.post_id}", "content": "${steps.fetch.output.content}",
                   "rights": "${steps.fetch.output.observed_rights}"}
    });
    sandbox
        .call_ok("ana", Method::POST, "/definitions", Some(definition))
        .await?;
    let instance = sandbox
        .start_instance(
            &id,
            json!({"asset_id": asset_id, "version": version, "partners": partners}),
        )
        .await?;
    let finished = sandbox.wait_status(&instance, "completed").await?;
    Ok(finished["output"].clone())
}

/// A partner user's call to the hub simulator's partner routes: the status and the body.
pub async fn partner(
    sandbox: &Sandbox,
    login: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    sandbox
        .partner("trading_grid", Some(login), method, path, body)
        .await
}

/// Whether the partner user `login` can still download document `document_id` of
/// `post_id` (200), or lost it (410).
pub async fn can_download(
    sandbox: &Sandbox,
    login: &str,
    post_id: &str,
    document_id: &str,
) -> anyhow::Result<bool> {
    let path = format!("/partner/v1/posts/{post_id}/documents/{document_id}");
    let (status, _) = partner(sandbox, login, Method::GET, &path, None).await?;
    match status {
        200 => Ok(true),
        410 => Ok(false),
        other => anyhow::bail!("{login} downloading {path}: unexpected {other}"),
    }
}

/// The hub's recorded state (`posts`, `issues`, …).
pub fn hub_state(sandbox: &Sandbox) -> anyhow::Result<Value> {
    Ok(sandbox.records("trading_grid")?["state"].clone())
}

/// The hub posts made after `post_id` (ids grow with time) whose recipients include
/// `company_id`, oldest first.
pub fn posts_after(hub: &Value, post_id: &str, company_id: &str) -> Vec<Value> {
    let mut posts: Vec<Value> = hub["posts"]
        .as_object()
        .into_iter()
        .flat_map(|posts| posts.values())
        .filter(|post| post["post_id"].as_str().is_some_and(|id| id > post_id))
        .filter(|post| {
            post["recipients"]
                .as_array()
                .is_some_and(|ids| ids.iter().any(|id| id == company_id))
        })
        .cloned()
        .collect();
    posts.sort_by(|a, b| a["post_id"].as_str().cmp(&b["post_id"].as_str()));
    posts
}

/// The versions OTMM holds of the asset whose first version is `original_asset_id`, by
/// version number: `(version, asset_id, name, latest)`.
pub fn otmm_versions(
    sandbox: &Sandbox,
    original_asset_id: &str,
) -> anyhow::Result<Vec<(u64, String, String, bool)>> {
    let records = sandbox.records("otmm")?;
    let mut versions: Vec<(u64, String, String, bool)> = records["state"]["assets"]
        .as_object()
        .context("otmm records hold assets")?
        .values()
        .filter(|asset| asset["original_asset_id"] == original_asset_id)
        .map(|asset| {
            (
                asset["version"].as_u64().unwrap_or_default(),
                asset["asset_id"].as_str().unwrap_or_default().to_owned(),
                asset["name"].as_str().unwrap_or_default().to_owned(),
                asset["latest_version"] == true,
            )
        })
        .collect();
    versions.sort();
    Ok(versions)
}

/// The ledger rows of `asset_id` as `(partner, version, status, reference)`, sorted.
pub async fn ledger_of(
    sandbox: &Sandbox,
    asset_id: &str,
) -> anyhow::Result<Vec<(String, String, String, String)>> {
    let rows = sandbox.ledger(&format!("?asset={asset_id}")).await?;
    let text = |row: &Value, field: &str| row[field].as_str().unwrap_or_default().to_owned();
    let mut rows: Vec<(String, String, String, String)> = rows
        .iter()
        .map(|row| {
            (
                text(row, "partner"),
                text(row, "version"),
                text(row, "status"),
                text(row, "reference"),
            )
        })
        .collect();
    rows.sort();
    Ok(rows)
}

/// Waits until the ledger rows of `asset_id`, as sorted `(partner, version, status)`,
/// are `expected` (download and withdrawal events reach the ledger through the hub's
/// poller, a moment after they happened).
pub async fn wait_ledger(
    sandbox: &Sandbox,
    asset_id: &str,
    expected: &[(&str, &str, &str)],
) -> anyhow::Result<()> {
    let last = std::cell::RefCell::new(Vec::new());
    let outcome = wait_until(PATIENCE, "the ledger rows expected", || async {
        let rows: Vec<(String, String, String)> = ledger_of(sandbox, asset_id)
            .await?
            .into_iter()
            .map(|(partner, version, status, _)| (partner, version, status))
            .collect();
        let same = rows.len() == expected.len()
            && rows
                .iter()
                .zip(expected)
                .all(|(row, wanted)| (row.0.as_str(), row.1.as_str(), row.2.as_str()) == *wanted);
        *last.borrow_mut() = rows;
        Ok(same.then_some(()))
    })
    .await;
    let last = last.into_inner();
    outcome.with_context(|| format!("ledger of {asset_id} is {last:?}, not {expected:?}"))
}
