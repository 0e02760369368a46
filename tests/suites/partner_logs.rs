//! The partner side under a real `gridflow serve --sandbox`, with every gridflow crate
//! logging at debug. Content is fetched by digest from iconik (its files come through
//! signed storage links) and OTMM, then published to a hub partner and a VIP recipient.
//! The partner's download comes back through the hub's signed callback into the ledger.
//! No expiring link, token or credential may appear anywhere: not in a history event, a
//! ledger row, the audit export or any line the server wrote. On SQLite and PostgreSQL.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use reqwest::Method;
use serde_json::json;

use gridflow_connectors::simulator::smintio::SANDBOX_REFRESH_TOKEN;
use gridflow_connectors::simulator::{SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD};
use gridflow_tests::{ADMIN_TOKEN, Body, Server, Stream, on_every_database, wait_until};

const TIMEOUT: Duration = Duration::from_secs(60);

const LOG_FILTER: &str = "info,gridflow=debug,gridflow_core=debug,gridflow_store=debug,\
                          gridflow_runtime=debug,gridflow_connectors=debug";

const SHARE: &str = r#"
id: share-by-digest
steps:
  - id: iconik
    action: iconik.fetch_content
    with: {asset_id: a1f0c3d2-5b6e-4f70-8a91-b2c3d4e5f604}
  - id: otmm
    action: otmm.fetch_content
    with: {asset_id: 9df3f341f9ddbf5d15998eb65c6c7363936490f9}
  - id: hub
    needs: [iconik, otmm]
    action: trading_grid.publish_content
    with:
      community_id: cmty-aurora-partners
      partner_company_ids: [GC00912345AB]
      title: "Pack shots"
      body: "Approved pack shots, by digest."
      content: ["${steps.iconik.output.content}", "${steps.otmm.output.content}"]
  - id: vip
    needs: [iconik]
    action: vip.publish_content
    with:
      title: "Pack shots"
      recipients: {recipient_ids: [rcp-harbor-liquors]}
      content: ["${steps.iconik.output.content}"]
"#;

/// The simulators' URLs from the `sandbox <name> <url>` start-up lines.
fn simulators(lines: &[(Stream, String)]) -> Option<BTreeMap<String, String>> {
    let urls: BTreeMap<String, String> = lines
        .iter()
        .filter(|(stream, _)| *stream == Stream::Stderr)
        .filter_map(|(_, line)| line.strip_prefix("sandbox ")?.split_once(' '))
        .filter(|(_, url)| url.starts_with("http://127.0.0.1:"))
        .map(|(name, url)| (name.to_owned(), url.to_owned()))
        .collect();
    (urls.len() >= 6).then_some(urls)
}

/// What must never be written anywhere: credentials, tokens and the marks of a signed,
/// expiring link.
fn forbidden() -> Vec<(&'static str, String)> {
    vec![
        (
            "the sandbox client secret",
            SANDBOX_CLIENT_SECRET.to_owned(),
        ),
        ("the sandbox password", SANDBOX_PASSWORD.to_owned()),
        (
            "the Smint.io refresh token",
            SANDBOX_REFRESH_TOKEN.to_owned(),
        ),
        ("the admin token", ADMIN_TOKEN.to_owned()),
        (
            "basic credentials",
            format!("{SANDBOX_CLIENT_ID}:{SANDBOX_CLIENT_SECRET}"),
        ),
        ("a signed link", "Signature=".to_owned()),
        ("an expiring link", "Expires=".to_owned()),
        ("a storage link", "/storage/".to_owned()),
        ("a CDN link", "/cdn/".to_owned()),
        ("an access token", "access_token\":\"".to_owned()),
    ]
}

fn holds_simulator_token(text: &str) -> bool {
    text.match_indices("sim-").any(|(index, _)| {
        let rest = &text.as_bytes()[index + 4..];
        rest.len() >= 48 && rest[..48].iter().all(u8::is_ascii_hexdigit)
    })
}

async fn nothing_secret_anywhere(database_url: &str) -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    let config = directory.path().join("gridflow.toml");
    std::fs::write(
        &config,
        format!(
            "[sandbox]\nstate_dir = {:?}\n\n[content]\ndir = {:?}\n",
            directory.path().join("sandbox").display().to_string(),
            directory.path().join("content").display().to_string(),
        ),
    )?;
    let config = config.display().to_string();
    let server = Server::start_captured(
        database_url,
        &["--sandbox", "--config", config.as_str()],
        &[("RUST_LOG", LOG_FILTER)],
    )?;
    let urls = wait_until(TIMEOUT, "the sandbox start-up lines", || async {
        Ok(simulators(&server.output()))
    })
    .await?;
    server
        .post("/definitions", Body::Text(SHARE.to_owned()))
        .await?;
    let (status, started) = server
        .call(
            Method::POST,
            "/definitions/share-by-digest/instances",
            Some(Body::Json(json!({"input": {}}))),
        )
        .await?;
    ensure!(status == 201, "start: {status} {started}");
    let id = started["instance_id"]
        .as_str()
        .context("an instance id")?
        .to_owned();
    let view = wait_until(TIMEOUT, "the share to complete", || async {
        let view = server.get(&format!("/instances/{id}")).await?;
        ensure!(view["status"] != "failed", "the share failed: {view}");
        Ok((view["status"] == "completed").then_some(view))
    })
    .await?;

    // Three deliveries: two artifacts to the hub partner, one to the VIP recipient.
    let ledger = server.get("/ledger?limit=50").await?;
    let rows = ledger["items"].as_array().cloned().unwrap_or_default();
    ensure!(rows.len() == 3, "{ledger}");
    let hub = &view["steps"]["hub"]["output"];
    let post = hub["post_id"].as_str().context("a post id")?;
    let document = hub["documents"][0]["document_id"]
        .as_str()
        .context("a document id")?;
    let downloaded = reqwest::Client::new()
        .get(format!(
            "{}/partner/v1/posts/{post}/documents/{document}",
            urls["trading_grid"]
        ))
        .header("X-Partner-Login", "buyer@greenmountain.example")
        .send()
        .await?;
    ensure!(downloaded.status().is_success(), "{}", downloaded.status());
    wait_until(TIMEOUT, "the download in the ledger", || async {
        let page = server
            .get("/ledger?partner=GC00912345AB&status=downloaded")
            .await?;
        Ok(page["items"]
            .as_array()
            .is_some_and(|items| items.len() == 1)
            .then_some(()))
    })
    .await?;

    let stored = [
        server
            .get(&format!("/instances/{id}/history"))
            .await?
            .to_string(),
        server.get("/ledger?limit=50").await?.to_string(),
        server
            .get_text_as(ADMIN_TOKEN, &format!("/audit/export?instance={id}"))
            .await?,
    ];
    let lines = server.kill_and_collect()?;
    let forbidden = forbidden();
    for (index, text) in stored.iter().enumerate() {
        for (what, needle) in &forbidden {
            ensure!(
                !text.contains(needle.as_str()),
                "{what} is in stored text {index}"
            );
        }
        ensure!(!holds_simulator_token(text), "a simulator token is stored");
        ensure!(!text.contains("http://"), "a link is stored: {index}");
    }
    ensure!(
        lines.iter().any(|(_, line)| line.contains("DEBUG")),
        "the server logged at debug"
    );
    for (index, (stream, line)) in lines.iter().enumerate() {
        for (what, needle) in &forbidden {
            ensure!(
                !line.contains(needle.as_str()),
                "{what} is in {stream:?} line {index}"
            );
        }
        ensure!(
            !holds_simulator_token(line),
            "a simulator token is in {stream:?} line {index}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_link_token_or_credential_in_history_ledger_or_logs() {
    on_every_database(|url| async move { nothing_secret_anywhere(&url).await })
        .await
        .unwrap();
}
