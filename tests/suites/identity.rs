//! Identity end to end, on the real binary and every database (SQLite, and PostgreSQL
//! when `DATABASE_URL` is set):
//! - a start with an `Idempotency-Key`, sent again and again, concurrently, and again
//!   after the server was killed with SIGKILL and restarted, starts one instance, and each
//!   repeat answers it with 200;
//! - the demo tokens of `serve --sandbox` stop working once that server is gone, even
//!   after a SIGKILL: the next server refuses them, lists them revoked, and the audit log
//!   records the revocation.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use gridflow_tests::{ADMIN_TOKEN, Body, Server, Stream, on_every_database, wait_until};

const SLEEPY: &str = "id: sleepy\nsteps:\n  - id: nap\n    sleep: 1h\n";

/// `POST /definitions/sleepy/instances` with `key`: status and instance id.
async fn start(server: &Server, key: &str, input: &Value) -> anyhow::Result<(u16, String)> {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/definitions/sleepy/instances",
            server.url
        ))
        .bearer_auth(ADMIN_TOKEN)
        .header("Idempotency-Key", key)
        .json(&json!({ "input": input }))
        .send()
        .await?;
    let status = response.status().as_u16();
    let body: Value = response.json().await?;
    let id = body["instance_id"]
        .as_str()
        .with_context(|| format!("start answered {status}: {body}"))?
        .to_owned();
    Ok((status, id))
}

async fn instance_ids(server: &Server) -> anyhow::Result<BTreeSet<String>> {
    let page = server.get("/instances?limit=500").await?;
    Ok(page["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|item| item["id"].as_str().map(str::to_owned))
        .collect())
}

#[tokio::test]
async fn one_idempotency_key_starts_one_instance_across_retries_concurrency_and_sigkill()
-> anyhow::Result<()> {
    on_every_database(|url| async move {
        let server = Server::start(&url)?;
        server
            .post("/definitions", Body::Text(SLEEPY.to_owned()))
            .await?;
        let input = json!({"order": 7});

        let (status, first) = start(&server, "order-7", &input).await?;
        ensure!(status == 201, "first start answered {status}");
        for _ in 0..3 {
            let (status, again) = start(&server, "order-7", &input).await?;
            ensure!(
                status == 200 && again == first,
                "repeat answered {status} {again}"
            );
        }
        // Concurrent first sends of another key: one instance, one 201.
        let calls: Vec<_> = (0..16)
            .map(|_| {
                let url = server.url.clone();
                tokio::spawn(async move {
                    let response = reqwest::Client::new()
                        .post(format!("{url}/api/v1/definitions/sleepy/instances"))
                        .bearer_auth(ADMIN_TOKEN)
                        .header("Idempotency-Key", "order-8")
                        .json(&json!({"input": {"order": 8}}))
                        .send()
                        .await?;
                    let status = response.status().as_u16();
                    let body: Value = response.json().await?;
                    anyhow::Ok((
                        status,
                        body["instance_id"].as_str().unwrap_or_default().to_owned(),
                    ))
                })
            })
            .collect();
        let mut concurrent = BTreeSet::new();
        let mut created = 0;
        for call in calls {
            let (status, id) = call.await??;
            ensure!(
                status == 200 || status == 201,
                "a concurrent start answered {status}"
            );
            created += usize::from(status == 201);
            concurrent.insert(id);
        }
        ensure!(
            concurrent.len() == 1 && created == 1,
            "{concurrent:?}, {created} created"
        );
        ensure!(instance_ids(&server).await?.len() == 2);

        // The server dies without any shutdown; the client retries after a restart.
        server.kill()?;
        let server = Server::start(&url)?;
        let (status, after) = start(&server, "order-7", &input).await?;
        ensure!(
            status == 200 && after == first,
            "after the restart: {status} {after}"
        );
        let (status, refused) = {
            let (status, body) = server
                .call(
                    Method::POST,
                    "/definitions/sleepy/instances",
                    Some(Body::Json(json!({"input": {"order": 9}}))),
                )
                .await?;
            (status, body)
        };
        ensure!(status == 201, "a start without a key: {status} {refused}");
        let ids = instance_ids(&server).await?;
        ensure!(ids.len() == 3, "{ids:?}");
        ensure!(ids.contains(&first));
        Ok(())
    })
    .await
}

/// The demo users' tokens the sandbox printed: `(user, token)`.
fn demo_tokens(server: &Server) -> Option<Vec<(String, String)>> {
    let tokens: Vec<(String, String)> = server
        .output()
        .iter()
        .filter(|(stream, _)| *stream == Stream::Stderr)
        .filter_map(|(_, line)| {
            let (head, token) = line.split_once(" token=")?;
            let user = head.split_whitespace().next()?.to_owned();
            Some((user, token.trim().to_owned()))
        })
        .collect();
    (tokens.len() == gridflow::http::sandbox_tokens::sandbox_users().len()).then_some(tokens)
}

#[tokio::test]
async fn sandbox_demo_tokens_end_with_their_server_even_after_sigkill() -> anyhow::Result<()> {
    on_every_database(|url| async move {
        let directory = tempfile::tempdir()?;
        let config = directory.path().join("gridflow.toml");
        std::fs::write(
            &config,
            format!(
                "[sandbox]\nstate_dir = {:?}\n",
                directory.path().join("sandbox").display().to_string()
            ),
        )?;
        let config = config.display().to_string();
        let sandbox = Server::start_captured(&url, &["--sandbox", "--config", &config], &[])?;
        let demo = wait_until(Duration::from_secs(10), "the demo tokens", || async {
            Ok(demo_tokens(&sandbox))
        })
        .await?;
        let (_, analyst) = demo.iter().find(|(user, _)| user == "ana").context("ana")?;
        let (status, _) = sandbox
            .call_as(analyst, Method::GET, "/instances", None)
            .await?;
        ensure!(
            status == 200,
            "the demo token works while its sandbox runs: {status}"
        );

        sandbox.kill()?;
        // A plain server on the same database: the demo tokens are refused and revoked.
        let server = Server::start(&url)?;
        for (user, token) in &demo {
            let (status, body) = server
                .call_as(token, Method::GET, "/instances", None)
                .await?;
            ensure!(
                status == 401,
                "{user}'s demo token answered {status}: {body}"
            );
        }
        let listed = server.get("/tokens").await?;
        let items = listed["items"].as_array().context("items")?;
        ensure!(items.len() == demo.len(), "{listed}");
        for item in items {
            ensure!(item["revoked"] == true && item["sandbox"] == true, "{item}");
        }
        let log = server.get_text_as(ADMIN_TOKEN, "/audit/export").await?;
        let revocations = log
            .lines()
            .filter(|line| line.contains("\"token_revoked\""))
            .count();
        ensure!(
            revocations == demo.len(),
            "{revocations} revocations in the audit export"
        );
        for (_, token) in &demo {
            ensure!(
                !log.contains(token.as_str()),
                "a demo token is in the audit export"
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn the_server_closes_half_open_connections_after_the_configured_timeout() -> anyhow::Result<()>
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let database = gridflow_store::test_util::sqlite_file();
    let directory = tempfile::tempdir()?;
    let config = directory.path().join("gridflow.toml");
    std::fs::write(&config, "[http]\nheader_read_timeout = \"300ms\"\n")?;
    let config = config.display().to_string();
    let server = Server::start_captured(&database.1, &["--config", &config], &[])?;
    let address = server
        .url
        .strip_prefix("http://")
        .context("the server's url")?
        .to_owned();
    let mut sockets = Vec::new();
    for _ in 0..50 {
        let mut stream = tokio::net::TcpStream::connect(&address).await?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await?;
        sockets.push(stream);
    }
    let started = std::time::Instant::now();
    for stream in &mut sockets {
        let mut buffer = [0u8; 256];
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        ensure!(
            closed.is_ok(),
            "a half-open connection was still open after 10 s"
        );
    }
    ensure!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The server still serves complete requests.
    let health = reqwest::get(format!("{}/healthz", server.url)).await?;
    ensure!(health.status() == 200);
    Ok(())
}
