//! The sandbox clock that every process test leans on: `POST /sandbox/clock` moves the
//! server's time, and what became due happens at once. An approval due in 24h escalates
//! to the marketing directors when the clock passes its due time, and again 8h later.

use gridflow_tests::on_every_database;
use gridflow_tests::process::Sandbox;
use reqwest::Method;
use serde_json::json;

async fn escalates_when_the_clock_passes_due(url: String) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(&url).await?;
    sandbox.deploy("approval-demo").await?;
    let id = sandbox
        .start_instance("approval-demo", json!({"order": 7}))
        .await?;
    let first = sandbox.approval("bob", &id, "review").await?;
    anyhow::ensure!(first["level"] == 0, "{first:#}");
    anyhow::ensure!(sandbox.approvals("max").await?.is_empty());

    let moved = sandbox.advance("25h").await?;
    anyhow::ensure!(
        moved["offset_seconds"].as_i64() >= Some(25 * 3600),
        "{moved}"
    );
    let escalated = sandbox.approval("max", &id, "review").await?;
    anyhow::ensure!(escalated["level"] == 1, "{escalated:#}");

    sandbox.advance("9h").await?;
    let (status, approval) = sandbox
        .api(
            "bob",
            Method::GET,
            &format!("/approvals/{}", first["id"].as_str().unwrap_or_default()),
            None,
        )
        .await?;
    anyhow::ensure!(
        status == 200 && approval["level"] == 2,
        "{status} {approval:#}"
    );
    anyhow::ensure!(sandbox.approvals("max").await?.is_empty());

    // The clock only moves forward.
    let (status, refused) = sandbox
        .api(
            "ana",
            Method::POST,
            "/sandbox/clock",
            Some(json!({"advance": "0s"})),
        )
        .await?;
    anyhow::ensure!(status == 422, "{status} {refused}");
    let (status, _) = sandbox
        .api(
            "bob",
            Method::POST,
            "/sandbox/clock",
            Some(json!({"advance": "1h"})),
        )
        .await?;
    anyhow::ensure!(status == 403, "an approver moved the clock: {status}");
    sandbox.assert_replay(&id).await?;
    sandbox.stop().await
}

#[tokio::test]
async fn the_sandbox_clock_fires_what_became_due() -> anyhow::Result<()> {
    on_every_database(escalates_when_the_clock_passes_due).await
}
