//! Inbound webhooks (`POST /api/v1/events/{source}`) through `app(state)` and `oneshot`:
//! only a body signed with the source's secret, at a time within 5 minutes of the
//! server's (manual) clock, starts anything, and each event id does so once; the plain
//! secret and `?type=` are accepted only from the sources configured for them.

mod support;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use gridflow::http::events::{EventSecrets, SIGNATURE_HEADER, TOKEN_HEADER, signature};
use gridflow::http::webhook::{EVENT_ID_HEADER, TIMESTAMP_HEADER};
use gridflow_connectors::config::WebhooksConfig;
use gridflow_runtime::{Engine, ManualClock};
use gridflow_store::InstanceFilter;
use support::{Harness, Options};

const TOKEN: &str = "test-admin-token";
const SECRET: &str = "grid-secret";

/// Started by `trading_grid.request_created`, with the event mapped to its input.
const ON_REQUEST: &str = r#"
id: on-request
input:
  type: object
  required: [partner_id, query]
  properties:
    partner_id: {type: string}
    query: {type: string}
triggers:
  - event: trading_grid.request_created
    input: {partner_id: "${event.partner_id}", query: "${event.text}"}
steps:
  - id: echo
    action: core.echo
    with: {query: "${input.query}"}
"#;

const CANTO_SECRET: &str = "canto-secure-token";
const ICONIK_SECRET: &str = "iconik-shared-secret";

/// Started by Canto's "Add New Version" webhook, whose body names no event.
const ON_CANTO_VERSION: &str = r#"
id: on-canto-version
triggers:
  - event: canto.version_added
    input: {content: "${event}"}
steps:
  - id: echo
    action: core.echo
    with: {content: "${input.content}"}
"#;

/// Started by an iconik asset webhook.
const ON_ICONIK_ASSET: &str = r#"
id: on-iconik-asset
triggers:
  - event: iconik.asset_updated
    input: {asset: "${event.object_id}"}
steps:
  - id: echo
    action: core.echo
    with: {asset: "${input.asset}"}
"#;

/// The server's clock in these tests: 2026-12-07T09:00:00Z.
const NOW: i64 = 1_796_634_000;

struct TestApp {
    router: Router,
    engine: Engine,
    clock: Arc<ManualClock>,
}

impl TestApp {
    async fn new() -> Self {
        Self::with_settings(WebhooksConfig::default().with_sandbox_sources()).await
    }

    async fn with_settings(settings: WebhooksConfig) -> Self {
        let clock = Arc::new(ManualClock::new(
            chrono::DateTime::from_timestamp(NOW, 0).expect("a valid instant"),
        ));
        let options = Options {
            clock: clock.clone(),
            event_secrets: EventSecrets::new([
                ("trading_grid", SECRET),
                ("canto", CANTO_SECRET),
                ("iconik", ICONIK_SECRET),
            ])
            .with_settings(settings),
            ..Options::new(TOKEN)
        };
        let Harness { engine, router, .. } = Harness::with(options).await;
        for definition in [ON_REQUEST, ON_CANTO_VERSION, ON_ICONIK_ASSET] {
            engine
                .deploy(definition)
                .await
                .expect("the test definitions deploy");
        }
        Self {
            router,
            engine,
            clock,
        }
    }

    /// Sends `body` to `source` with `signature` (of timestamp [`NOW`]) if given.
    async fn send(&self, source: &str, body: &str, signature: Option<&str>) -> (StatusCode, Value) {
        let timestamp = NOW.to_string();
        let headers: Vec<(&str, &str)> = signature
            .map(|signature| {
                [
                    (SIGNATURE_HEADER, signature),
                    (TIMESTAMP_HEADER, timestamp.as_str()),
                ]
            })
            .into_iter()
            .flatten()
            .collect();
        self.send_to(&format!("/api/v1/events/{source}"), body, &headers)
            .await
    }

    /// Sends `body` to `uri`, signed with `secret` at `timestamp`, with `extra` headers.
    async fn send_signed(
        &self,
        uri: &str,
        body: &str,
        secret: &str,
        timestamp: i64,
        extra: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let signature = signature(secret.as_bytes(), timestamp, body.as_bytes());
        let timestamp = timestamp.to_string();
        let mut headers = vec![
            (SIGNATURE_HEADER, signature.as_str()),
            (TIMESTAMP_HEADER, timestamp.as_str()),
        ];
        headers.extend_from_slice(extra);
        self.send_to(uri, body, &headers).await
    }

    async fn send_to(
        &self,
        uri: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request = support::request(Method::POST, uri, None)
            .header(header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Body::from(body.to_owned()))
            .expect("the test request is well-formed");
        let reply = support::send(&self.router, request).await;
        (reply.status, reply.json_or_null())
    }

    async fn instance_count(&self) -> usize {
        self.engine
            .list_instances(&InstanceFilter::default(), None, 100)
            .await
            .expect("instances can be listed")
            .items
            .len()
    }
}

fn request_created() -> String {
    json!({"type": "request_created", "id": "evt-1", "partner_id": "acme", "text": "new arrivals"})
        .to_string()
}

/// `signature` of `body` at [`NOW`] under `secret`.
fn sign(secret: &str, body: &str) -> String {
    signature(secret.as_bytes(), NOW, body.as_bytes())
}

#[tokio::test]
async fn signed_event_starts_the_triggered_definition_with_mapped_input() {
    let app = TestApp::new().await;
    let body = request_created();
    let (status, answer) = app
        .send("trading_grid", &body, Some(&sign(SECRET, &body)))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["event"], "trading_grid.request_created");
    let started = answer["started"].as_array().expect("started is a list");
    assert_eq!(started.len(), 1, "{answer}");
    let instance = started[0].as_str().expect("an instance id");
    let view = app
        .engine
        .instance(&instance.into())
        .await
        .expect("the started instance exists");
    assert_eq!(view.definition, "on-request");
    assert_eq!(
        view.input,
        json!({"partner_id": "acme", "query": "new arrivals"})
    );
    let history = app.engine.history(&instance.into()).await.expect("history");
    assert_eq!(history[0].actor, "event:trading_grid");
}

#[tokio::test]
async fn event_without_a_matching_trigger_starts_nothing() {
    let app = TestApp::new().await;
    let body = json!({"type": "issue_opened", "id": "evt-2"}).to_string();
    let (status, answer) = app
        .send("trading_grid", &body, Some(&sign(SECRET, &body)))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["started"], json!([]));
    assert_eq!(app.instance_count().await, 0);
}

#[tokio::test]
async fn missing_bad_or_unconfigured_signatures_are_401_and_start_nothing() {
    let app = TestApp::new().await;
    let body = request_created();
    let good = sign(SECRET, &body);
    let cases: [(&str, &str, Option<String>); 6] = [
        ("trading_grid", "missing signature", None),
        ("trading_grid", "wrong secret", Some(sign("guess", &body))),
        (
            "trading_grid",
            "signature of another body",
            Some(sign(SECRET, "{}")),
        ),
        (
            "trading_grid",
            "no sha256= prefix",
            Some(good.trim_start_matches("sha256=").to_owned()),
        ),
        ("trading_grid", "not hex", Some("sha256=not-hex".to_owned())),
        // A source without a configured secret is refused even with a signature.
        ("iconik", "unknown source", Some(good.clone())),
    ];
    for (source, case, signature) in cases {
        let (status, answer) = app.send(source, &body, signature.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {answer}");
        assert_eq!(answer["error"]["code"], "unauthorized", "{case}: {answer}");
    }
    assert_eq!(app.instance_count().await, 0);
    // A bearer token does not replace the signature.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/events/trading_grid")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::from(body.clone()))
        .expect("the test request is well-formed");
    let response = app
        .router
        .clone()
        .oneshot(request)
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.instance_count().await, 0);
}

#[tokio::test]
async fn signed_body_without_a_type_is_400() {
    let app = TestApp::new().await;
    for body in [
        r#"{"partner_id": "acme"}"#,
        r#"{"type": 7}"#,
        "[1, 2]",
        "not json",
    ] {
        let (status, answer) = app
            .send("trading_grid", body, Some(&sign(SECRET, body)))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    }
    assert_eq!(app.instance_count().await, 0);
}

#[tokio::test]
async fn event_whose_mapped_input_is_invalid_is_422_and_starts_nothing() {
    let app = TestApp::new().await;
    // `text` is missing, so the mapped `query` fails to render.
    let body = json!({"type": "request_created", "id": "evt-3", "partner_id": "acme"}).to_string();
    let (status, answer) = app
        .send("trading_grid", &body, Some(&sign(SECRET, &body)))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(app.instance_count().await, 0);
}

/// Waits for `trading_grid.ack_received` events about its own order.
const AWAIT_ACK: &str = r#"
id: await-ack
input:
  type: object
  required: [order]
  properties:
    order: {type: string}
steps:
  - id: ack
    wait: {signal: trading_grid.ack_received, timeout: 7d, correlate: "${event.order == input.order}"}
"#;

#[tokio::test]
async fn signed_event_signals_only_the_instance_whose_correlate_matches() {
    let app = TestApp::new().await;
    app.engine
        .deploy(AWAIT_ACK)
        .await
        .expect("the waiting definition deploys");
    let definition = gridflow_core::DefinitionId::from("await-ack");
    let mut waiting = Vec::new();
    for order in ["po-1", "po-2"] {
        let instance = app
            .engine
            .start_instance(&definition, None, json!({"order": order}), "ana")
            .await
            .expect("the instance starts");
        waiting.push(instance);
    }
    let body = json!({"type": "ack_received", "id": "evt-4", "order": "po-2"}).to_string();
    let (status, answer) = app
        .send("trading_grid", &body, Some(&sign(SECRET, &body)))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["started"], json!([]), "{answer}");
    assert_eq!(
        answer["signalled"],
        json!([waiting[1].to_string()]),
        "{answer}"
    );

    let signalled = app.engine.instance(&waiting[1]).await.expect("readable");
    assert_eq!(signalled.status, gridflow_core::InstanceStatus::Completed);
    let other = app.engine.instance(&waiting[0]).await.expect("readable");
    assert_eq!(other.status, gridflow_core::InstanceStatus::Waiting);
}

#[tokio::test]
async fn canto_webhook_with_its_secure_token_starts_and_the_token_is_dropped() {
    let app = TestApp::new().await;
    let body = json!({"secure_token": CANTO_SECRET, "scheme": "image", "id": "c-42",
                      "album": "a-1", "displayname": "citrus.png"})
    .to_string();
    let uri = "/api/v1/events/canto?type=version_added";
    let (status, answer) = app.send_to(uri, &body, &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["event"], "canto.version_added");
    let instance = answer["started"][0].as_str().expect("an instance");
    let view = app.engine.instance(&instance.into()).await.expect("view");
    assert_eq!(view.input["content"]["id"], "c-42");
    assert!(
        view.input["content"].get("secure_token").is_none(),
        "the secure token is removed before the event is delivered: {}",
        view.input
    );
    let history = app.engine.history(&instance.into()).await.expect("history");
    let recorded = serde_json::to_string(&history).expect("history serialises");
    assert!(
        !recorded.contains(CANTO_SECRET),
        "the secret reached the history"
    );

    let wrong = body.replace(CANTO_SECRET, "guessed");
    let (status, _) = app.send_to(uri, &wrong, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, answer) = app.send_to("/api/v1/events/canto", &body, &[]).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "no type anywhere: {answer}"
    );
    assert_eq!(app.instance_count().await, 1);
}

#[tokio::test]
async fn iconik_webhook_with_the_token_header_starts_and_a_wrong_one_is_401() {
    let app = TestApp::new().await;
    let body = json!({"event_type": "assets", "realm": "entity", "operation": "update",
                      "object_id": "5f1c", "data": {"title": "Citrus"}})
    .to_string();
    let uri = "/api/v1/events/iconik?type=asset_updated";
    let (status, answer) = app
        .send_to(uri, &body, &[(TOKEN_HEADER, ICONIK_SECRET)])
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["started"].as_array().map(Vec::len), Some(1));
    for headers in [
        vec![(TOKEN_HEADER, "guessed")],
        vec![(TOKEN_HEADER, CANTO_SECRET)],
        vec![],
    ] {
        let (status, _) = app.send_to(uri, &body, &headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}");
    }
    let (status, _) = app
        .send_to(
            "/api/v1/events/iconik?type=bad%20type",
            &body,
            &[(TOKEN_HEADER, ICONIK_SECRET)],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(app.instance_count().await, 1);
}

#[tokio::test]
async fn replayed_signed_event_starts_nothing_again() {
    let app = TestApp::new().await;
    let body = request_created();
    let uri = "/api/v1/events/trading_grid";
    let (status, first) = app.send_signed(uri, &body, SECRET, NOW, &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert_eq!(first["duplicate"], false);
    assert_eq!(
        first["started"].as_array().map(Vec::len),
        Some(1),
        "{first}"
    );
    // The same request twice more, and once re-signed a minute later: a replay each time.
    for timestamp in [NOW, NOW, NOW + 60] {
        app.clock
            .set(chrono::DateTime::from_timestamp(timestamp, 0).expect("instant"));
        let (status, again) = app.send_signed(uri, &body, SECRET, timestamp, &[]).await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again["duplicate"], true, "{again}");
        assert_eq!(again["started"], json!([]), "{again}");
        assert_eq!(again["signalled"], json!([]), "{again}");
    }
    assert_eq!(app.instance_count().await, 1);

    // The header names the event when given; another id is another event.
    let (status, other) = app
        .send_signed(uri, &body, SECRET, NOW + 60, &[(EVENT_ID_HEADER, "evt-99")])
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{other}");
    let (status, replay) = app
        .send_signed(uri, &body, SECRET, NOW + 60, &[(EVENT_ID_HEADER, "evt-99")])
        .await;
    assert_eq!(status, StatusCode::OK, "{replay}");
    assert_eq!(app.instance_count().await, 2);
}

#[tokio::test]
async fn signed_event_without_an_id_is_400() {
    let app = TestApp::new().await;
    let body = json!({"type": "request_created", "partner_id": "acme", "text": "x"}).to_string();
    let (status, answer) = app
        .send_signed("/api/v1/events/trading_grid", &body, SECRET, NOW, &[])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(app.instance_count().await, 0);
}

#[tokio::test]
async fn query_type_cannot_retarget_a_signed_event() {
    let app = TestApp::new().await;
    app.engine.deploy(AWAIT_ACK).await.expect("deploys");
    // A captured signed `ack_received` sent again as `request_created`, to a source not
    // configured for `?type=` and to one that is: refused both times.
    let body = json!({"type": "ack_received", "id": "evt-5", "order": "po-1",
                      "partner_id": "acme", "text": "x"})
    .to_string();
    let (status, answer) = app
        .send_signed(
            "/api/v1/events/trading_grid?type=request_created",
            &body,
            SECRET,
            NOW,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("type")),
        "{answer}"
    );
    let (status, answer) = app
        .send_signed(
            "/api/v1/events/iconik?type=asset_updated",
            &body,
            ICONIK_SECRET,
            NOW,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(app.instance_count().await, 0);
    // Refused copies do not use the event id up: the untouched request is delivered.
    let (status, answer) = app
        .send_signed("/api/v1/events/trading_grid", &body, SECRET, NOW, &[])
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["event"], "trading_grid.ack_received");
}

#[tokio::test]
async fn stale_or_future_timestamp_is_401_and_a_fresh_one_is_accepted() {
    let app = TestApp::new().await;
    let uri = "/api/v1/events/trading_grid";
    let body = request_created();
    for timestamp in [NOW - 301, NOW + 301, NOW - 86_400] {
        let (status, answer) = app.send_signed(uri, &body, SECRET, timestamp, &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{timestamp}: {answer}");
    }
    // Signed now, delivered 5 minutes later: still accepted; 1 second more is too late.
    app.clock
        .set(chrono::DateTime::from_timestamp(NOW + 301, 0).expect("instant"));
    let (status, answer) = app.send_signed(uri, &body, SECRET, NOW, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("300 seconds")),
        "{answer}"
    );
    assert_eq!(app.instance_count().await, 0);
    app.clock
        .set(chrono::DateTime::from_timestamp(NOW + 300, 0).expect("instant"));
    let (status, answer) = app.send_signed(uri, &body, SECRET, NOW, &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(app.instance_count().await, 1);
}

#[tokio::test]
async fn plain_secret_is_refused_from_sources_not_configured_for_it() {
    // No source configured: the iconik and Canto modes are refused as well.
    let app = TestApp::with_settings(WebhooksConfig::default()).await;
    let body = json!({"type": "request_created", "id": "evt-6", "partner_id": "acme",
                      "text": "x", "secure_token": SECRET})
    .to_string();
    for (uri, headers) in [
        (
            "/api/v1/events/trading_grid?type=request_created",
            vec![(TOKEN_HEADER, SECRET)],
        ),
        ("/api/v1/events/trading_grid", vec![(TOKEN_HEADER, SECRET)]),
        ("/api/v1/events/trading_grid", vec![]),
        (
            "/api/v1/events/iconik?type=asset_updated",
            vec![(TOKEN_HEADER, ICONIK_SECRET)],
        ),
    ] {
        let (status, answer) = app.send_to(uri, &body, &headers).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{uri} {headers:?}: {answer}"
        );
    }
    let canto = json!({"secure_token": CANTO_SECRET, "id": "c-1"}).to_string();
    let (status, answer) = app
        .send_to("/api/v1/events/canto?type=version_added", &canto, &[])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert_eq!(app.instance_count().await, 0);
}

#[tokio::test]
async fn iconik_event_is_delivered_once_per_request_id() {
    let app = TestApp::new().await;
    let body = json!({"event_type": "assets", "realm": "entity", "operation": "update",
                      "object_id": "5f1c", "request_id": "r-77"})
    .to_string();
    let uri = "/api/v1/events/iconik?type=asset_updated";
    let (status, first) = app
        .send_to(uri, &body, &[(TOKEN_HEADER, ICONIK_SECRET)])
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let (status, again) = app
        .send_to(uri, &body, &[(TOKEN_HEADER, ICONIK_SECRET)])
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(app.instance_count().await, 1);
}

#[tokio::test]
async fn body_over_the_limit_is_413_before_anything_is_checked() {
    let app = TestApp::with_settings(WebhooksConfig {
        max_body_bytes: 64,
        ..WebhooksConfig::default()
    })
    .await;
    let body = json!({"type": "request_created", "id": "evt-7", "partner_id": "acme",
                      "text": "x".repeat(100)})
    .to_string();
    let (status, answer) = app
        .send_signed("/api/v1/events/trading_grid", &body, SECRET, NOW, &[])
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("webhooks.max_body_bytes")),
        "{answer}"
    );
    assert_eq!(app.instance_count().await, 0);
}
