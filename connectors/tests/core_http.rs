//! `core.http` over real HTTP against a small axum server on loopback: success, error
//! classification, retry-after hints, timeouts, the idempotency key, and credentials kept
//! out of errors and outputs. Loopback is refused unless `[core_http] allow` lists it, so
//! these tests allow `127.0.0.1/32`; `${secrets.NAME}` references and the response cap.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::response::Redirect;
use axum::routing::{get, post};
use gridflow_connectors::config::CoreHttpConfig;
use gridflow_connectors::core::CoreConnector;
use gridflow_connectors::{Error, Invocation, Registry};
use gridflow_core::{InstanceId, StepId};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const SECRET_TOKEN: &str = "s3cr3t-token-value";

fn router() -> Router {
    Router::new()
        .route(
            "/json",
            get(|| async {
                (
                    [
                        ("x-auth-token", "server-side-secret"),
                        ("x-request-id", "r-1"),
                    ],
                    Json(json!({"ok": true, "items": [1, 2]})),
                )
            }),
        )
        .route("/text", get(|| async { "plain text" }))
        .route(
            "/missing",
            get(|| async { (StatusCode::NOT_FOUND, "asset 42 not found") }),
        )
        .route(
            "/limited",
            get(|| async {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, "7")],
                    "slow down",
                )
            }),
        )
        .route(
            "/broken",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "database on fire") }),
        )
        .route(
            "/hang",
            get(|| async {
                std::future::pending::<()>().await;
                "never"
            }),
        )
        .route(
            "/huge-error",
            get(|| async { (StatusCode::BAD_GATEWAY, "x".repeat(100_000)) }),
        )
        .route("/echo", post(echo))
        .route("/big", get(|| async { "y".repeat(4096) }))
        .route(
            "/to-other-loopback",
            get(|| async { Redirect::temporary("http://127.0.0.2:9/") }),
        )
        .route("/check-secret", get(check_secret))
        .route("/unauthorized", get(unauthorized))
}

/// Returns what the request carried, so that tests can check what was sent.
async fn echo(headers: HeaderMap, body: String) -> Json<Value> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    Json(json!({
        "idempotency_key": header("idempotency-key"),
        "content_type": header("content-type"),
        "x_custom": header("x-custom"),
        "body": body,
    }))
}

/// Whether the request carried the resolved secret, and the header echoed back.
async fn check_secret(headers: HeaderMap) -> Json<Value> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Json(json!({
        "matches": authorization == format!("Bearer {SECRET_TOKEN}"),
        "echo": authorization,
    }))
}

/// Quotes the credential back, as careless servers do.
async fn unauthorized(headers: HeaderMap) -> impl IntoResponse {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (
        StatusCode::UNAUTHORIZED,
        format!("credential '{authorization}' rejected"),
    )
}

/// Serves [`router`] on an ephemeral loopback port for the rest of the test.
async fn start_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback port is free");
    let address = listener.local_addr().expect("listener has an address");
    tokio::spawn(async move {
        axum::serve(listener, router())
            .await
            .expect("test server runs");
    });
    format!("http://{address}")
}

/// `[core_http]` allowing the loopback address the test servers listen on.
fn loopback_allowed() -> CoreHttpConfig {
    CoreHttpConfig {
        allow: vec!["127.0.0.1/32".parse().expect("a network")],
        ..CoreHttpConfig::default()
    }
}

async fn http(arguments: Value) -> Result<Value, Error> {
    http_with(
        CoreConnector::with_secrets(&loopback_allowed(), Arc::new(|_: &str| None)),
        arguments,
    )
    .await
}

/// Calls `core.http` of `connector`.
async fn http_with(connector: CoreConnector, arguments: Value) -> Result<Value, Error> {
    let mut registry = Registry::with_builtin();
    registry.register(Arc::new(connector));
    registry.invoke("core.http", invocation(arguments)).await
}

fn invocation(arguments: Value) -> Invocation {
    Invocation::new(
        "http",
        arguments,
        InstanceId::from("instance-7"),
        StepId::from("call"),
        Some(3),
        2,
    )
}

#[tokio::test]
async fn json_response_is_parsed() {
    let base = start_server().await;
    let output = http(json!({"method": "GET", "url": format!("{base}/json")}))
        .await
        .expect("200");
    assert_eq!(output["status"], 200);
    assert_eq!(output["body"], json!({"ok": true, "items": [1, 2]}));
    assert_eq!(output["headers"]["content-type"], "application/json");
    assert_eq!(output["headers"]["x-request-id"], "r-1");
    // The output goes into history, where secrets never go.
    assert_eq!(output["headers"]["x-auth-token"], "[redacted]");
}

#[tokio::test]
async fn text_response_is_returned_as_string() {
    let base = start_server().await;
    let output = http(json!({"method": "GET", "url": format!("{base}/text")}))
        .await
        .expect("200");
    assert_eq!(output["body"], "plain text");
}

#[tokio::test]
async fn idempotency_key_and_headers_are_sent() {
    let base = start_server().await;
    let output = http(json!({
        "method": "POST",
        "url": format!("{base}/echo"),
        "headers": {"X-Custom": "yes"},
        "body": {"asset": 42}
    }))
    .await
    .expect("200");
    let received = &output["body"];
    // The attempt's key: a system behind `core.http` may store a 5xx reply under the key,
    // so every attempt needs its own (ARCHITECTURE.md, "Idempotency keys").
    assert_eq!(received["idempotency_key"], "instance-7:call:3:2");
    assert_eq!(received["x_custom"], "yes");
    assert_eq!(received["content_type"], "application/json");
    assert_eq!(received["body"], r#"{"asset":42}"#);
}

#[tokio::test]
async fn string_body_is_sent_verbatim() {
    let base = start_server().await;
    let output = http(json!({
        "method": "POST",
        "url": format!("{base}/echo"),
        "body": "a=1&b=2"
    }))
    .await
    .expect("200");
    assert_eq!(output["body"]["body"], "a=1&b=2");
}

#[tokio::test]
async fn not_found_is_permanent_with_the_system_message() {
    let base = start_server().await;
    let error = http(json!({"method": "GET", "url": format!("{base}/missing")}))
        .await
        .expect_err("404");
    assert_eq!(
        error,
        Error::permanent("not_found", "asset 42 not found"),
        "{error}"
    );
}

#[tokio::test]
async fn rate_limit_is_retryable_with_hint() {
    let base = start_server().await;
    let error = http(json!({"method": "GET", "url": format!("{base}/limited")}))
        .await
        .expect_err("429");
    assert!(error.is_retryable());
    assert_eq!(error.code(), "rate_limited");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(error.message(), "slow down");
}

#[tokio::test]
async fn server_error_is_retryable() {
    let base = start_server().await;
    let error = http(json!({"method": "GET", "url": format!("{base}/broken")}))
        .await
        .expect_err("500");
    assert!(error.is_retryable());
    assert_eq!(error.code(), "server_error");
    assert_eq!(error.retry_after(), None);
    assert_eq!(error.message(), "database on fire");
}

#[tokio::test]
async fn timeout_is_retryable() {
    let base = start_server().await;
    let error = http(json!({
        "method": "GET",
        "url": format!("{base}/hang?token={SECRET_TOKEN}"),
        "timeout_ms": 200
    }))
    .await
    .expect_err("the server never answers");
    assert!(error.is_retryable(), "{error}");
    assert_eq!(error.code(), "timeout", "{error}");
    assert!(error.message().contains("127.0.0.1"), "{error}");
    assert!(!error.message().contains(SECRET_TOKEN), "{error}");
}

#[tokio::test]
async fn refused_connection_is_retryable() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback port is free");
    let address = listener.local_addr().expect("listener has an address");
    drop(listener);
    let error = http(json!({"method": "GET", "url": format!("http://{address}/")}))
        .await
        .expect_err("nothing listens");
    assert!(error.is_retryable(), "{error}");
    assert_eq!(error.code(), "unavailable", "{error}");
}

#[tokio::test]
async fn credentials_never_reach_the_error() {
    let base = start_server().await;
    let error = http(json!({
        "method": "GET",
        "url": format!("{base}/unauthorized"),
        "headers": {"Authorization": format!("Bearer {SECRET_TOKEN}")}
    }))
    .await
    .expect_err("401");
    assert_eq!(error.code(), "unauthorized");
    assert!(!error.is_retryable());
    assert!(!error.to_string().contains(SECRET_TOKEN), "{error}");
    assert_eq!(error.message(), "credential '[redacted]' rejected");
}

#[tokio::test]
async fn long_error_page_is_truncated() {
    let base = start_server().await;
    let error = http(json!({"method": "GET", "url": format!("{base}/huge-error")}))
        .await
        .expect_err("502");
    assert_eq!(error.code(), "server_error");
    let expected = format!(
        "{}…",
        "x".repeat(gridflow_connectors::http::MAX_ERROR_MESSAGE_CHARS)
    );
    assert_eq!(error.message(), expected);
}

#[tokio::test]
async fn loopback_is_refused_by_default_naming_the_address_and_the_setting() {
    let base = start_server().await;
    let port = base.rsplit(':').next().unwrap_or_default().to_owned();
    for url in [
        format!("{base}/json"),
        // By name: refused when resolved, so no DNS answer can get around it.
        format!("http://localhost:{port}/json"),
        format!("http://[::ffff:127.0.0.1]:{port}/json"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
    ] {
        let error = Registry::with_builtin()
            .invoke(
                "core.http",
                invocation(json!({"method": "GET", "url": url})),
            )
            .await
            .expect_err("a non-public destination");
        assert_eq!(error.code(), "destination_refused", "{url}: {error}");
        assert!(!error.is_retryable(), "{url}: {error}");
        assert!(error.message().contains("core_http.allow"), "{error}");
    }
    let error = Registry::with_builtin()
        .invoke(
            "core.http",
            invocation(json!({"method": "GET", "url": format!("{base}/json")})),
        )
        .await
        .expect_err("loopback");
    assert!(error.message().contains("127.0.0.1"), "{error}");
}

#[tokio::test]
async fn allowed_loopback_is_reached_but_a_redirect_out_of_the_allowance_is_refused() {
    let base = start_server().await;
    let output = http(json!({"method": "GET", "url": format!("{base}/json")}))
        .await
        .expect("allowed");
    assert_eq!(output["status"], 200);
    let error = http(json!({"method": "GET", "url": format!("{base}/to-other-loopback")}))
        .await
        .expect_err("127.0.0.2 is not allowed");
    assert_eq!(error.code(), "destination_refused", "{error}");
    assert!(error.message().contains("127.0.0.2"), "{error}");
}

#[tokio::test]
async fn secret_reference_is_resolved_when_sent_and_kept_out_of_the_output() {
    let base = start_server().await;
    let secrets = BTreeMap::from([("TOKEN".to_owned(), SECRET_TOKEN.to_owned())]);
    let connector = CoreConnector::with_secrets(
        &loopback_allowed(),
        Arc::new(move |name: &str| secrets.get(name).cloned()),
    );
    let output = http_with(
        connector,
        json!({
            "method": "GET",
            "url": format!("{base}/check-secret"),
            "headers": {"Authorization": "Bearer ${secrets.TOKEN}"}
        }),
    )
    .await
    .expect("200");
    assert_eq!(output["body"]["matches"], true, "{output}");
    // The server echoed it; the output (recorded in history) does not carry it.
    assert!(!output.to_string().contains(SECRET_TOKEN), "{output}");
}

#[tokio::test]
async fn unknown_secret_is_a_permanent_error_naming_it() {
    let base = start_server().await;
    let error = http(json!({
        "method": "GET",
        "url": format!("{base}/check-secret"),
        "headers": {"Authorization": "Bearer ${secrets.MISSING_ONE}"}
    }))
    .await
    .expect_err("not set");
    assert_eq!(error.code(), "unknown_secret", "{error}");
    assert!(!error.is_retryable());
    assert!(error.message().contains("MISSING_ONE"), "{error}");
    assert!(
        error.message().contains("GRIDFLOW_SECRET_MISSING_ONE"),
        "{error}"
    );
}

#[tokio::test]
async fn response_over_the_cap_is_refused_naming_the_setting() {
    let base = start_server().await;
    let config = CoreHttpConfig {
        max_response_bytes: 1000,
        ..loopback_allowed()
    };
    let connector = CoreConnector::with_secrets(&config, Arc::new(|_: &str| None));
    let error = http_with(
        connector,
        json!({"method": "GET", "url": format!("{base}/big")}),
    )
    .await
    .expect_err("4096 bytes");
    assert_eq!(error.code(), "response_too_large", "{error}");
    assert!(!error.is_retryable());
    assert!(
        error.message().contains("core_http.max_response_bytes"),
        "{error}"
    );
}
