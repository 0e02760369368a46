//! The audit routes through `app(state)` and `oneshot`: key, checkpoints, verify, the
//! streamed export (verified offline here), replay at a seq and with a diff.

// The helpers below are test code too; `allow-unwrap-in-tests` covers only `#[test]` items.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::Value;

use gridflow_core::audit::ExportVerifier;
use gridflow_core::audit::checkpoint::PublicKey;
use support::Harness;

const TOKEN: &str = "test-admin-token";

const TWO_STEPS: &str = r#"
id: two-steps
steps:
  - id: first
    action: core.echo
    with: {message: "hello"}
  - id: second
    needs: [first]
    action: core.noop
"#;

async fn router() -> Router {
    Harness::start(TOKEN).await.router
}

async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, String, Option<String>) {
    let request = support::request(method, uri, token)
        .body(Body::from(body.to_owned()))
        .unwrap();
    let reply = support::send(router, request).await;
    (
        reply.status,
        String::from_utf8(reply.bytes.to_vec()).unwrap(),
        reply.content_type(),
    )
}

async fn json(router: &Router, method: Method, uri: &str) -> (StatusCode, Value) {
    let (status, text, _) = call(router, method, uri, Some(TOKEN), "").await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Deploys and runs one instance to completion; returns its id.
async fn completed_instance(router: &Router) -> String {
    let (status, _, _) = call(
        router,
        Method::POST,
        "/api/v1/definitions",
        Some(TOKEN),
        TWO_STEPS,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, text, _) = call(
        router,
        Method::POST,
        "/api/v1/definitions/two-steps/instances",
        Some(TOKEN),
        "{}",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let id = serde_json::from_str::<Value>(&text).unwrap()["instance_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, instance) = json(router, Method::GET, &format!("/api/v1/instances/{id}")).await;
        if instance["status"] == "completed" {
            return id;
        }
        assert!(
            Instant::now() < deadline,
            "instance did not complete: {instance}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn checkpoints_are_signed_with_the_published_key_and_verify() {
    let router = router().await;
    completed_instance(&router).await;
    let (status, key) = json(&router, Method::GET, "/api/v1/audit/key").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(key["algorithm"], "ed25519");
    let public_key: PublicKey = key["public_key"].as_str().unwrap().parse().unwrap();

    let (status, checkpoint) = json(&router, Method::POST, "/api/v1/audit/checkpoints").await;
    assert_eq!(status, StatusCode::CREATED, "{checkpoint}");
    assert_eq!(checkpoint["seq"], 1);
    assert_eq!(checkpoint["instances"], 1);
    assert_eq!(checkpoint["public_key"], public_key.to_string());
    assert_eq!(
        checkpoint["audit_log_seq"], 1,
        "the deploy is in the audit log"
    );

    let (status, report) = json(&router, Method::GET, "/api/v1/audit/verify").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["checkpoints"], 1);
    assert_eq!(report["instances"], 1);

    let (status, list) = json(&router, Method::GET, "/api/v1/audit/checkpoints").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_export_streams_json_lines_that_verify_offline() {
    let router = router().await;
    let id = completed_instance(&router).await;
    json(&router, Method::POST, "/api/v1/audit/checkpoints").await;
    let (_, key) = json(&router, Method::GET, "/api/v1/audit/key").await;
    let public_key: PublicKey = key["public_key"].as_str().unwrap().parse().unwrap();

    let (status, _, _) = call(&router, Method::GET, "/api/v1/audit/export", None, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, text, content_type) = call(
        &router,
        Method::GET,
        "/api/v1/audit/export",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("application/x-ndjson"));
    let mut verifier = ExportVerifier::new(Some(public_key));
    for line in text.lines() {
        verifier.line(line.as_bytes());
    }
    let report = verifier.finish();
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.instances, 1);
    assert!(text.lines().any(|line| line.contains(&id)));

    let (status, text, _) = call(
        &router,
        Method::GET,
        &format!("/api/v1/audit/export?instance={id}&definition=two-steps"),
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.lines()
            .filter(|line| line.contains("\"kind\":\"event\""))
            .count()
            > 3
    );

    let (status, error) = json(&router, Method::GET, "/api/v1/audit/export?from=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        error["error"]["message"].as_str().unwrap().contains("from"),
        "{error}"
    );
}

#[tokio::test]
async fn replay_shows_the_state_at_a_seq_and_what_each_event_changed() {
    let router = router().await;
    let id = completed_instance(&router).await;
    let (status, first) = json(
        &router,
        Method::GET,
        &format!("/api/v1/instances/{id}/replay?at=1"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["at"], 1);
    assert_eq!(first["state"]["status"], "running");

    let (status, full) = json(
        &router,
        Method::GET,
        &format!("/api/v1/instances/{id}/replay"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(full["matches_stored"], true);
    assert_eq!(full["state"]["status"], "completed");
    let last_seq = full["last_seq"].as_u64().unwrap();

    let (status, beyond) = json(
        &router,
        Method::GET,
        &format!("/api/v1/instances/{id}/replay?at={}", last_seq + 1),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{beyond}");

    let (status, diff) = json(
        &router,
        Method::GET,
        &format!("/api/v1/instances/{id}/replay?diff=true"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    let events = diff["events"].as_array().unwrap();
    assert_eq!(events.len() as u64, last_seq);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "instance_completed");
    assert!(
        last["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|change| change["path"] == "/status" && change["after"] == "completed"),
        "{last}"
    );

    let (status, _) = json(
        &router,
        Method::GET,
        &format!("/api/v1/instances/{id}/replay?diff=maybe"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
