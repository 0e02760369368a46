//! Fail fast, recover by itself: `gridflow serve` on a PostgreSQL cluster the test owns.
//!
//! - Under a steady load of starts, the cluster is stopped for 20 s and started again.
//!   During the outage `/healthz` answers 503 within 1 s, starts and reads answer 503 with
//!   `Retry-After` within 2 s; afterwards every acknowledged start exists and completes,
//!   each step succeeded once.
//! - The server is started while the cluster is down: it listens and answers 503 at once,
//!   logs which database it waits for and when it tries next, and serves normally once
//!   the cluster is up, with nobody restarting it.
//!
//! Each case skips (with a notice) when PostgreSQL's server binaries are not installed.
//! The cluster is stopped and deleted when the case ends, also when it fails.

// The helpers below are test code too; `allow-unwrap-in-tests` covers only `#[test]` items.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

use gridflow_tests::cluster::PgCluster;
use gridflow_tests::{ADMIN_TOKEN, Body, Server, Stream, wait_until};

const DEFINITION: &str = "id: outage-chain
steps:
  - id: a
    action: core.noop
  - id: b
    action: core.noop
    needs: [a]
";
const OUTAGE: Duration = Duration::from_secs(20);

/// One request and how it went.
#[derive(Debug, Clone)]
struct Sample {
    sent: Instant,
    took: Duration,
    status: u16,
    retry_after: bool,
    body: Value,
}

async fn send(request: reqwest::RequestBuilder) -> Sample {
    let sent = Instant::now();
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            let body = response.json().await.unwrap_or(Value::Null);
            Sample {
                sent,
                took: sent.elapsed(),
                status,
                retry_after,
                body,
            }
        }
        // No answer at all (0): counted as a failure by every check below.
        Err(_) => Sample {
            sent,
            took: sent.elapsed(),
            status: 0,
            retry_after: false,
            body: Value::Null,
        },
    }
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?)
}

fn start_request(client: &reqwest::Client, base: &str) -> reqwest::RequestBuilder {
    client
        .post(format!("{base}/api/v1/definitions/outage-chain/instances"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"input": {}}))
}

async fn create_database(cluster: &PgCluster, name: &str) -> anyhow::Result<()> {
    let admin = Database::connect(cluster.url("postgres")).await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    admin.close().await?;
    Ok(())
}

/// Waits until every instance completed with each step succeeded once.
async fn assert_completed(server: &Server, ids: &[String]) -> anyhow::Result<()> {
    wait_until(
        Duration::from_secs(60),
        "every acknowledged start to complete",
        || async {
            for id in ids {
                let (status, view) = server
                    .call(reqwest::Method::GET, &format!("/instances/{id}"), None)
                    .await?;
                match status {
                    200 if view["status"] == "completed" => {}
                    200 => return Ok(None),
                    404 => bail!("acknowledged instance {id} does not exist"),
                    other => bail!("GET /instances/{id} answered {other}: {view}"),
                }
            }
            Ok(Some(()))
        },
    )
    .await?;
    for id in ids {
        let history = server.get(&format!("/instances/{id}/history")).await?;
        let mut succeeded: BTreeMap<String, usize> = BTreeMap::new();
        for event in history["events"].as_array().context("no events")? {
            if event["type"] == "step_succeeded" {
                let step = event["data"]["step"].as_str().context("no step")?;
                *succeeded.entry(step.to_owned()).or_default() += 1;
            }
        }
        let expected: BTreeMap<String, usize> = [("a".to_owned(), 1), ("b".to_owned(), 1)].into();
        ensure!(
            succeeded == expected,
            "instance {id}: step_succeeded per step {succeeded:?}"
        );
    }
    Ok(())
}

/// Checks the samples sent while the database was down: all 503, within `bound`, with
/// `Retry-After` when `retry_after`.
fn check_outage_samples(
    what: &str,
    samples: &[Sample],
    bound: Duration,
    retry_after: bool,
) -> anyhow::Result<()> {
    ensure!(
        samples.len() >= 5,
        "only {} {what} during the outage",
        samples.len()
    );
    let slowest = samples
        .iter()
        .map(|sample| sample.took)
        .max()
        .unwrap_or_default();
    for sample in samples {
        ensure!(
            sample.status == 503,
            "{what} during the outage answered {} in {:?}: {}",
            sample.status,
            sample.took,
            sample.body
        );
        ensure!(
            sample.took < bound,
            "{what} during the outage took {:?} (bound {bound:?})",
            sample.took
        );
        ensure!(
            !retry_after || sample.retry_after,
            "{what} during the outage answered 503 without Retry-After"
        );
    }
    eprintln!(
        "{what}: {} during the outage, slowest {slowest:?}",
        samples.len()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_answered_503_and_everything_resumes_by_itself() -> anyhow::Result<()> {
    let Some(mut cluster) = PgCluster::start()? else {
        return Ok(());
    };
    create_database(&cluster, "outage").await?;
    let server = Server::start_captured(&cluster.url("outage"), &[], &[])?;
    let outcome = outage_under_load(&server, &mut cluster).await;
    if outcome.is_err() {
        for (stream, line) in server.output() {
            if stream == Stream::Stderr {
                eprintln!("server: {line}");
            }
        }
    }
    outcome
}

async fn outage_under_load(server: &Server, cluster: &mut PgCluster) -> anyhow::Result<()> {
    server
        .post("/definitions", Body::Text(DEFINITION.to_owned()))
        .await?;
    let client = client()?;
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (client, base, samples, stop) = (
            client.clone(),
            server.url.clone(),
            samples.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let sample = send(start_request(&client, &base)).await;
                samples.lock().unwrap().push(sample);
                // A steady rate, not a flood.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let acknowledged = |samples: &Mutex<Vec<Sample>>| {
        samples
            .lock()
            .unwrap()
            .iter()
            .filter(|sample| sample.status == 201)
            .count()
    };
    wait_until(
        Duration::from_secs(30),
        "starts before the outage",
        || async { Ok((acknowledged(&samples) >= 20).then_some(())) },
    )
    .await?;
    let some_instance = samples
        .lock()
        .unwrap()
        .iter()
        .find_map(|sample| sample.body["instance_id"].as_str().map(str::to_owned))
        .context("no instance id")?;

    cluster.pause()?;
    let down_at = Instant::now();
    let (mut health, mut reads) = (Vec::new(), Vec::new());
    while down_at.elapsed() < OUTAGE {
        health.push(send(client.get(format!("{}/healthz", server.url))).await);
        reads.push(
            send(
                client
                    .get(format!("{}/api/v1/instances/{some_instance}", server.url))
                    .bearer_auth(ADMIN_TOKEN),
            )
            .await,
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The outage is over once `pg_ctl start` begins: the server accepts connections before
    // `pg_ctl` notices and returns, so only answers before the start count as during it.
    let resuming_at = Instant::now();
    cluster.resume()?;
    let up_at = Instant::now();
    let during =
        |sample: &Sample| sample.sent >= down_at && sample.sent + sample.took < resuming_at;
    let writes: Vec<Sample> = samples
        .lock()
        .unwrap()
        .iter()
        .filter(|sample| during(sample))
        .cloned()
        .collect();
    health.retain(|sample| during(sample));
    reads.retain(|sample| during(sample));

    let acknowledged_at_resume = acknowledged(&samples);
    let resumed = wait_until(
        Duration::from_secs(30),
        "starts after the outage",
        || async { Ok((acknowledged(&samples) >= acknowledged_at_resume + 20).then_some(())) },
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::Release);
    load.await?;
    eprintln!("recovered {:?} after the cluster was up", up_at.elapsed());
    resumed?;

    check_outage_samples("GET /healthz", &health, Duration::from_secs(1), false)?;
    check_outage_samples("starts", &writes, Duration::from_secs(2), true)?;
    check_outage_samples("reads", &reads, Duration::from_secs(2), true)?;

    let samples = samples.lock().unwrap().clone();
    let mut ids = Vec::new();
    for sample in &samples {
        match sample.status {
            201 => ids.push(
                sample.body["instance_id"]
                    .as_str()
                    .context("a 201 without instance_id")?
                    .to_owned(),
            ),
            503 => ensure!(sample.retry_after, "a 503 start without Retry-After"),
            other => bail!("a start answered {other}: {}", sample.body),
        }
    }
    eprintln!(
        "{} starts acknowledged, {} refused",
        ids.len(),
        samples.len() - ids.len()
    );
    assert_completed(server, &ids).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_before_its_database_waits_and_then_serves() -> anyhow::Result<()> {
    let Some(mut cluster) = PgCluster::start()? else {
        return Ok(());
    };
    // Built now (a no-op when fresh), so that the wait below does not include a build.
    gridflow_tests::gridflow_binary()?;
    create_database(&cluster, "late_start").await?;
    cluster.pause()?;
    let url = cluster.url("late_start");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let bind = format!("127.0.0.1:{port}");
    let base = format!("http://{bind}");
    // Returns once the server prints its listening line: after the database is up.
    let starting = {
        let (url, bind) = (url.clone(), bind.clone());
        tokio::task::spawn_blocking(move || {
            Server::start_captured(&url, &["--bind", &bind], &[("RUST_LOG", "warn")])
        })
    };
    let client = client()?;
    let probed = async {
        let health = wait_until(Duration::from_secs(30), "the server to listen", || async {
            let sample = send(client.get(format!("{base}/healthz"))).await;
            Ok((sample.status != 0).then_some(sample))
        })
        .await?;
        ensure!(
            health.status == 503 && health.retry_after,
            "/healthz while the database is down answered {} (Retry-After: {})",
            health.status,
            health.retry_after
        );
        // Long enough for the server to fail a few attempts (each waits 1.5 s for a
        // connection) and log them.
        let listening_at = Instant::now();
        while listening_at.elapsed() < Duration::from_secs(5) {
            let health = send(client.get(format!("{base}/healthz"))).await;
            ensure!(
                health.status == 503 && health.took < Duration::from_secs(1),
                "/healthz while the database is down: {} in {:?}",
                health.status,
                health.took
            );
            let start = send(start_request(&client, &base)).await;
            ensure!(
                start.status == 503 && start.retry_after && start.took < Duration::from_secs(2),
                "a start while the database is down: {} in {:?} (Retry-After: {})",
                start.status,
                start.took,
                start.retry_after
            );
        }
        anyhow::Ok(())
    }
    .await;
    // Up again whatever the probes found, so that the server comes up and is stopped.
    cluster.resume()?;
    let server = starting.await??;
    probed?;

    wait_until(
        Duration::from_secs(30),
        "/healthz to answer 200",
        || async {
            Ok((send(client.get(format!("{base}/healthz"))).await.status == 200).then_some(()))
        },
    )
    .await?;
    server
        .post("/definitions", Body::Text(DEFINITION.to_owned()))
        .await?;
    let started = server
        .post(
            "/definitions/outage-chain/instances",
            Body::Json(json!({"input": {}})),
        )
        .await?;
    let id = started["instance_id"]
        .as_str()
        .context("no instance_id")?
        .to_owned();
    assert_completed(&server, &[id]).await?;

    let waited = server.output().into_iter().any(|(stream, line)| {
        stream == Stream::Stderr
            && line.contains("cannot reach the database")
            && line.contains(&format!("127.0.0.1:{}/late_start", url_port(&url)))
            && line.contains("next_attempt_in")
    });
    ensure!(
        waited,
        "no log line names the database and the next attempt: {:?}",
        server.output()
    );
    Ok(())
}

fn url_port(url: &str) -> &str {
    url.rsplit(':')
        .next()
        .and_then(|tail| tail.split('/').next())
        .unwrap_or_default()
}
