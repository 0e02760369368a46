//! Process 9, `workflows/delivery-audit-report.yaml`: the auditors' report of a period's
//! deliveries, per partner and asset, with downloads, acknowledgements and exceptions,
//! from the distribution ledger checked against VIP's deliveries and the hub's
//! acknowledgements.
//!
//! The period holds what the partners really did: a broadcast spot went to three VIP
//! affiliates (one confirmed, one only downloaded, one's account is suspended) through
//! the broadcast process, and to three hub partners (one accepted, one rejected, one only
//! downloaded); someone also sent a package from VIP's own portal, outside gridflow. The
//! report counts each, lists every exception, leaves out VIP's deliveries of April, and
//! the auditor reads it, checks it against the ledger and replays it. The week before
//! holds nothing, and its report says so.

use anyhow::{Context, ensure};
use chrono::{Duration, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use gridflow_tests::process::{DEADLINE, Sandbox};
use gridflow_tests::process_broadcast::{vip_acknowledge, vip_call, vip_download};
use gridflow_tests::{on_every_database, wait_until};

/// iconik's seeded broadcast spot.
const SPOT: &str = "a1f0c3d2-5b6e-4f70-8a91-b2c3d4e51701";
/// Hub partners and their users.
const GREEN_MOUNTAIN: (&str, &str) = ("GC00912345AB", "buyer@greenmountain.example");
const METRO_FRESH: (&str, &str) = ("GC00933311CD", "media@metrofresh.example");
const ATLANTIC: (&str, &str) = ("GC00955577EF", "buyer@atlanticws.example");

/// The hub share of the spot that the publishing process made in the period (the test's
/// stand-in for it: the spot's bytes from iconik, published to three partners).
fn hub_share() -> Value {
    json!({
        "id": "audit-period-hub-share",
        "name": "The spot shared on the hub (the period's hub deliveries)",
        "steps": [
            {"id": "fetch", "action": "iconik.fetch_content", "with": {"asset_id": SPOT}},
            {"id": "publish", "needs": ["fetch"], "action": "trading_grid.publish_content",
             "with": {"community_id": "cmty-aurora-partners",
                      "partner_company_ids": [GREEN_MOUNTAIN.0, METRO_FRESH.0, ATLANTIC.0],
                      "title": "Aurora Springs summer spot (15s)",
                      "body": "The spot for in-store screens; please confirm.",
                      "requires_ack": true,
                      "content": ["${steps.fetch.output.content}"]}}
        ]
    })
}

/// Waits until the ledger shows `partner`'s delivery in `status`.
async fn ledger_shows(sandbox: &Sandbox, partner: &str, status: &str) -> anyhow::Result<()> {
    wait_until(
        DEADLINE,
        &format!("{partner} {status} in the ledger"),
        || async {
            let rows = sandbox.ledger(&format!("?partner={partner}")).await?;
            Ok(rows.iter().any(|row| row["status"] == status).then_some(()))
        },
    )
    .await
}

/// The VIP deliveries of the period: the broadcast process's, acted on by the affiliates.
async fn vip_deliveries(sandbox: &Sandbox) -> anyhow::Result<String> {
    sandbox.deploy("broadcast-distribution").await?;
    let id = sandbox
        .start_instance(
            "broadcast-distribution",
            json!({"title": "Summer spot", "clips": [SPOT],
                   "affiliates": ["rcp-green-mountain", "rcp-metro-fresh", "rcp-lakeside-market"],
                   "air_from": "2026-12-15T00:00:00Z", "air_until": "2027-03-31T00:00:00Z",
                   "territories": ["US"]}),
        )
        .await?;
    let approval = sandbox.approval("bob", &id, "review").await?;
    sandbox
        .decide("bob", &approval, "approve", Value::Null, None)
        .await?;
    let instance = sandbox.wait_step(&id, "distribute", "succeeded").await?;
    sandbox.wait_status(&id, "waiting").await?;
    let delivery = |recipient: &str| {
        instance["steps"]["distribute"]["output"]["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|delivery| delivery["recipient_id"] == recipient)
            .and_then(|delivery| delivery["id"].as_str())
            .map(str::to_owned)
            .with_context(|| format!("no delivery to {recipient}"))
    };
    vip_acknowledge(
        sandbox,
        "rcp-green-mountain",
        &delivery("rcp-green-mountain")?,
        "traffic@greenmountain.example",
        "On air from the 15th",
    )
    .await?;
    vip_download(sandbox, "rcp-metro-fresh", &delivery("rcp-metro-fresh")?).await?;
    ledger_shows(sandbox, "rcp-green-mountain", "acknowledged").await?;
    ledger_shows(sandbox, "rcp-metro-fresh", "downloaded").await?;
    Ok(id)
}

/// The hub deliveries of the period, acted on by the partners; answers the post id.
async fn hub_deliveries(sandbox: &Sandbox) -> anyhow::Result<String> {
    sandbox
        .call_ok("ana", Method::POST, "/definitions", Some(hub_share()))
        .await?;
    let id = sandbox
        .start_instance("audit-period-hub-share", json!({}))
        .await?;
    let done = sandbox.wait_status(&id, "completed").await?;
    let publish = &done["steps"]["publish"]["output"];
    let post = publish["post_id"].as_str().context("post id")?.to_owned();
    let document = publish["documents"][0]["document_id"]
        .as_str()
        .context("document id")?
        .to_owned();
    let acknowledgements = format!("/partner/v1/posts/{post}/acknowledgements");
    let acknowledge = |login: &'static str, ack_type: &'static str, comment: &'static str| {
        sandbox.partner(
            "trading_grid",
            Some(login),
            Method::POST,
            &acknowledgements,
            Some(json!({"ack_type": ack_type, "comment": comment})),
        )
    };
    let (status, answer) = acknowledge(GREEN_MOUNTAIN.1, "accepted", "Looks great").await?;
    ensure!((200..300).contains(&status), "{status} {answer}");
    let (status, answer) = acknowledge(ATLANTIC.1, "rejected", "We need the fr-CA version").await?;
    ensure!((200..300).contains(&status), "{status} {answer}");
    let (status, _) = sandbox
        .partner(
            "trading_grid",
            Some(METRO_FRESH.1),
            Method::GET,
            &format!("/partner/v1/posts/{post}/documents/{document}"),
            None,
        )
        .await?;
    ensure!(status == 200, "download answered {status}");
    ledger_shows(sandbox, GREEN_MOUNTAIN.0, "acknowledged").await?;
    ledger_shows(sandbox, ATLANTIC.0, "acknowledged").await?;
    ledger_shows(sandbox, METRO_FRESH.0, "downloaded").await?;
    Ok(post)
}

/// A package sent from VIP's own portal to Harbor Liquors: gridflow never saw it.
async fn outside_delivery(sandbox: &Sandbox) -> anyhow::Result<String> {
    let (status, package) = vip_call(
        sandbox,
        None,
        Method::POST,
        "/v1/packages",
        Some(json!({"title": "Shelf talker sent by hand",
                    "recipients": {"recipient_ids": ["rcp-harbor-liquors"]},
                    "rights": {"valid_from": "2026-12-01T00:00:00Z", "valid_until": "2027-06-30T00:00:00Z"}})),
    )
    .await?;
    ensure!(status == 201, "{status} {package}");
    let package_id = package["id"].as_str().context("package id")?;
    let (status, published) = vip_call(
        sandbox,
        None,
        Method::POST,
        &format!("/v1/packages/{package_id}/publish"),
        Some(json!({})),
    )
    .await?;
    ensure!(status == 200, "{status} {published}");
    published["deliveries"][0]["id"]
        .as_str()
        .map(str::to_owned)
        .context("the outside delivery")
}

#[tokio::test]
async fn report_counts_each_partner_and_asset_and_lists_the_exceptions() -> anyhow::Result<()> {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        let from = Utc::now() - Duration::hours(1);
        vip_deliveries(&sandbox).await?;
        let post = hub_deliveries(&sandbox).await?;
        let outside = outside_delivery(&sandbox).await?;
        let until = Utc::now() + Duration::hours(1);

        sandbox.deploy("delivery-audit-report").await?;
        let id = sandbox
            .start_instance(
                "delivery-audit-report",
                json!({"period_from": from.to_rfc3339_opts(SecondsFormat::Secs, true),
                       "period_until": until.to_rfc3339_opts(SecondsFormat::Secs, true)}),
            )
            .await?;
        sandbox.wait_status(&id, "completed").await?;

        // The auditor reads the report as the instance's output.
        let instance = sandbox.get("otto", &format!("/instances/{id}")).await?;
        let report = &instance["output"]["report"];
        ensure!(report["complete"] == true, "{report:#}");
        ensure!(
            report["totals"]
                == json!({"deliveries": 6, "downloaded": 2, "acknowledged": 3, "failed": 1}),
            "{report:#}"
        );
        let partner = |name: &str| {
            report["partners"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|row| row["partner"] == name)
                .cloned()
                .unwrap_or(Value::Null)
        };
        ensure!(
            report["partners"].as_array().map(Vec::len) == Some(6),
            "{report:#}"
        );
        ensure!(partner("rcp-green-mountain")["acknowledged"] == 1);
        ensure!(
            partner("rcp-metro-fresh")["downloaded"] == 1
                && partner("rcp-metro-fresh")["acknowledged"] == 0
        );
        ensure!(partner("rcp-lakeside-market")["failed"] == 1);
        ensure!(
            partner(GREEN_MOUNTAIN.0)["channel"] == "trading_grid"
                && partner(GREEN_MOUNTAIN.0)["acknowledged"] == 1
        );
        let assets = report["assets"].as_array().context("assets")?;
        ensure!(assets.len() == 1, "{assets:#?}");
        ensure!(assets[0]["asset"] == format!("iconik:{SPOT}"));
        ensure!(
            assets[0]["partners"] == 6
                && assets[0]["downloaded"] == 2
                && assets[0]["acknowledged"] == 3
        );

        let exceptions = &report["exceptions"];
        let partners_of = |kind: &str| -> Vec<String> {
            let mut names: Vec<String> = exceptions[kind]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|row| row["partner"].as_str().map(str::to_owned))
                .collect();
            names.sort();
            names
        };
        ensure!(
            partners_of("failed") == ["rcp-lakeside-market"],
            "{exceptions:#}"
        );
        ensure!(
            partners_of("not_acknowledged") == [METRO_FRESH.0, "rcp-metro-fresh"],
            "{exceptions:#}"
        );
        ensure!(
            exceptions["not_acknowledged"]
                .as_array()
                .is_some_and(|rows| rows.iter().all(|row| row["downloaded"] == true))
        );
        ensure!(
            exceptions["rejected_on_hub"] == json!([{"post_id": post, "partners": [ATLANTIC.0]}]),
            "{exceptions:#}"
        );
        ensure!(
            exceptions["acknowledged_outside_ledger"] == json!([]),
            "{exceptions:#}"
        );
        // Only the package sent by hand: VIP's April deliveries are outside the period.
        ensure!(
            partners_of("not_in_ledger") == ["rcp-harbor-liquors"],
            "{exceptions:#}"
        );
        ensure!(exceptions["not_in_ledger"][0]["receipt"] == outside.as_str());

        // The report agrees with the ledger the auditor reads, and replays.
        let ledger = sandbox.ledger("").await?;
        ensure!(ledger.len() == 6, "{ledger:#?}");
        for row in &ledger {
            let reported = report["deliveries"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|line| line["partner"] == row["partner"] && line["channel"] == row["channel"])
                .with_context(|| format!("the report lacks {row}"))?;
            ensure!(reported["status"] == row["status"], "{reported} vs {row}");
            ensure!(reported["version"] == row["version"]);
        }
        sandbox.assert_replay(&id).await?;

        // The week before held nothing: an empty report, no hub post to read.
        let before = sandbox
            .start_instance(
                "delivery-audit-report",
                json!({"period_from": (from - Duration::days(7)).to_rfc3339_opts(SecondsFormat::Secs, true),
                       "period_until": from.to_rfc3339_opts(SecondsFormat::Secs, true)}),
            )
            .await?;
        let quiet = sandbox.wait_status(&before, "completed").await?;
        ensure!(quiet["steps"]["hub_acks"]["status"] == "skipped", "{quiet:#}");
        let report = &quiet["output"]["report"];
        ensure!(
            report["totals"] == json!({"deliveries": 0, "downloaded": 0, "acknowledged": 0, "failed": 0}),
            "{report:#}"
        );
        ensure!(report["partners"] == json!([]) && report["assets"] == json!([]));
        for kind in ["failed", "not_acknowledged", "rejected_on_hub", "acknowledged_outside_ledger", "not_in_ledger"] {
            ensure!(report["exceptions"][kind] == json!([]), "{kind}: {report:#}");
        }
        sandbox.assert_replay(&before).await?;
        sandbox.stop().await
    })
    .await
}
