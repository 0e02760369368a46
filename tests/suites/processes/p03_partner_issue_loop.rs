//! Process 3, `workflows/partner-issue-loop.yaml`: version 2 of the Citrus Spritz can
//! went to Green Mountain and Metro Fresh; Metro Fresh raises an issue on the hub (low
//! quality); the hub's `issue_created` event starts the loop; the content team (cody)
//! decides the task with the corrected file's name; OTMM then holds version 3, both
//! holders hold version 3 and lost version 2 (ledger and hub), and the issue is closed
//! with an answer the partner reads. When the content team declines, the partner reads
//! the team's answer on the closed issue and nothing changes in OTMM or the ledger.

use reqwest::Method;
use serde_json::{Value, json};

use gridflow_tests::on_every_database;
use gridflow_tests::process::Sandbox;
use gridflow_tests::process_issues::{
    CITRUS_CAN, GREEN_MOUNTAIN, METRO_FRESH, can_download, deliver, hub_state, otmm_versions,
    partner, posts_after, wait_ledger,
};

const DEFINITION: &str = "partner-issue-loop";

/// Version 2 delivered to Green Mountain and Metro Fresh, the loop deployed, and Metro
/// Fresh's issue raised: `(instance, issue id, old post, old document)`.
async fn issue_raised(sandbox: &Sandbox) -> anyhow::Result<(String, String, String, String)> {
    let partners = [GREEN_MOUNTAIN.0, METRO_FRESH.0];
    let earlier = deliver(sandbox, "otmm", CITRUS_CAN, None, &partners).await?;
    assert_eq!(earlier["content"]["version"], "2");
    let old_post = earlier["post_id"].as_str().unwrap_or_default().to_owned();
    let old_document = hub_state(sandbox)?["posts"][&old_post]["documents"][0]["document_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    sandbox.deploy(DEFINITION).await?;
    let (status, issue) = partner(
        sandbox,
        METRO_FRESH.1,
        Method::POST,
        "/partner/v1/issues",
        Some(json!({"title": "Blurry can shot", "description": "The 12oz can is blurry at shelf-talker size.",
                    "category": "low_quality", "severity": "high",
                    "related": {"post_id": old_post, "asset_id": CITRUS_CAN, "system": "otmm"}})),
    )
    .await?;
    assert_eq!(status, 201, "{issue}");
    let issue_id = issue["issue_id"].as_str().unwrap_or_default().to_owned();
    let instance = sandbox
        .started_instance(DEFINITION, |input| input["issue_id"] == issue_id.as_str())
        .await?;
    Ok((instance, issue_id, old_post, old_document))
}

/// The issue as Metro Fresh reads it on the hub.
async fn issue_seen(sandbox: &Sandbox, issue_id: &str) -> anyhow::Result<Value> {
    let path = format!("/partner/v1/issues/{issue_id}");
    let (status, issue) = partner(sandbox, METRO_FRESH.1, Method::GET, &path, None).await?;
    assert_eq!(status, 200, "{issue}");
    Ok(issue)
}

#[tokio::test]
async fn a_corrected_version_reaches_every_holder_and_closes_the_issue() {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        let (id, issue_id, old_post, old_document) = issue_raised(&sandbox).await?;
        let task = sandbox.approval("cody", &id, "triage").await?;
        let title = task["title"].as_str().unwrap_or_default();
        assert!(title.contains("Blurry can shot") && title.contains("latest version 2"), "{title}");
        assert_eq!(issue_seen(&sandbox, &issue_id).await?["status"], "in_progress");
        sandbox
            .decide("cody", &task, "approve",
                    json!({"file_name": "citrus-spritz-can-12oz-300dpi.png", "note": "Re-exported at 300 dpi."}),
                    Some("Re-exported from the master"))
            .await?;
        let instance = sandbox.wait_status(&id, "completed").await?;
        assert_eq!(instance["output"]["version"], "3");
        assert_eq!(instance["output"]["issue_status"], "closed");

        let versions = otmm_versions(&sandbox, CITRUS_CAN)?;
        let latest = versions.last().expect("versions");
        assert_eq!((latest.0, latest.2.as_str(), latest.3), (3, "citrus-spritz-can-12oz-300dpi.png", true));
        assert_eq!(versions.iter().filter(|version| version.3).count(), 1);

        let hub = hub_state(&sandbox)?;
        for (company, login) in [GREEN_MOUNTAIN, METRO_FRESH] {
            let posts = posts_after(&hub, &old_post, company);
            let corrected = posts.last().expect("the corrected post");
            assert_eq!(corrected["correlation_id"], issue_id.as_str());
            let body = corrected["body"].as_str().unwrap_or_default();
            assert!(body.contains("Version 3 replaces") && body.contains("Re-exported at 300 dpi."), "{body}");
            let document = &corrected["documents"][0];
            assert_eq!(document["file_name"], "citrus-spritz-can-12oz-300dpi.png");
            assert!(can_download(&sandbox, login, corrected["post_id"].as_str().unwrap_or_default(),
                                 document["document_id"].as_str().unwrap_or_default()).await?);
            assert!(!can_download(&sandbox, login, &old_post, &old_document).await?, "{login} lost version 2");
        }
        wait_ledger(
            &sandbox,
            CITRUS_CAN,
            &[
                (GREEN_MOUNTAIN.0, "2", "withdrawn"),
                (GREEN_MOUNTAIN.0, "3", "downloaded"),
                (METRO_FRESH.0, "2", "withdrawn"),
                (METRO_FRESH.0, "3", "downloaded"),
            ],
        )
        .await?;
        let issue = issue_seen(&sandbox, &issue_id).await?;
        assert_eq!(issue["status"], "closed");
        let answer = issue["comments"][0]["body"].as_str().unwrap_or_default();
        assert!(answer.starts_with("Corrected in version 3"), "{answer}");
        sandbox.assert_replay(&id).await?;
        sandbox.stop().await?;
        Ok(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_declined_issue_is_still_answered_and_closed() {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        let (id, issue_id, old_post, old_document) = issue_raised(&sandbox).await?;
        let task = sandbox.approval("cody", &id, "triage").await?;
        sandbox
            .decide(
                "cody",
                &task,
                "reject",
                Value::Null,
                Some("The master is sharp at 300 dpi; please download it again."),
            )
            .await?;
        let instance = sandbox.wait_status(&id, "completed").await?;
        assert_eq!(instance["output"]["decision"], "rejected");
        for step in [
            "new_version",
            "corrected",
            "republish",
            "withdraw_faulty",
            "answer_corrected",
        ] {
            assert_eq!(instance["steps"][step]["status"], "skipped", "{step}");
        }
        let issue = issue_seen(&sandbox, &issue_id).await?;
        assert_eq!(issue["status"], "closed");
        assert_eq!(
            issue["comments"][0]["body"],
            "No new version: The master is sharp at 300 dpi; please download it again."
        );
        let versions = otmm_versions(&sandbox, CITRUS_CAN)?;
        assert_eq!(versions.len(), 2, "no new version: {versions:?}");
        let hub = hub_state(&sandbox)?;
        for (company, login) in [GREEN_MOUNTAIN, METRO_FRESH] {
            assert_eq!(
                posts_after(&hub, &old_post, company),
                Vec::<Value>::new(),
                "nothing republished to {company}"
            );
            assert!(can_download(&sandbox, login, &old_post, &old_document).await?);
        }
        wait_ledger(
            &sandbox,
            CITRUS_CAN,
            &[
                (GREEN_MOUNTAIN.0, "2", "downloaded"),
                (METRO_FRESH.0, "2", "downloaded"),
            ],
        )
        .await?;
        sandbox.assert_replay(&id).await?;
        sandbox.stop().await?;
        Ok(())
    })
    .await
    .unwrap();
}
