//! Process 2, `workflows/partner-media-request.yaml`: a partner's media request on the hub
//! starts the definition through the hub's `request.created` event; the asset is looked
//! up in its DAM (approval and rights checked), a brand manager approves the exact bytes
//! fetched (the approval is bound to them), they are published by digest to the
//! requesting partner only, and the request is answered and closed.
//!
//! - Metro Fresh asks for the Citrus Spritz 12oz pack shot in OTMM; bob approves: Metro
//!   Fresh's post holds OTMM's version 2 with the digest the approval bound, Metro Fresh
//!   downloads it, no other partner can, the ledger has the one delivery, OTMM still holds
//!   that version, and the request is answered with the post and closed as delivered.
//! - Atlantic Wine & Spirits asks for iconik's Citrus Spritz hero can; bea declines with a
//!   reason: nothing is published, the partner reads the reason on its closed request.
//! - Requests the DAM lookup refuses (OTMM's Winter Berry shelf talker, whose rights ended;
//!   OTMM's brand film, only restricted; an asset OTMM does not have; no asset named) never
//!   reach a brand manager, and each is answered with its reason and closed.
//! - Nobody decides Metro Fresh's request: after 48 hours (sandbox clock) it escalates to
//!   the marketing directors, after 24 more the review fails, and the partner is still
//!   answered (no brand decision in time) with nothing sent.

use std::time::Duration;

use anyhow::{Context, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use gridflow_tests::process::Sandbox;
use gridflow_tests::{on_every_database, wait_until};

const DEFINITION: &str = "partner-media-request";
const TIMEOUT: Duration = Duration::from_secs(30);
/// OTMM's Citrus Spritz 12oz pack shot: version 2 of the asset chain that began as
/// `f9de6bb3…`, approved, rights from 2026-04-01 to 2027-03-31.
const PACK_SHOT: &str = "9df3f341f9ddbf5d15998eb65c6c7363936490f9";
const PACK_SHOT_CHAIN: &str = "f9de6bb3e5c869aaba88bd7d5aded3f91c68c34b";
/// iconik's Citrus Spritz hero can: approved, rights to 2027-12-31.
const HERO_CAN: &str = "a1f0c3d2-5b6e-4f70-8a91-b2c3d4e5f601";
/// OTMM's Winter Berry 750ml shelf talker: approved, but its rights ended on 2025-01-15.
const SHELF_TALKER: &str = "f84d81b3186b0110621d1c08229d931280c96fd7";
/// OTMM's brand film: only restricted.
const BRAND_FILM: &str = "d3fa69303a3b169d32b6ba1979b967f018366ddf";
const METRO_FRESH: (&str, &str) = ("GC00933311CD", "media@metrofresh.example");
const ATLANTIC: (&str, &str) = ("GC00955577EF", "buyer@atlanticws.example");
const GREEN_MOUNTAIN: (&str, &str) = ("GC00912345AB", "buyer@greenmountain.example");

/// The instance of the process that the hub's event started for `request_id`.
pub(crate) async fn started_by(sandbox: &Sandbox, request_id: &str) -> anyhow::Result<String> {
    sandbox
        .started_instance(DEFINITION, |input| input["request_id"] == request_id)
        .await
}

/// The hub's request `request_id` as the simulator holds it.
pub(crate) fn hub_request(sandbox: &Sandbox, request_id: &str) -> anyhow::Result<Value> {
    let records = sandbox.records("trading_grid")?;
    let request = &records["state"]["requests"][request_id];
    ensure!(request.is_object(), "no request {request_id} on the hub");
    Ok(request.clone())
}

/// The posts of the hub that reached `company_id`.
pub(crate) fn posts_to(sandbox: &Sandbox, company_id: &str) -> anyhow::Result<Vec<Value>> {
    let records = sandbox.records("trading_grid")?;
    let posts = records["state"]["posts"]
        .as_object()
        .context("the hub's posts")?;
    Ok(posts
        .values()
        .filter(|post| {
            post["recipients"]
                .as_array()
                .is_some_and(|recipients| recipients.iter().any(|r| r == company_id))
        })
        .cloned()
        .collect())
}

/// A partner user's download of a document of a post: the status.
async fn download(
    sandbox: &Sandbox,
    login: &str,
    post_id: &str,
    document_id: &str,
) -> anyhow::Result<u16> {
    let path = format!("/partner/v1/posts/{post_id}/documents/{document_id}");
    let (status, _) = sandbox
        .partner("trading_grid", Some(login), Method::GET, &path, None)
        .await?;
    Ok(status)
}

fn text<'v>(value: &'v Value, what: &str) -> anyhow::Result<&'v str> {
    value
        .as_str()
        .with_context(|| format!("{what} is no text: {value}"))
}

#[tokio::test]
async fn approved_request_is_delivered_by_digest_and_answered() -> anyhow::Result<()> {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        sandbox.deploy(DEFINITION).await?;
        let seeded_posts = posts_to(&sandbox, METRO_FRESH.0)?.len();
        let request_id = sandbox
            .partner_request(
                METRO_FRESH.1,
                json!({"type": "media", "asset": {"system": "otmm", "asset_id": PACK_SHOT},
                   "market": "US", "language": "en-US",
                   "description": "Citrus Spritz 12oz pack shot for our spring circular"}),
            )
            .await?;
        let id = started_by(&sandbox, &request_id).await?;

        // bob sees exactly the bytes he approves: OTMM's current version of the pack shot.
        let approval = sandbox.approval("bob", &id, "review").await?;
        let bound = approval["artifacts"][0].clone();
        ensure!(
            approval["artifacts"].as_array().map(Vec::len) == Some(1)
                && bound["system"] == "otmm"
                && bound["asset_id"] == PACK_SHOT_CHAIN
                && bound["version"] == "2"
                && bound["file_name"] == "citrus-spritz-can-12oz.png",
            "{approval}"
        );
        sandbox
            .decide(
                "bob",
                &approval,
                "approve",
                json!({"usage_note": "Print and web circulars only."}),
                Some("Fine for the spring circular"),
            )
            .await?;
        let instance = sandbox.wait_status(&id, "completed").await?;
        let output = &instance["output"];
        ensure!(
            output["delivered"] == true && output["resolution"] == "delivered",
            "{instance}"
        );
        let sha256 = text(&bound["sha256"], "the bound digest")?;
        ensure!(output["content"]["sha256"] == sha256, "{output}");
        let post_id = text(&output["post_id"], "the post id")?;

        // Metro Fresh received one new post: the approved bytes, as the hub hashed them.
        let posts = posts_to(&sandbox, METRO_FRESH.0)?;
        ensure!(posts.len() == seeded_posts + 1, "{posts:?}");
        let post = posts
            .iter()
            .find(|post| post["post_id"] == post_id)
            .context("the delivered post")?;
        ensure!(
            post["recipients"] == json!([METRO_FRESH.0])
                && post["correlation_id"] == request_id.as_str(),
            "{post}"
        );
        let documents = post["documents"].as_array().context("documents")?;
        ensure!(
            documents.len() == 1 && documents[0]["sha256"] == sha256,
            "{post}"
        );
        ensure!(
            text(&post["body"], "the post body")?.contains("Print and web circulars only."),
            "{post}"
        );
        let document_id = text(&documents[0]["document_id"], "the document id")?;
        ensure!(download(&sandbox, METRO_FRESH.1, post_id, document_id).await? == 200);
        ensure!(download(&sandbox, GREEN_MOUNTAIN.1, post_id, document_id).await? == 404);

        // The ledger: one delivery, to Metro Fresh, of OTMM's version 2 by digest, then
        // downloaded.
        let rows = wait_until(TIMEOUT, "the download in the ledger", || async {
            let rows = sandbox
                .ledger(&format!("?partner={}", METRO_FRESH.0))
                .await?;
            let downloaded =
                !rows.is_empty() && rows.iter().all(|row| row["status"] == "downloaded");
            Ok(downloaded.then_some(rows))
        })
        .await?;
        ensure!(rows.len() == 1, "{rows:?}");
        let row = &rows[0];
        ensure!(
            row["system"] == "otmm"
                && row["asset_id"] == PACK_SHOT_CHAIN
                && row["version"] == "2"
                && row["sha256"] == sha256
                && row["channel"] == "trading_grid"
                && row["reference"] == post_id
                && row["instance_id"] == id.as_str()
                && row["step"] == "deliver",
            "{row}"
        );
        for other in [GREEN_MOUNTAIN.0, ATLANTIC.0] {
            let rows = sandbox.ledger(&format!("?partner={other}")).await?;
            ensure!(rows.is_empty(), "{other}: {rows:?}");
        }

        // OTMM still holds version 2 as the latest; the request is answered and closed.
        let otmm = sandbox.records("otmm")?;
        let asset = &otmm["state"]["assets"][PACK_SHOT];
        ensure!(
            asset["version"] == 2 && asset["latest_version"] == true,
            "{asset}"
        );
        let request = hub_request(&sandbox, &request_id)?;
        let answer = text(&request["answers"][0]["message"], "the answer")?;
        ensure!(
            request["status"] == "closed"
                && request["resolution"] == "delivered"
                && answer.contains(post_id)
                && answer.contains(sha256),
            "{request}"
        );

        // History: the decision recorded the bound bytes; replay equals stored state.
        let history = sandbox.history(&id).await?;
        let decided = history
            .iter()
            .find(|event| event["type"] == "approval_decided")
            .context("approval_decided")?;
        ensure!(
            decided.to_string().contains(sha256),
            "the decision records the bound digest: {decided}"
        );
        sandbox.assert_replay(&id).await?;
        sandbox.stop().await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn declined_request_is_answered_with_the_reason() -> anyhow::Result<()> {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        sandbox.deploy(DEFINITION).await?;
        let seeded_posts = posts_to(&sandbox, ATLANTIC.0)?.len();
        let request_id = sandbox
            .partner_request(
                ATLANTIC.1,
                json!({"type": "media", "asset": {"system": "iconik", "asset_id": HERO_CAN},
                   "market": "CA", "language": "fr-CA",
                   "description": "The Citrus Spritz hero can for our Quebec flyer"}),
            )
            .await?;
        let id = started_by(&sandbox, &request_id).await?;
        let approval = sandbox.approval("bea", &id, "review").await?;
        ensure!(
            approval["artifacts"][0]["system"] == "iconik"
                && approval["artifacts"][0]["asset_id"] == HERO_CAN,
            "{approval}"
        );
        let reason = "Not for Quebec until the French label is cleared";
        sandbox
            .decide("bea", &approval, "reject", Value::Null, Some(reason))
            .await?;
        let instance = sandbox.wait_status(&id, "completed").await?;
        ensure!(
            instance["steps"]["deliver"]["status"] == "skipped"
                && instance["output"]["delivered"] == false,
            "{instance}"
        );

        // Nothing reached the partner; it reads the reason on its closed request.
        ensure!(posts_to(&sandbox, ATLANTIC.0)?.len() == seeded_posts);
        let rows = sandbox.ledger(&format!("?partner={}", ATLANTIC.0)).await?;
        ensure!(rows.is_empty(), "{rows:?}");
        let request = hub_request(&sandbox, &request_id)?;
        ensure!(
            request["status"] == "closed"
                && request["resolution"] == "declined by brand management"
                && text(&request["answers"][0]["message"], "the answer")?.contains(reason),
            "{request}"
        );
        sandbox.assert_replay(&id).await?;
        sandbox.stop().await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn dam_checks_decline_without_a_brand_decision() -> anyhow::Result<()> {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        sandbox.deploy(DEFINITION).await?;
        let cases = [
            (
                json!({"system": "otmm", "asset_id": SHELF_TALKER}),
                "usage rights",
                "are not valid now",
            ),
            (
                json!({"system": "otmm", "asset_id": BRAND_FILM}),
                "restricted",
                "is not approved for partner use (restricted)",
            ),
            (
                json!({"system": "otmm", "asset_id": "no-such-asset"}),
                "missing",
                "was not found in otmm",
            ),
            (Value::Null, "no asset", "names no asset"),
        ];
        let mut started = Vec::new();
        for (asset, what, _) in &cases {
            let request_id = sandbox
                .partner_request(
                    GREEN_MOUNTAIN.1,
                    json!({"type": "media", "asset": asset, "market": "US",
                       "description": format!("Please send it ({what})")}),
                )
                .await?;
            started.push((request_id.clone(), started_by(&sandbox, &request_id).await?));
        }
        for ((request_id, id), (_, what, expected)) in started.iter().zip(&cases) {
            let instance = sandbox.wait_status(id, "completed").await?;
            ensure!(
                instance["steps"]["review"]["status"] == "skipped"
                    && instance["steps"]["deliver"]["status"] == "skipped",
                "{what}: {instance}"
            );
            let request = hub_request(&sandbox, request_id)?;
            ensure!(
                request["status"] == "closed"
                    && request["resolution"] == "not deliverable"
                    && text(&request["answers"][0]["message"], "the answer")?.contains(expected),
                "{what}: {request}"
            );
            sandbox.assert_replay(id).await?;
        }
        // No brand manager was asked, and nothing reached Green Mountain.
        let (_, pending) = sandbox
            .api("bob", Method::GET, "/approvals?status=pending", None)
            .await?;
        ensure!(pending["items"] == json!([]), "{pending}");
        let rows = sandbox
            .ledger(&format!("?partner={}", GREEN_MOUNTAIN.0))
            .await?;
        ensure!(rows.is_empty(), "{rows:?}");
        sandbox.stop().await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn silent_brand_managers_escalate_and_the_partner_still_hears() -> anyhow::Result<()> {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        sandbox.deploy(DEFINITION).await?;
        let request_id = sandbox
            .partner_request(
                METRO_FRESH.1,
                json!({"type": "media", "asset": {"system": "otmm", "asset_id": PACK_SHOT},
                   "market": "US", "description": "Citrus Spritz 12oz pack shot, urgent"}),
            )
            .await?;
        let id = started_by(&sandbox, &request_id).await?;
        sandbox.approval("bob", &id, "review").await?;

        // Nobody decides for 48 hours: the marketing directors get it.
        sandbox.advance("48h").await?;
        sandbox.approval("max", &id, "review").await?;
        // Nor do they within 24 hours: the partner hears that, and nothing is sent.
        sandbox.advance("24h").await?;
        let instance = sandbox.wait_status(&id, "completed").await?;
        ensure!(
            instance["steps"]["review"]["status"] == "failed"
                && instance["steps"]["deliver"]["status"] == "skipped",
            "{instance}"
        );
        let request = hub_request(&sandbox, &request_id)?;
        ensure!(
            request["status"] == "closed"
                && request["resolution"] == "no brand decision in time"
                && text(&request["answers"][0]["message"], "the answer")?
                    .contains("did not decide in time"),
            "{request}"
        );
        let rows = sandbox
            .ledger(&format!("?partner={}", METRO_FRESH.0))
            .await?;
        ensure!(rows.is_empty(), "{rows:?}");
        sandbox.assert_replay(&id).await?;
        sandbox.stop().await?;
        Ok(())
    })
    .await
}
