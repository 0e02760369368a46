//! Process 6, `workflows/version-change-notice.yaml`: version 1 of the Citrus Spritz can
//! went to Green Mountain and Atlantic; the notice tells both that version 2 replaces it
//! (with the file, the effective date, the instructions and the regional restrictions),
//! a brand manager having approved it bound to that file, and on the effective date
//! (the sandbox clock moved past it) version 1 is withdrawn from both. A rejected
//! notice reaches no partner and withdraws nothing.

use chrono::{Duration as Span, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use gridflow_tests::on_every_database;
use gridflow_tests::process::Sandbox;
use gridflow_tests::process_issues::{
    ATLANTIC, CITRUS_CAN, GREEN_MOUNTAIN, METRO_FRESH, can_download, deliver, otmm_versions,
    posts_after, wait_ledger,
};

const DEFINITION: &str = "version-change-notice";

fn input(effective_at: &str) -> Value {
    json!({"asset_id": CITRUS_CAN, "old_version": "1", "new_version": "2", "effective_at": effective_at,
           "replacement_instructions": "Replace the can shot on shelf talkers and web listings.",
           "regional_restrictions": "CA-QC: show the fr-CA label next to it."})
}

/// Version 1 delivered to Green Mountain and Atlantic: the post and its document.
async fn old_version_delivered(sandbox: &Sandbox) -> anyhow::Result<(String, String)> {
    let partners = [GREEN_MOUNTAIN.0, ATLANTIC.0];
    let earlier = deliver(sandbox, "otmm", CITRUS_CAN, Some("1"), &partners).await?;
    let post_id = earlier["post_id"].as_str().unwrap_or_default().to_owned();
    let hub = gridflow_tests::process_issues::hub_state(sandbox)?;
    let document_id = hub["posts"][&post_id]["documents"][0]["document_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok((post_id, document_id))
}

#[tokio::test]
async fn holders_of_the_old_version_are_told_and_lose_it_on_the_effective_date() {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        let (old_post, old_document) = old_version_delivered(&sandbox).await?;
        sandbox.deploy(DEFINITION).await?;
        let effective_at = (Utc::now() + Span::days(3)).to_rfc3339_opts(SecondsFormat::Secs, true);
        let id = sandbox
            .start_instance(DEFINITION, input(&effective_at))
            .await?;

        let approval = sandbox.approval("bob", &id, "approve").await?;
        assert_eq!(
            approval["artifacts"][0]["version"], "2",
            "bound to version 2: {approval}"
        );
        let title = approval["title"].as_str().unwrap_or_default();
        assert!(title.starts_with("Tell 2 holders"), "{title}");
        sandbox
            .decide("bob", &approval, "approve", json!({}), Some("Send it"))
            .await?;
        sandbox.wait_step(&id, "effective", "waiting").await?;

        // Before the effective date: both hold version 1 and got the notice with version 2.
        let hub = gridflow_tests::process_issues::hub_state(&sandbox)?;
        for (company, login) in [GREEN_MOUNTAIN, ATLANTIC] {
            let posts = posts_after(&hub, &old_post, company);
            assert_eq!(posts.len(), 1, "one notice to {company}");
            let notice = &posts[0];
            let title = notice["title"].as_str().unwrap_or_default();
            assert!(
                title.contains("version 2 replaces version 1") && title.contains(&effective_at),
                "{title}"
            );
            let body = notice["body"].as_str().unwrap_or_default();
            for needle in [
                "Replace the can shot",
                "CA-QC: show the fr-CA label",
                &effective_at,
            ] {
                assert!(body.contains(needle), "{needle} in {body}");
            }
            assert!(can_download(&sandbox, login, &old_post, &old_document).await?);
            let document = &notice["documents"][0];
            assert!(
                can_download(
                    &sandbox,
                    login,
                    notice["post_id"].as_str().unwrap_or_default(),
                    document["document_id"].as_str().unwrap_or_default()
                )
                .await?
            );
        }
        assert!(
            posts_after(&hub, &old_post, METRO_FRESH.0).is_empty(),
            "Metro Fresh never had version 1"
        );

        sandbox.advance("4d").await?;
        let instance = sandbox.wait_status(&id, "completed").await?;
        assert_eq!(instance["output"]["decision"], "approved");
        assert_eq!(
            instance["output"]["notified"],
            json!([GREEN_MOUNTAIN.0, ATLANTIC.0])
        );
        for (_, login) in [GREEN_MOUNTAIN, ATLANTIC] {
            assert!(
                !can_download(&sandbox, login, &old_post, &old_document).await?,
                "{login} lost version 1"
            );
        }
        wait_ledger(
            &sandbox,
            CITRUS_CAN,
            &[
                (GREEN_MOUNTAIN.0, "1", "withdrawn"),
                (GREEN_MOUNTAIN.0, "2", "downloaded"),
                (ATLANTIC.0, "1", "withdrawn"),
                (ATLANTIC.0, "2", "downloaded"),
            ],
        )
        .await?;
        // The notice withdraws partners' copies, not the DAM's: OTMM still holds both
        // versions, the new one as the latest.
        let versions: Vec<(u64, bool)> = otmm_versions(&sandbox, CITRUS_CAN)?
            .into_iter()
            .map(|(version, _, _, latest)| (version, latest))
            .collect();
        assert_eq!(versions, [(1, false), (2, true)]);
        sandbox.assert_replay(&id).await?;
        sandbox.stop().await?;
        Ok(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_rejected_notice_reaches_nobody_and_withdraws_nothing() {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        let (old_post, old_document) = old_version_delivered(&sandbox).await?;
        sandbox.deploy(DEFINITION).await?;
        let effective_at = (Utc::now() + Span::days(3)).to_rfc3339_opts(SecondsFormat::Secs, true);
        let id = sandbox
            .start_instance(DEFINITION, input(&effective_at))
            .await?;
        let approval = sandbox.approval("bea", &id, "approve").await?;
        sandbox
            .decide(
                "bea",
                &approval,
                "reject",
                json!({}),
                Some("Version 2 still lacks the fr-CA label"),
            )
            .await?;
        let instance = sandbox.wait_status(&id, "completed").await?;
        assert_eq!(instance["output"]["decision"], "rejected");
        assert_eq!(instance["output"]["notified"], json!([]));
        for step in ["notice", "effective", "still_holding", "withdraw_old"] {
            assert_eq!(instance["steps"][step]["status"], "skipped", "{step}");
        }
        sandbox.advance("4d").await?;
        let hub = gridflow_tests::process_issues::hub_state(&sandbox)?;
        for (company, login) in [GREEN_MOUNTAIN, ATLANTIC] {
            assert!(
                posts_after(&hub, &old_post, company).is_empty(),
                "{company} got only version 1"
            );
            assert!(can_download(&sandbox, login, &old_post, &old_document).await?);
        }
        let (_, body) = sandbox
            .api(
                "otto",
                Method::GET,
                &format!("/ledger?asset={CITRUS_CAN}&version=2"),
                None,
            )
            .await?;
        assert_eq!(body["items"], json!([]), "version 2 went to nobody");
        sandbox.assert_replay(&id).await?;
        sandbox.stop().await?;
        Ok(())
    })
    .await
    .unwrap();
}
