//! Process 13, `workflows/rights-expiry-recall.yaml`. The Aurora brand film's usage
//! rights end on 2026-12-31 (OTMM's expiration date); delivered to Green Mountain and
//! Atlantic, its window is observed, and 14 days before the end (the sandbox clock moved
//! there) the rights trigger starts the recall: legal (lea) words the guidance, both
//! partners get it, and when the rights end both shares are withdrawn (hub and ledger)
//! and OTMM marks the film expired. Smint.io's licence change of the mountain-spring
//! photo (now restricted in Germany) starts it through the `licence_changed` event;
//! legal rejects the recall (the restriction does not touch these partners): both
//! partners are told they may keep using it, and keep it.

use chrono::{DateTime, Duration as Span, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use gridflow_tests::on_every_database;
use gridflow_tests::process::Sandbox;
use gridflow_tests::process_issues::{
    ATLANTIC, GREEN_MOUNTAIN, METRO_FRESH, can_download, deliver, hub_state, posts_after,
    wait_ledger,
};

const DEFINITION: &str = "rights-expiry-recall";

/// The OTMM brand film (one version), its rights ending 2026-12-31.
const BRAND_FILM: &str = "d3fa69303a3b169d32b6ba1979b967f018366ddf";

/// The Smint.io licence (LPT) of the mountain-spring photo, with no known end.
const MOUNTAIN_SPRING: &str = "5e0c1a2b-3c4d-4e5f-8a6b-7c8d9e0f0004";

/// The sandbox clock's move that brings `now` (the server's time, `ahead` of the wall
/// clock) just past `instant`; at least an hour, so that a wall clock already past it
/// still wakes the timers.
fn past(instant: DateTime<Utc>, ahead: Span) -> (String, Span) {
    let gap = (instant - (Utc::now() + ahead)).max(Span::zero()) + Span::hours(1);
    (format!("{}s", gap.num_seconds()), gap)
}

/// The shares of the earlier delivery, as `(post, document)`.
fn shared(hub: &Value, post_id: &str) -> (String, String) {
    let document = hub["posts"][post_id]["documents"][0]["document_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (post_id.to_owned(), document)
}

#[tokio::test]
async fn expiring_rights_guide_every_holder_then_withdraw_the_shares_at_the_end() {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        sandbox.deploy(DEFINITION).await?;
        let partners = [GREEN_MOUNTAIN.0, ATLANTIC.0];
        let earlier = deliver(&sandbox, "otmm", BRAND_FILM, None, &partners).await?;
        let ends_at: DateTime<Utc> = earlier["rights"][0]["valid_until"]
            .as_str()
            .unwrap_or_default()
            .parse()?;
        let (post, document) = shared(
            &hub_state(&sandbox)?,
            earlier["post_id"].as_str().unwrap_or_default(),
        );

        let (advance, ahead) = past(ends_at - Span::days(14), Span::zero());
        sandbox.advance(&advance).await?;
        let id = sandbox
            .started_instance(DEFINITION, |input| input["asset_id"] == BRAND_FILM)
            .await?;
        let task = sandbox.approval("lea", &id, "legal").await?;
        let title = task["title"].as_str().unwrap_or_default();
        assert!(
            title.starts_with("Recall otmm asset") && title.contains("from 2 partner deliveries"),
            "{title}"
        );
        let guidance = "Take the 30s brand film off air and out of store screens by 31 December.";
        sandbox
            .decide("lea", &task, "approve", json!({"guidance": guidance}), None)
            .await?;
        sandbox.wait_step(&id, "rights_end", "waiting").await?;

        let hub = hub_state(&sandbox)?;
        for (company, login) in [GREEN_MOUNTAIN, ATLANTIC] {
            let posts = posts_after(&hub, &post, company);
            assert_eq!(posts.len(), 1, "guidance to {company}");
            assert!(
                posts[0]["title"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("Usage guidance: stop using")
            );
            let body = posts[0]["body"].as_str().unwrap_or_default();
            assert!(
                body.starts_with("The usage rights end on") && body.ends_with(guidance),
                "{body}"
            );
            assert!(
                can_download(&sandbox, login, &post, &document).await?,
                "{login} holds it until the end"
            );
        }
        assert!(
            posts_after(&hub, &post, METRO_FRESH.0).is_empty(),
            "Metro Fresh never had it"
        );

        let (advance, _) = past(ends_at, ahead);
        sandbox.advance(&advance).await?;
        let instance = sandbox.wait_status(&id, "completed").await?;
        assert_eq!(instance["output"]["decision"], "approved");
        for (_, login) in [GREEN_MOUNTAIN, ATLANTIC] {
            assert!(
                !can_download(&sandbox, login, &post, &document).await?,
                "{login} lost the film"
            );
        }
        wait_ledger(
            &sandbox,
            BRAND_FILM,
            &[
                (GREEN_MOUNTAIN.0, "1", "withdrawn"),
                (ATLANTIC.0, "1", "withdrawn"),
            ],
        )
        .await?;
        let film = &sandbox.records("otmm")?["state"]["assets"][BRAND_FILM];
        assert_eq!(
            film["metadata"]["CUSTOM.FIELD.STATUS"][1], "Expired",
            "{film}"
        );
        sandbox.assert_replay(&id).await?;
        sandbox.stop().await?;
        Ok(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_restricted_licence_is_explained_and_kept_when_legal_rejects_the_recall() {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        sandbox.deploy(DEFINITION).await?;
        let partners = [GREEN_MOUNTAIN.0, METRO_FRESH.0];
        let earlier = deliver(&sandbox, "smintio", MOUNTAIN_SPRING, None, &partners).await?;
        let (post, document) = shared(&hub_state(&sandbox)?, earlier["post_id"].as_str().unwrap_or_default());

        let terms = json!([{"name": [{"culture": "en", "value": "Standard licence"}], "sequence_number": 1,
            "valid_from": "2026-02-01T00:00:00Z", "valid_until": null, "allowed_usages": [],
            "restricted_geographies": [{"culture": "en", "metadata_element": {"key": "DE", "name": "Germany"}}]}]);
        let path = format!("/_sim/smintio/assets/{MOUNTAIN_SPRING}/license-terms");
        let (status, answer) = sandbox.partner("smintio", None, Method::PUT, &path, Some(terms)).await?;
        anyhow::ensure!(status == 200, "licence terms: {status} {answer}");

        let id = sandbox.started_instance(DEFINITION, |input| input["asset_id"] == MOUNTAIN_SPRING).await?;
        let started: Value = sandbox.api("ana", Method::GET, &format!("/instances/{id}"), None).await?.1;
        assert_eq!(started["input"]["reason"], "The licence terms changed: the asset is now restricted for use");
        let task = sandbox.approval("lea", &id, "legal").await?;
        sandbox
            .decide("lea", &task, "reject", Value::Null, Some("Germany is none of these partners' markets"))
            .await?;
        let instance = sandbox.wait_status(&id, "completed").await?;
        assert_eq!(instance["output"]["decision"], "rejected");
        assert_eq!(instance["output"]["guided"], json!([GREEN_MOUNTAIN.0, METRO_FRESH.0]));
        for step in ["rights_end", "still_holding", "recall", "dam_asset", "mark_expired"] {
            assert_eq!(instance["steps"][step]["status"], "skipped", "{step}");
        }
        let hub = hub_state(&sandbox)?;
        for (company, login) in [GREEN_MOUNTAIN, METRO_FRESH] {
            let posts = posts_after(&hub, &post, company);
            assert_eq!(posts.len(), 1, "guidance to {company}");
            assert!(posts[0]["title"].as_str().unwrap_or_default().ends_with("stays in use"));
            let body = posts[0]["body"].as_str().unwrap_or_default();
            assert!(body.ends_with("You may keep using the asset under its current terms."), "{body}");
            assert!(can_download(&sandbox, login, &post, &document).await?, "{login} keeps it");
        }
        wait_ledger(&sandbox, MOUNTAIN_SPRING, &[(GREEN_MOUNTAIN.0, "1", "downloaded"), (METRO_FRESH.0, "1", "downloaded")])
            .await?;
        sandbox.assert_replay(&id).await?;
        sandbox.stop().await?;
        Ok(())
    })
    .await
    .unwrap();
}
