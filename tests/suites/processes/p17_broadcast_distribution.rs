//! Process 17, `workflows/broadcast-distribution.yaml`: broadcast clips from iconik to
//! affiliates through VIP, bound to a brand manager's approval, with each affiliate's
//! confirmation of receipt.
//!
//! - Two approved clips go to four affiliates: three receive them, the suspended one's
//!   delivery fails. One affiliate confirms at once, one only downloads, one confirms
//!   after the 72-hour reminder; after 48 more hours the silent one is reported. VIP,
//!   the ledger and iconik hold exactly that.
//! - A clip whose licence ended is refused before anyone is asked; a clip a brand
//!   manager rejects goes nowhere, and iconik records the refusal.

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use gridflow_tests::on_every_database;
use gridflow_tests::process::Sandbox;
use gridflow_tests::process_broadcast::{
    iconik_field, signals_received, vip_acknowledge, vip_download, vip_state,
};

/// iconik's seeded broadcast spot and promo, approved, licensed into 2027.
const SPOT: &str = "a1f0c3d2-5b6e-4f70-8a91-b2c3d4e51701";
const PROMO: &str = "a1f0c3d2-5b6e-4f70-8a91-b2c3d4e51702";
/// iconik's seeded holiday 2024 video, approved, licensed until 2025-01-15.
const EXPIRED: &str = "a1f0c3d2-5b6e-4f70-8a91-b2c3d4e5f603";
const GREEN_MOUNTAIN: &str = "rcp-green-mountain";
const METRO_FRESH: &str = "rcp-metro-fresh";
const ATLANTIC: &str = "rcp-atlantic-ws";
/// Suspended in VIP: its delivery fails.
const LAKESIDE: &str = "rcp-lakeside-market";

fn input(clips: &[&str], affiliates: &[&str]) -> Value {
    json!({
        "title": "Aurora Springs winter broadcast flight",
        "clips": clips,
        "affiliates": affiliates,
        "air_from": "2026-12-15T00:00:00Z",
        "air_until": "2027-02-28T23:59:59Z",
        "territories": ["US"],
    })
}

/// The VIP delivery id of `recipient` in the instance's `distribute` output.
fn delivery_of(instance: &Value, recipient: &str) -> anyhow::Result<String> {
    instance["steps"]["distribute"]["output"]["deliveries"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|delivery| delivery["recipient_id"] == recipient)
        .and_then(|delivery| delivery["id"].as_str())
        .map(str::to_owned)
        .with_context(|| format!("no delivery to {recipient}: {instance:#}"))
}

/// The ledger rows of VIP package `package`, as the auditor reads them.
async fn package_rows(sandbox: &Sandbox, package: &str) -> anyhow::Result<Vec<Value>> {
    Ok(sandbox
        .ledger("?channel=vip")
        .await?
        .into_iter()
        .filter(|row| row["reference"] == package)
        .collect())
}

#[tokio::test]
async fn clips_reach_affiliates_who_confirm_or_are_reminded() -> anyhow::Result<()> {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        sandbox.deploy("broadcast-distribution").await?;
        let affiliates = [GREEN_MOUNTAIN, METRO_FRESH, ATLANTIC, LAKESIDE];
        let id = sandbox
            .start_instance("broadcast-distribution", input(&[SPOT, PROMO], &affiliates))
            .await?;

        // Bob approves the two files; their digests are bound to his decision.
        let approval = sandbox.approval("bob", &id, "review").await?;
        ensure!(
            approval["title"]
                .as_str()
                .is_some_and(|title| title.contains("2 broadcast clip(s)")),
            "{approval}"
        );
        sandbox
            .decide(
                "bob",
                &approval,
                "approve",
                Value::Null,
                Some("Cleared for the winter flight"),
            )
            .await?;
        let instance = sandbox.wait_step(&id, "distribute", "succeeded").await?;
        let fetched: Vec<Value> = instance["steps"]["fetch"]["output"]
            .as_array()
            .context("fetch output")?
            .iter()
            .map(|output| output["content"].clone())
            .collect();
        let digests: Vec<&str> = fetched
            .iter()
            .filter_map(|content| content["sha256"].as_str())
            .collect();
        ensure!(digests.len() == 2, "{fetched:?}");
        let package = instance["steps"]["distribute"]["output"]["package_id"]
            .as_str()
            .context("package id")?
            .to_owned();

        // VIP holds the package with both files, the air window and the affiliates.
        let vip = vip_state(&sandbox)?;
        let stored = &vip["packages"][&package];
        ensure!(stored["status"] == "published", "{stored:#}");
        ensure!(stored["rights"]["valid_until"] == "2027-02-28T23:59:59Z");
        ensure!(stored["rights"]["territories"] == json!(["US"]));
        let files: Vec<&str> = stored["files"]
            .as_array()
            .context("files")?
            .iter()
            .filter_map(|file| file["sha256"].as_str())
            .collect();
        ensure!(
            files.len() == 2 && digests.iter().all(|digest| files.contains(digest)),
            "VIP holds the approved bytes: {files:?} vs {digests:?}"
        );

        // The three affiliates wait for confirmation; the suspended one failed.
        sandbox.wait_status(&id, "waiting").await?;
        let green = delivery_of(&instance, GREEN_MOUNTAIN)?;
        let metro = delivery_of(&instance, METRO_FRESH)?;
        let atlantic = delivery_of(&instance, ATLANTIC)?;
        ensure!(
            vip_state(&sandbox)?["deliveries"][delivery_of(&instance, LAKESIDE)?]["status"]
                == "failed"
        );
        vip_acknowledge(
            &sandbox,
            GREEN_MOUNTAIN,
            &green,
            "traffic@greenmountain.example",
            "Scheduled for air",
        )
        .await?;
        vip_download(&sandbox, METRO_FRESH, &metro).await?;
        signals_received(&sandbox, &id, 1).await?;

        // 72 hours later the two silent ones are reminded; Atlantic then confirms.
        sandbox.advance("73h").await?;
        sandbox.wait_step(&id, "remind", "succeeded").await?;
        sandbox.wait_status(&id, "waiting").await?;
        vip_acknowledge(
            &sandbox,
            ATLANTIC,
            &atlantic,
            "media@atlanticws.example",
            "Received, thanks",
        )
        .await?;
        signals_received(&sandbox, &id, 2).await?;
        sandbox.advance("49h").await?;
        let done = sandbox.wait_status(&id, "completed").await?;
        let output = &done["output"];
        ensure!(output["decision"] == "approved", "{output:#}");
        ensure!(output["package_id"] == package.as_str());
        ensure!(
            output["confirmed"] == json!([GREEN_MOUNTAIN, ATLANTIC]),
            "{output:#}"
        );
        ensure!(output["silent"] == json!([METRO_FRESH]), "{output:#}");
        ensure!(
            output["failed"][0]["recipient_id"] == LAKESIDE,
            "{output:#}"
        );

        // VIP: one announcement to the three, one reminder to the two silent ones.
        let vip = vip_state(&sandbox)?;
        let mut notices: Vec<&Value> = vip["notifications"]
            .as_object()
            .context("notifications")?
            .values()
            .collect();
        notices.sort_by_key(|notice| notice["id"].as_str().map(str::to_owned));
        ensure!(notices.len() == 2, "{notices:?}");
        ensure!(notices[0]["recipient_ids"] == json!([ATLANTIC, GREEN_MOUNTAIN, METRO_FRESH]));
        ensure!(notices[1]["recipient_ids"] == json!([ATLANTIC, METRO_FRESH]));
        ensure!(vip["deliveries"][&green]["status"] == "acknowledged");
        ensure!(vip["deliveries"][&atlantic]["status"] == "acknowledged");
        ensure!(vip["deliveries"][&metro]["status"] == "downloaded");

        // The ledger: each clip to each affiliate, with the approved digest and what
        // became of it.
        let rows = package_rows(&sandbox, &package).await?;
        ensure!(rows.len() == 8, "two clips to four affiliates: {rows:#?}");
        for row in &rows {
            ensure!(
                row["system"] == "iconik"
                    && digests.contains(&row["sha256"].as_str().unwrap_or_default())
            );
            let expected = match row["partner"].as_str() {
                Some(GREEN_MOUNTAIN | ATLANTIC) => "acknowledged",
                Some(METRO_FRESH) => "downloaded",
                Some(LAKESIDE) => "failed",
                other => anyhow::bail!("a delivery to {other:?}"),
            };
            ensure!(row["status"] == expected, "{row:#}");
        }

        // iconik records where the clips went and who confirmed.
        for clip in [SPOT, PROMO] {
            ensure!(
                iconik_field(&sandbox, clip, "distribution_status")?
                    == [json!("distributed to affiliates (VIP)")]
            );
            ensure!(
                iconik_field(&sandbox, clip, "distribution_package")?
                    == [json!(format!("vip:{package}"))]
            );
            ensure!(
                iconik_field(&sandbox, clip, "affiliates_confirmed")?
                    == [json!(GREEN_MOUNTAIN), json!(ATLANTIC)]
            );
        }
        sandbox.assert_replay(&id).await?;
        sandbox.stop().await
    })
    .await
}

#[tokio::test]
async fn expired_or_rejected_clips_reach_no_affiliate() -> anyhow::Result<()> {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        sandbox.deploy("broadcast-distribution").await?;
        let packages_before = vip_state(&sandbox)?["packages"]
            .as_object()
            .map_or(0, |packages| packages.len());

        // A clip whose licence ended: refused before anyone is asked.
        let expired = sandbox
            .start_instance(
                "broadcast-distribution",
                input(&[SPOT, EXPIRED], &[GREEN_MOUNTAIN]),
            )
            .await?;
        let done = sandbox.wait_status(&expired, "completed").await?;
        ensure!(done["steps"]["fetch"]["status"] == "skipped", "{done:#}");
        ensure!(done["steps"]["review"]["status"] == "skipped", "{done:#}");
        ensure!(
            done["output"]["decision"]
                .as_str()
                .is_some_and(|decision| decision.starts_with("not asked")),
            "{done:#}"
        );
        ensure!(sandbox.approvals("bob").await?.is_empty());

        // A clip Bea rejects: nothing goes out, iconik records the refusal.
        let rejected = sandbox
            .start_instance(
                "broadcast-distribution",
                input(&[PROMO], &[GREEN_MOUNTAIN, ATLANTIC]),
            )
            .await?;
        let approval = sandbox.approval("bea", &rejected, "review").await?;
        sandbox
            .decide(
                "bea",
                &approval,
                "reject",
                Value::Null,
                Some("Wrong cut for the holiday flight"),
            )
            .await?;
        let done = sandbox.wait_status(&rejected, "completed").await?;
        ensure!(done["output"]["decision"] == "rejected", "{done:#}");
        ensure!(done["output"]["comment"] == "Wrong cut for the holiday flight");
        ensure!(done["output"]["package_id"].is_null() && done["output"]["confirmed"] == json!([]));
        ensure!(done["steps"]["distribute"]["status"] == "skipped");

        let vip = vip_state(&sandbox)?;
        ensure!(
            vip["packages"]
                .as_object()
                .map_or(0, |packages| packages.len())
                == packages_before,
            "no package was made"
        );
        ensure!(
            vip["notifications"]
                .as_object()
                .is_none_or(|notices| notices.is_empty())
        );
        ensure!(
            sandbox.ledger("?channel=vip").await?.is_empty(),
            "nothing delivered"
        );
        ensure!(
            iconik_field(&sandbox, PROMO, "distribution_status")?
                == [json!("distribution refused")]
        );
        ensure!(iconik_field(&sandbox, EXPIRED, "distribution_status")?.is_empty());
        sandbox.assert_replay(&expired).await?;
        sandbox.assert_replay(&rejected).await?;
        sandbox.stop().await
    })
    .await
}
