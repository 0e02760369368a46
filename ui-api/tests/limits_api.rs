//! `[limits]` at the HTTP edge: the page size of every list, signal payloads and signals
//! kept. Router built with `app(state)`, called with `oneshot`, on the in-memory store.

mod support;

use std::num::{NonZeroU32, NonZeroU64};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use serde_json::{Value, json};

use gridflow_core::limits::Limits;
use gridflow_runtime::EngineOptions;
use support::{Harness, Options, Reply};

const TOKEN: &str = "test-admin-token";

const WAITS: &str = r#"
id: waits
steps:
  - id: first
    wait: {signal: go}
  - id: later
    needs: [first]
    wait: {signal: note}
"#;

async fn router(limits: Limits) -> Router {
    let options = Options {
        engine: EngineOptions {
            limits,
            ..EngineOptions::default()
        },
        ..Options::new(TOKEN)
    };
    Harness::with(options).await.router
}

async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    body: Option<String>,
) -> (StatusCode, Value) {
    let request = support::request(method, uri, Some(TOKEN))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.map_or_else(Body::empty, Body::from))
        .expect("the test request is well-formed");
    let Reply { status, bytes, .. } = support::send(router, request).await;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("the body is JSON")
    };
    (status, body)
}

fn assert_limit_error(answer: &(StatusCode, Value), status: StatusCode, code: &str, limit: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(limit), "the message names {limit}: {body}");
}

#[tokio::test]
async fn every_list_refuses_a_page_over_the_configured_maximum() {
    let limits = Limits {
        max_page_size: NonZeroU32::new(3).unwrap(),
        ..Limits::default()
    };
    let router = router(limits).await;
    let deployed = call(
        &router,
        Method::POST,
        "/api/v1/definitions",
        Some(WAITS.to_owned()),
    )
    .await;
    assert!(deployed.0.is_success(), "{}", deployed.1);
    for list in [
        "/api/v1/instances",
        "/api/v1/definitions",
        "/api/v1/definitions/waits/versions",
        "/api/v1/approvals",
    ] {
        let over = call(&router, Method::GET, &format!("{list}?limit=4"), None).await;
        assert_limit_error(
            &over,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "limits.max_page_size",
        );
        assert_eq!(over.1["error"]["details"][0]["path"], "limit", "{list}");
        let at_max = call(&router, Method::GET, &format!("{list}?limit=3"), None).await;
        assert_eq!(at_max.0, StatusCode::OK, "{list}: {}", at_max.1);
    }
}

#[tokio::test]
async fn a_page_defaults_to_the_maximum_when_that_is_lower_than_fifty() {
    let limits = Limits {
        max_page_size: NonZeroU32::new(2).unwrap(),
        ..Limits::default()
    };
    let router = router(limits).await;
    let deployed = call(
        &router,
        Method::POST,
        "/api/v1/definitions",
        Some(WAITS.to_owned()),
    )
    .await;
    assert!(deployed.0.is_success(), "{}", deployed.1);
    for _ in 0..3 {
        let started = call(
            &router,
            Method::POST,
            "/api/v1/definitions/waits/instances",
            Some(json!({"input": {}}).to_string()),
        )
        .await;
        assert_eq!(started.0, StatusCode::CREATED, "{}", started.1);
    }
    let (status, page) = call(&router, Method::GET, "/api/v1/instances", None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2), "{page}");
    assert!(page["next_cursor"].is_string(), "{page}");
}

#[tokio::test]
async fn signals_over_their_limits_answer_413_and_409() {
    let limits = Limits {
        max_signal_bytes: NonZeroU64::new(100).unwrap(),
        max_pending_signals: NonZeroU32::new(1).unwrap(),
        ..Limits::default()
    };
    let router = router(limits).await;
    let deployed = call(
        &router,
        Method::POST,
        "/api/v1/definitions",
        Some(WAITS.to_owned()),
    )
    .await;
    assert!(deployed.0.is_success(), "{}", deployed.1);
    let (status, started) = call(
        &router,
        Method::POST,
        "/api/v1/definitions/waits/instances",
        Some(json!({"input": {}}).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let id = started["instance_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, view) = call(
            &router,
            Method::GET,
            &format!("/api/v1/instances/{id}"),
            None,
        )
        .await;
        if view["status"] == "waiting" {
            break;
        }
        assert!(Instant::now() < deadline, "never waiting: {view}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let signal = |name: &str| format!("/api/v1/instances/{id}/signals/{name}");
    let big = json!("b".repeat(120)).to_string();
    let too_large = call(&router, Method::POST, &signal("note"), Some(big)).await;
    assert_limit_error(
        &too_large,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "limits.max_signal_bytes",
    );
    assert_eq!(
        too_large.1["error"]["details"][0]["path"],
        "limits.max_signal_bytes"
    );

    let kept = call(
        &router,
        Method::POST,
        &signal("note"),
        Some("{}".to_owned()),
    )
    .await;
    assert_eq!(kept.0, StatusCode::OK, "{}", kept.1);
    let one_more = call(
        &router,
        Method::POST,
        &signal("note"),
        Some("{}".to_owned()),
    )
    .await;
    assert_limit_error(
        &one_more,
        StatusCode::CONFLICT,
        "limit_exceeded",
        "limits.max_pending_signals",
    );

    let (_, history) = call(
        &router,
        Method::GET,
        &format!("/api/v1/instances/{id}/history"),
        None,
    )
    .await;
    let received = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["type"] == "signal_received")
        .count();
    assert_eq!(
        received, 1,
        "only the accepted signal is in history: {history}"
    );
}
