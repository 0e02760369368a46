//! The Trading Grid hub's signed callbacks under a real `gridflow serve --sandbox`: the
//! server subscribes itself to the hub simulator with a secret of its own, a partner's
//! request on the simulator reaches `POST /api/v1/events/trading_grid` signed with
//! `X-Hub-Signature` and starts its workflow; the poller reads the same event from the
//! hub's feed, and the one claim per event id keeps it to one instance. A callback with a
//! bad signature is refused with 401 and starts nothing. On SQLite and PostgreSQL.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use gridflow_core::webhook::body_signature;
use gridflow_store::CursorStore;
use gridflow_store::sql::{SqlOptions, SqlStore};
use gridflow_tests::{Body, Server, Stream, on_every_database, wait_until};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Started by a partner's request, with its id and type.
const ON_REQUEST: &str = r#"
id: partner-request
input:
  type: object
  required: [request_id, kind]
  properties:
    request_id: {type: string}
    kind: {type: string}
triggers:
  - event: trading_grid.request_created
    input: {request_id: "${event.request_id}", kind: "${event.type}"}
steps:
  - id: note
    action: core.noop
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
    urls.contains_key("trading_grid").then_some(urls)
}

async fn instances(server: &Server) -> anyhow::Result<Vec<Value>> {
    let page = server
        .get("/instances?definition=partner-request&limit=100")
        .await?;
    Ok(page["items"].as_array().cloned().unwrap_or_default())
}

/// A partner user's request on the hub simulator; the hub's request object.
async fn partner_request(hub: &str, description: &str) -> anyhow::Result<Value> {
    let response = reqwest::Client::new()
        .post(format!("{hub}/partner/v1/requests"))
        .header("X-Partner-Login", "media@metrofresh.example")
        .json(
            &json!({"type": "media", "market": "US", "language": "en", "description": description}),
        )
        .send()
        .await?;
    ensure!(
        response.status().is_success(),
        "partner request: {}",
        response.status()
    );
    Ok(response.json().await?)
}

/// The history's first event's actor: who started the instance.
async fn started_by(server: &Server, instance: &Value) -> anyhow::Result<String> {
    let id = instance["id"].as_str().context("an instance id")?;
    let history = server.get(&format!("/instances/{id}/history")).await?;
    Ok(history["events"][0]["actor"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

async fn callbacks_and_polls_deliver_each_event_once(database_url: &str) -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    let config = directory.path().join("gridflow.toml");
    // The hub's poller reads at start-up and then only every hour: while the server runs,
    // the callback alone brings an event; a restart makes the poller read it again.
    std::fs::write(
        &config,
        format!(
            "[sandbox]\nstate_dir = {:?}\n\n[connectors.trading_grid]\nbase_url = \"http://127.0.0.1:9\"\n\
             company_id = \"sandbox\"\nclient_id_env = \"TG_KEY\"\nclient_secret_env = \"TG_SECRET\"\n\
             poll_interval = \"1h\"\n",
            directory.path().join("sandbox").display().to_string()
        ),
    )?;
    let config = config.display().to_string();
    let arguments = ["--sandbox", "--config", config.as_str()];
    let server = Server::start_captured(database_url, &arguments, &[])?;
    let urls = wait_until(TIMEOUT, "the sandbox start-up lines", || async {
        Ok(simulators(&server.output()))
    })
    .await?;
    server
        .post("/definitions", Body::Text(ON_REQUEST.to_owned()))
        .await?;
    let store = SqlStore::connect(database_url, SqlOptions::default()).await?;
    wait_until(TIMEOUT, "the hub poller's first pass", || async {
        Ok(store.load_cursor("trading_grid").await?)
    })
    .await?;

    // The partner's request comes back signed at once and starts its workflow.
    let request =
        partner_request(&urls["trading_grid"], "A lifestyle shot for the US site").await?;
    let request_id = request["request_id"]
        .as_str()
        .context("a request id")?
        .to_owned();
    let started = wait_until(TIMEOUT, "the request's instance", || async {
        let listed = instances(&server).await?;
        Ok(listed
            .iter()
            .find(|item| item["input"]["request_id"] == request_id.as_str())
            .cloned())
    })
    .await?;
    ensure!(started["input"]["kind"] == "media", "{started}");
    let actor = started_by(&server, &started).await?;
    ensure!(
        actor == "event:trading_grid",
        "started by the callback, not {actor:?}"
    );

    // A forged callback: 401, nothing started.
    let body = json!({"event_id": "evt-999999", "event": "request.created", "occurred_at": "2026-12-07T09:00:00Z",
                      "data": {"request_id": "req-forged", "type": "media"}})
    .to_string();
    let forged = reqwest::Client::new()
        .post(format!("{}/api/v1/events/trading_grid", server.url))
        .header(
            "X-Hub-Signature",
            body_signature(b"not-the-secret", body.as_bytes()),
        )
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await?;
    ensure!(
        forged.status() == 401,
        "forged callback: {}",
        forged.status()
    );
    ensure!(
        instances(&server).await?.len() == 1,
        "the forged callback started nothing"
    );

    // A restart: the poller reads the same event from the hub's feed, finds it claimed by
    // the callback, and starts nothing. (A graceful stop gives the poll lease away.)
    let before = store.load_cursor("trading_grid").await?;
    server.terminate()?;
    let server = Server::start_captured(database_url, &arguments, &[])?;
    wait_until(TIMEOUT, "the poller past the callback's event", || async {
        let cursor = store.load_cursor("trading_grid").await?;
        Ok((cursor != before).then_some(()))
    })
    .await?;
    let listed = instances(&server).await?;
    ensure!(
        listed.len() == 1,
        "one instance for the event that came both by callback and by poll: {listed:?}"
    );
    server.kill()?;
    Ok(())
}

#[tokio::test]
async fn hub_callbacks_and_the_poller_deliver_each_event_once() {
    on_every_database(|url| async move { callbacks_and_polls_deliver_each_event_once(&url).await })
        .await
        .unwrap();
}
