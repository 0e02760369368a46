//! Process 12, `workflows/localisation-request.yaml`: a partner's localisation or
//! enhancement request on the hub starts the process by itself; the content team's task
//! becomes a new OTMM version, posted to that partner only, and the release notes answer
//! the request.
//!
//! - Localisation done: OTMM holds version 2 beside version 1, labelled fr-CA / CA; the
//!   requesting partner (and no other) holds a post with exactly those bytes, which it
//!   downloads; the ledger has its one row; the request is answered with the release notes
//!   and closed.
//! - Enhancement declined: no version in OTMM, nothing posted or ledgered, and the partner's
//!   request is still answered with the content team's reason and closed; a media request
//!   starts no instance of this process.

use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use gridflow_tests::process::Sandbox;
use gridflow_tests::{on_every_database, wait_until};

const DEFINITION: &str = "localisation-request";
/// OTMM's Winter Berry 750ml shelf talker (en-US, version 1).
const SHELF_TALKER: &str = "f84d81b3186b0110621d1c08229d931280c96fd7";
/// OTMM's Citrus Spritz pack shot, version 2 of f9de6bb3….
const PACK_SHOT: (&str, &str) = (
    "9df3f341f9ddbf5d15998eb65c6c7363936490f9",
    "f9de6bb3e5c869aaba88bd7d5aded3f91c68c34b",
);
const ATLANTIC: (&str, &str) = ("GC00955577EF", "buyer@atlanticws.example");
const GREEN_MOUNTAIN: (&str, &str) = ("GC00912345AB", "buyer@greenmountain.example");
const RELEASE_NOTES: &str =
    "French (Canada) text on every panel; the price field is left blank for each store.";

/// The instance the request started (through the hub's event).
async fn started_by(sandbox: &Sandbox, request_id: &str) -> anyhow::Result<String> {
    sandbox
        .started_instance(DEFINITION, |input| input["request_id"] == request_id)
        .await
}

fn hub_request(hub: &Value, request_id: &str) -> anyhow::Result<Value> {
    hub.pointer(&format!("/state/requests/{request_id}"))
        .cloned()
        .with_context(|| format!("no request {request_id} on the hub"))
}

/// OTMM's versions of the asset whose first version is `original`.
fn otmm_versions(otmm: &Value, original: &str) -> Vec<Value> {
    let mut versions: Vec<Value> = otmm["state"]["assets"]
        .as_object()
        .into_iter()
        .flat_map(|assets| assets.values())
        .filter(|asset| asset["original_asset_id"] == original)
        .cloned()
        .collect();
    versions.sort_by_key(|asset| asset["version"].as_u64());
    versions
}

async fn localisation_delivered(url: String) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(&url).await?;
    sandbox.deploy(DEFINITION).await?;
    let request_id = sandbox.partner_request(ATLANTIC.1,
        json!({"type": "localisation", "asset": {"system": "otmm", "asset_id": SHELF_TALKER},
               "market": "CA", "language": "fr-CA",
               "description": "The Winter Berry 750ml shelf talker in French for our Quebec stores, please."}),
    )
    .await?;
    let instance = started_by(&sandbox, &request_id).await?;
    let task = sandbox.approval("cody", &instance, "work").await?;
    let title = task["title"].as_str().unwrap_or_default();
    ensure!(
        title.starts_with("Localise winter-berry-750ml-shelf-talker.pdf")
            && title.contains("fr-CA, market CA"),
        "{title}"
    );
    sandbox
        .decide(
            "cody",
            &task,
            "approve",
            json!({"file_name": "winter-berry-750ml-shelf-talker-fr-ca.pdf",
                   "source_url": "https://files.aurora.example/studio/winter-berry-750ml-shelf-talker-fr-ca.pdf",
                   "release_notes": RELEASE_NOTES}),
            Some("translated and proofread"),
        )
        .await?;
    let view = sandbox.wait_status(&instance, "completed").await?;
    let post_id = view["output"]["post_id"]
        .as_str()
        .context("post id")?
        .to_owned();
    let fetched = view["steps"]["fetch"]["output"]["content"].clone();

    // OTMM holds the localised version 2 beside the original, labelled for the request.
    let otmm = sandbox.records("otmm")?;
    let versions = otmm_versions(&otmm, SHELF_TALKER);
    ensure!(versions.len() == 2, "{versions:?}");
    let (original, localised) = (&versions[0], &versions[1]);
    ensure!(
        original["latest_version"] == false
            && original["metadata"]["CUSTOM.FIELD.LANGUAGE"][1] == "en-US"
    );
    ensure!(
        localised["version"] == 2
            && localised["latest_version"] == true
            && localised["name"] == "winter-berry-750ml-shelf-talker-fr-ca.pdf"
            && localised["asset_id"] == view["output"]["version_asset_id"],
        "{localised}"
    );
    let field = |name: &str| localised["metadata"][name][1].clone();
    ensure!(field("CUSTOM.FIELD.LANGUAGE") == "fr-CA" && field("CUSTOM.FIELD.MARKET") == "CA");
    ensure!(
        field("CUSTOM.FIELD.PARTNER_REQUEST") == request_id.as_str(),
        "{localised}"
    );
    ensure!(
        fetched["version"] == "2"
            && fetched["file_name"] == "winter-berry-750ml-shelf-talker-fr-ca.pdf"
    );

    // Only the requesting partner got the post, with exactly the fetched bytes.
    let hub = sandbox.records("trading_grid")?;
    let post = hub
        .pointer(&format!("/state/posts/{post_id}"))
        .with_context(|| format!("no post {post_id}"))?;
    ensure!(post["recipients"] == json!([ATLANTIC.0]), "{post}");
    ensure!(
        post["correlation_id"] == request_id.as_str() && post["body"] == RELEASE_NOTES,
        "{post}"
    );
    ensure!(
        post["documents"][0]["sha256"] == fetched["sha256"],
        "{post}"
    );
    let rows: Vec<Value> = sandbox
        .ledger("?system=otmm")
        .await?
        .into_iter()
        .filter(|row| row["instance_id"] == instance.as_str())
        .collect();
    ensure!(rows.len() == 1, "{rows:?}");
    ensure!(
        rows[0]["partner"] == ATLANTIC.0
            && rows[0]["version"] == "2"
            && rows[0]["sha256"] == fetched["sha256"]
            && rows[0]["reference"] == post_id.as_str(),
        "{}",
        rows[0]
    );

    // The request carries the release notes and is closed.
    let request = hub_request(&hub, &request_id)?;
    ensure!(request["status"] == "closed", "{request}");
    let answer = request["answers"][0]["message"]
        .as_str()
        .unwrap_or_default();
    ensure!(
        answer.contains(RELEASE_NOTES) && answer.contains(&post_id),
        "{answer}"
    );
    ensure!(
        request["resolution"] == format!("delivered version 2 in post {post_id}"),
        "{request}"
    );

    // The partner downloads the new version; the download reaches the ledger.
    let document_id = post["documents"][0]["document_id"]
        .as_str()
        .context("document")?;
    let url = sandbox.simulator_url("trading_grid");
    let download = reqwest::Client::new()
        .get(format!(
            "{url}/partner/v1/posts/{post_id}/documents/{document_id}"
        ))
        .header("X-Partner-Login", ATLANTIC.1)
        .send()
        .await?;
    ensure!(download.status().is_success(), "{}", download.status());
    wait_until(
        Duration::from_secs(30),
        "the download in the ledger",
        || async {
            let rows = sandbox
                .ledger(&format!("?partner={}&status=downloaded", ATLANTIC.0))
                .await?;
            Ok(rows
                .iter()
                .any(|row| row["instance_id"] == instance.as_str())
                .then_some(()))
        },
    )
    .await?;
    sandbox.assert_replay(&instance).await?;
    sandbox.stop().await?;
    Ok(())
}

async fn declined_enhancement_answered(url: String) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(&url).await?;
    sandbox.deploy(DEFINITION).await?;
    let media = sandbox
        .partner_request(
            GREEN_MOUNTAIN.1,
            json!({"type": "media", "description": "Every summer image of Citrus Spritz, please."}),
        )
        .await?;
    let request_id = sandbox
        .partner_request(
            GREEN_MOUNTAIN.1,
            json!({"type": "enhancement", "asset": {"system": "otmm", "asset_id": PACK_SHOT.0},
               "description": "A cut-out of the can on a transparent background, please."}),
        )
        .await?;
    let instance = started_by(&sandbox, &request_id).await?;
    let task = sandbox.approval("cody", &instance, "work").await?;
    ensure!(
        task["title"]
            .as_str()
            .is_some_and(|title| title.starts_with("Enhance citrus-spritz-can-12oz.png")),
        "{task}"
    );
    let reason = "The cut-out exists already: it is the Citrus Spritz hero can in iconik.";
    sandbox
        .decide("cody", &task, "reject", Value::Null, Some(reason))
        .await?;
    let view = sandbox.wait_status(&instance, "completed").await?;
    ensure!(
        view["output"]["decision"] == "rejected" && view["output"]["post_id"].is_null(),
        "{view}"
    );

    // No version in OTMM, nothing on the hub or in the ledger, and the partner has its answer.
    let otmm = sandbox.records("otmm")?;
    ensure!(otmm_versions(&otmm, PACK_SHOT.1).len() == 2);
    ensure!(
        otmm["effects"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|effect| effect["action"] != "version.created"),
        "{}",
        otmm["effects"]
    );
    let hub = sandbox.records("trading_grid")?;
    ensure!(
        hub["state"]["posts"]
            .as_object()
            .context("posts")?
            .values()
            .all(|post| post["correlation_id"] != request_id.as_str())
    );
    ensure!(
        sandbox
            .ledger("")
            .await?
            .iter()
            .all(|row| row["instance_id"] != instance.as_str())
    );
    let request = hub_request(&hub, &request_id)?;
    ensure!(request["status"] == "closed", "{request}");
    ensure!(
        request["answers"][0]["message"] == format!("We cannot provide this version: {reason}"),
        "{request}"
    );
    ensure!(
        request["resolution"] == format!("declined: {reason}"),
        "{request}"
    );
    // The media request is not this process's: it stays open and started nothing here.
    ensure!(hub_request(&hub, &media)?["status"] == "open");
    let started = sandbox.instances(DEFINITION).await?;
    ensure!(started.len() == 1, "{started:?}");
    sandbox.assert_replay(&instance).await?;
    sandbox.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_localisation_request_gets_a_new_otmm_version_and_release_notes() -> anyhow::Result<()> {
    on_every_database(localisation_delivered).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_enhancement_request_is_still_answered() -> anyhow::Result<()> {
    on_every_database(declined_enhancement_answered).await
}
