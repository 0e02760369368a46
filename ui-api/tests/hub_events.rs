//! The Trading Grid hub's signed callbacks at `POST /api/v1/events/trading_grid`, through
//! `app(state)` and `oneshot`: `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>`
//! under the source's secret, the body `{event_id, event, occurred_at, data}` read by the
//! connector into the event its feed gives; a bad signature is 401 and delivers nothing;
//! and an event that comes both by callback and by the poller is delivered once, whichever
//! comes first.

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use serde_json::{Value, json};

use gridflow::http::events::EventSecrets;
use gridflow_connectors::config::WebhooksConfig;
use gridflow_connectors::sandbox::offline_catalog;
use gridflow_connectors::{ChangeFeed, FeedChange, FeedPage};
use gridflow_core::webhook::body_signature;
use gridflow_runtime::Engine;
use gridflow_runtime::poller::{Poller, PollerOptions};
use gridflow_store::InstanceFilter;
use support::{Harness, Options};

const TOKEN: &str = "test-admin-token";
const SECRET: &str = "hub-callback-secret";

/// Started by a partner's request; the request id and type are its input.
const ON_REQUEST: &str = r#"
id: on-partner-request
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
  - id: echo
    action: core.echo
    with: {request: "${input.request_id}"}
"#;

struct TestApp {
    router: Router,
    engine: Engine,
}

impl TestApp {
    async fn new() -> Self {
        let options = Options {
            event_secrets: EventSecrets::new([("trading_grid", SECRET)])
                .with_settings(WebhooksConfig::default().with_sandbox_sources()),
            registry: Arc::new(offline_catalog()),
            ..Options::new(TOKEN)
        };
        let Harness { engine, router, .. } = Harness::with(options).await;
        engine
            .deploy(ON_REQUEST)
            .await
            .expect("the definition deploys");
        Self { router, engine }
    }

    async fn send(&self, body: &str, signature: Option<&str>) -> (StatusCode, Value) {
        let mut request = support::request(Method::POST, "/api/v1/events/trading_grid", None)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature", signature);
        }
        let request = request
            .body(Body::from(body.to_owned()))
            .expect("the test request is well-formed");
        let reply = support::send(&self.router, request).await;
        (reply.status, reply.json_or_null())
    }

    async fn instances(&self) -> Vec<Value> {
        self.engine
            .list_instances(&InstanceFilter::default(), None, 100)
            .await
            .expect("instances can be listed")
            .items
            .into_iter()
            .map(|item| serde_json::to_value(item).expect("an instance serialises"))
            .collect()
    }
}

/// The hub's callback body of a partner's request `event_id`.
fn callback(event_id: &str) -> String {
    json!({"event_id": event_id, "event": "request.created", "occurred_at": "2026-12-07T09:00:00Z",
           "data": {"request_id": "req-000101", "type": "media", "partner_company_id": "GC00933311CD",
                    "login_id": "media@metrofresh.example", "description": "A lifestyle shot",
                    "status": "open", "answers": []}})
    .to_string()
}

#[tokio::test]
async fn signed_callback_starts_with_the_payload_the_feed_gives() {
    let app = TestApp::new().await;
    let body = callback("evt-000101");
    let (status, answer) = app
        .send(
            &body,
            Some(&body_signature(SECRET.as_bytes(), body.as_bytes())),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["event"], "trading_grid.request_created");
    assert_eq!(
        answer["started"].as_array().map(Vec::len),
        Some(1),
        "{answer}"
    );
    let instances = app.instances().await;
    assert_eq!(instances.len(), 1);
    assert_eq!(
        instances[0]["input"],
        json!({"request_id": "req-000101", "kind": "media"})
    );
    // The same callback again (the hub retrying) starts nothing.
    let (status, again) = app
        .send(
            &body,
            Some(&body_signature(SECRET.as_bytes(), body.as_bytes())),
        )
        .await;
    assert_eq!(
        (status, &again["duplicate"]),
        (StatusCode::OK, &json!(true))
    );
    assert_eq!(app.instances().await.len(), 1);
}

#[tokio::test]
async fn bad_or_missing_hub_signature_is_401_and_delivers_nothing() {
    let app = TestApp::new().await;
    let body = callback("evt-000102");
    let forged = body_signature(b"not-the-secret", body.as_bytes());
    let tampered = body_signature(SECRET.as_bytes(), callback("evt-000103").as_bytes());
    for signature in [
        Some(forged.as_str()),
        Some(tampered.as_str()),
        Some("sha256=zz"),
        None,
    ] {
        let (status, answer) = app.send(&body, signature).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{signature:?}: {answer}");
        assert!(!answer.to_string().contains(SECRET), "{answer}");
    }
    assert!(app.instances().await.is_empty());
    // Signed, but not the hub's format: refused, nothing delivered.
    let odd =
        json!({"event_id": "evt-000104", "event": "request.created", "data": "not an object"})
            .to_string();
    let (status, _) = app
        .send(
            &odd,
            Some(&body_signature(SECRET.as_bytes(), odd.as_bytes())),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(app.instances().await.is_empty());
}

/// A feed holding one change: the event the hub also called back with.
struct OneChange(FeedChange);

#[async_trait]
impl ChangeFeed for OneChange {
    fn source(&self) -> &str {
        "trading_grid"
    }

    fn poll_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(60)
    }

    async fn changes(
        &self,
        cursor: Option<&str>,
        _limit: usize,
    ) -> gridflow_connectors::Result<FeedPage> {
        let changes = match cursor {
            Some("0") => vec![self.0.clone()],
            _ => Vec::new(),
        };
        let cursor = if cursor.is_none() { "0" } else { "1" };
        Ok(FeedPage {
            changes,
            cursor: cursor.to_owned(),
            more: false,
        })
    }
}

/// The poller of a feed holding the change the hub calls back with as `body`.
fn hub_poller(engine: &Engine, body: &str) -> Poller {
    let hub = offline_catalog()
        .connectors()
        .find(|connector| connector.name() == "trading_grid")
        .cloned()
        .expect("the catalogue has trading_grid");
    let inbound = hub
        .read_webhook(&serde_json::from_str(body).expect("the body is JSON"))
        .expect("the hub reads its callbacks")
        .expect("the callback is well-formed");
    let change = FeedChange {
        id: inbound.id,
        kind: inbound.name,
        data: inbound.payload,
        cursor: "1".to_owned(),
    };
    Poller::new(
        engine.clone(),
        Arc::new(OneChange(change)),
        PollerOptions::default(),
    )
}

#[tokio::test]
async fn an_event_by_callback_and_by_poller_is_delivered_once_whichever_comes_first() {
    // The callback first, then the poller.
    let app = TestApp::new().await;
    let body = callback("evt-000201");
    let signature = body_signature(SECRET.as_bytes(), body.as_bytes());
    assert_eq!(
        app.send(&body, Some(&signature)).await.0,
        StatusCode::ACCEPTED
    );
    let poller = hub_poller(&app.engine, &body);
    poller.poll().await.expect("the first pass sets the cursor");
    let pass = poller
        .poll()
        .await
        .expect("the second pass reads the change");
    assert_eq!((pass.delivered, pass.started.len()), (1, 0), "{pass:?}");
    assert_eq!(app.instances().await.len(), 1);

    // The poller first, then the callback.
    let app = TestApp::new().await;
    let body = callback("evt-000202");
    let poller = hub_poller(&app.engine, &body);
    poller.poll().await.expect("the first pass sets the cursor");
    let pass = poller
        .poll()
        .await
        .expect("the second pass reads the change");
    assert_eq!(pass.started.len(), 1, "{pass:?}");
    let signature = body_signature(SECRET.as_bytes(), body.as_bytes());
    let (status, answer) = app.send(&body, Some(&signature)).await;
    assert_eq!(
        (status, &answer["duplicate"]),
        (StatusCode::OK, &json!(true)),
        "{answer}"
    );
    assert_eq!(app.instances().await.len(), 1);
}
