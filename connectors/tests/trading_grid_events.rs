//! The hub's events over real HTTP: what partners do on the simulator's partner routes
//! (a request, a comment, a download, an acknowledgement, joining a community) and our
//! withdrawals and answers appear in the event feed as catalogued events whose payloads
//! fit their schemas, say what they mean for the ledger, and reach a subscriber as signed
//! callbacks (retried until it answers 2xx) that `read_webhook` reads into the very event
//! the feed gives.

// Helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use gridflow_connectors::config::Config;
use gridflow_connectors::content::ContentStore;
use gridflow_connectors::effects::{DeliveryStatus, LedgerChange};
use gridflow_connectors::http::Secret;
use gridflow_connectors::sandbox::Sandbox;
use gridflow_connectors::simulator::trading_grid::PARTNER_LOGIN_HEADER;
use gridflow_connectors::simulator::{Fault, FaultRule};
use gridflow_connectors::{Connector, FeedChange, Registry};
use serde_json::{Value, json};
use support::invoke;

const METRO_LOGIN: &str = "media@metrofresh.example";
const HARBOR_LOGIN: &str = "owner@harborliquors.example";
const SECRET: &str = "hub-callback-secret";

/// Callbacks received: `(X-Hub-Signature, body)`, refused ones included.
type Received = Arc<Mutex<Vec<(String, Bytes)>>>;

struct Receiver {
    received: Received,
    /// How many of the first callbacks answer 500.
    refuse: Arc<Mutex<usize>>,
    url: String,
    changed: Arc<tokio::sync::Notify>,
}

async fn callback(
    State((received, refuse, changed)): State<(
        Received,
        Arc<Mutex<usize>>,
        Arc<tokio::sync::Notify>,
    )>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let signature = headers
        .get("x-hub-signature")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    received.lock().unwrap().push((signature, body));
    changed.notify_waiters();
    let mut refuse = refuse.lock().unwrap();
    if *refuse > 0 {
        *refuse -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::ACCEPTED
}

impl Receiver {
    async fn start(refuse: usize) -> Self {
        let received = Received::default();
        let refuse = Arc::new(Mutex::new(refuse));
        let changed = Arc::new(tokio::sync::Notify::new());
        let app = Router::new()
            .route("/api/v1/events/trading_grid", post(callback))
            .with_state((received.clone(), refuse.clone(), changed.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/v1/events", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            received,
            refuse,
            url,
            changed,
        }
    }

    /// Waits (at most 30 s) until `count` callbacks arrived.
    async fn wait_for(&self, count: usize) -> Vec<(String, Bytes)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let notified = self.changed.notified();
            {
                let received = self.received.lock().unwrap();
                if received.len() >= count {
                    return received.clone();
                }
            }
            assert!(
                tokio::time::timeout_at(deadline, notified).await.is_ok(),
                "{count} callbacks did not arrive in time: {:?}",
                self.received.lock().unwrap().len()
            );
        }
    }
}

/// The content store of the sandbox's connectors, in a folder of the test's own.
struct Content {
    store: ContentStore,
    _dir: tempfile::TempDir,
}

async fn sandbox() -> (Sandbox, Registry, Content) {
    let sandbox = Sandbox::start(None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.content.dir = Some(dir.path().to_owned());
    let mut registry = Registry::new();
    for connector in sandbox.connectors(&config).unwrap() {
        registry.register(connector);
    }
    let store = config.content.store();
    (sandbox, registry, Content { store, _dir: dir })
}

fn hub(registry: &Registry) -> Arc<dyn Connector> {
    registry
        .connectors()
        .find(|connector| connector.name() == "trading_grid")
        .cloned()
        .unwrap()
}

/// A partner's request to the simulator's partner routes.
async fn partner(
    sandbox: &Sandbox,
    login: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Value {
    let base = sandbox.simulator("trading_grid").unwrap().base_url();
    let response = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .header(PARTNER_LOGIN_HEADER, login)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap_or(Value::Null)
}

fn assert_fits(connector: &dyn Connector, change: &FeedChange) {
    let spec = connector
        .events()
        .iter()
        .find(|event| event.name == change.kind)
        .unwrap_or_else(|| panic!("trading_grid.{} is not in the catalogue", change.kind));
    let validator = jsonschema::draft202012::new(&spec.payload).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&change.data)
        .map(|error| format!("{}: {error}", error.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{}: {errors:?}\n{:#}",
        change.kind,
        change.data
    );
    let ledger = !connector
        .event_effects(&change.kind, &change.data)
        .ledger
        .is_empty();
    assert_eq!(
        spec.effects.ledger, ledger,
        "{}: declared ledger effects",
        change.kind
    );
}

/// Makes one of each partner event and our request and withdrawal events; the post id.
async fn partner_activity(sandbox: &Sandbox, registry: &Registry, store: &ContentStore) -> Value {
    let reference = store
        .put(b"case image", "image/png", "case.png")
        .await
        .unwrap();
    let artifact = json!({"system": "otmm", "asset_id": "a-1", "version": "1", "sha256": reference.sha256,
                          "size": reference.size, "content_type": "image/png", "file_name": "case.png"});
    let post = invoke(
        registry,
        "trading_grid.publish_content",
        json!({"community_id": "cmty-aurora-partners", "group_ids": ["grp-retailers"], "title": "Case",
               "body": "New case image", "content": [artifact], "requires_ack": true}),
        "publish",
    )
    .await
    .unwrap();
    let (post_id, document_id) = (&post["post_id"], &post["documents"][0]["document_id"]);
    let get = reqwest::Method::GET;
    let send = reqwest::Method::POST;
    let request = partner(
        sandbox,
        METRO_LOGIN,
        send.clone(),
        "/partner/v1/requests",
        json!({"type": "media", "asset": {"system": "otmm", "asset_id": "a-1"}, "market": "US",
               "language": "en", "description": "A lifestyle shot, please."}),
    )
    .await;
    let post_path = format!("/partner/v1/posts/{}", post_id.as_str().unwrap());
    partner(
        sandbox,
        METRO_LOGIN,
        send.clone(),
        &format!("{post_path}/comments"),
        json!({"body": "Looks great"}),
    )
    .await;
    let base = sandbox.simulator("trading_grid").unwrap().base_url();
    let download = reqwest::Client::new()
        .get(format!(
            "{base}{post_path}/documents/{}",
            document_id.as_str().unwrap()
        ))
        .header(PARTNER_LOGIN_HEADER, METRO_LOGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(download.bytes().await.unwrap().as_ref(), b"case image");
    partner(
        sandbox,
        METRO_LOGIN,
        send.clone(),
        &format!("{post_path}/acknowledgements"),
        json!({"ack_type": "accepted"}),
    )
    .await;
    partner(sandbox, HARBOR_LOGIN, get, &post_path, Value::Null).await;
    partner(
        sandbox,
        HARBOR_LOGIN,
        send.clone(),
        "/partner/v1/communities/cmty-aurora-partners/join",
        Value::Null,
    )
    .await;
    invoke(
        registry,
        "trading_grid.answer_request",
        json!({"request_id": request["request_id"], "message": "On its way"}),
        "answer",
    )
    .await
    .unwrap();
    invoke(
        registry,
        "trading_grid.withdraw_post",
        json!({"post_id": post_id, "partner_company_ids": ["GC00977799GH"], "reason": "recall"}),
        "withdraw",
    )
    .await
    .unwrap();
    post_id.clone()
}

#[tokio::test]
async fn partner_activity_becomes_catalogued_events_with_ledger_effects() {
    let (sandbox, registry, content) = sandbox().await;
    let connector = hub(&registry);
    let feed = connector.clone().change_feed().unwrap();
    let start = feed.changes(None, 10).await.unwrap().cursor;
    let post_id = partner_activity(&sandbox, &registry, &content.store).await;
    let changes = feed.changes(Some(&start), 100).await.unwrap().changes;
    let kinds: Vec<&str> = changes.iter().map(|change| change.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "request_created",
            "post_commented",
            "document_downloaded",
            "post_acknowledged",
            "partner_joined",
            "request_updated",
            "post_withdrawn"
        ]
    );
    for change in &changes {
        assert_fits(connector.as_ref(), change);
        let text = change.data.to_string();
        for needle in ["http://", "https://", "Bearer", "secret"] {
            assert!(
                !text.contains(needle),
                "{}: {needle} in {text}",
                change.kind
            );
        }
    }
    let downloaded = &changes[2];
    assert_eq!(downloaded.data["login_id"], METRO_LOGIN);
    assert_eq!(downloaded.data["post_id"], post_id);
    let effects = connector.event_effects(&downloaded.kind, &downloaded.data);
    let [LedgerChange::Status(status)] = effects.ledger.as_slice() else {
        panic!("one status change: {effects:?}");
    };
    assert_eq!(status.status, DeliveryStatus::Downloaded);
    assert_eq!(status.partner.as_deref(), Some("GC00933311CD"));
    assert_eq!(status.detail, Some(json!({"login_id": METRO_LOGIN})));
    assert!(status.at.is_some());
    let request = &changes[0].data;
    assert_eq!(
        (request["type"].as_str(), request["market"].as_str()),
        (Some("media"), Some("US"))
    );
    // The feed under faults: a refused read is retryable and moves nothing; the next read
    // gives the same changes.
    let simulator = sandbox.simulator("trading_grid").unwrap();
    for fault in [
        Fault::ServerError,
        Fault::RateLimit {
            retry_after_secs: 3,
        },
        Fault::Drop,
    ] {
        simulator.faults().push(FaultRule::any(fault));
        let error = feed.changes(Some(&start), 100).await.unwrap_err();
        assert!(error.is_retryable(), "{error}");
    }
    assert_eq!(
        feed.changes(Some(&start), 100).await.unwrap().changes,
        changes
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn callbacks_are_signed_retried_until_accepted_and_read_as_the_feed_gives_them() {
    let (sandbox, registry, _content) = sandbox().await;
    let connector = hub(&registry);
    let feed = connector.clone().change_feed().unwrap();
    let start = feed.changes(None, 10).await.unwrap().cursor;
    // The first two deliveries are refused: the hub must retry until the third is accepted.
    let receiver = Receiver::start(2).await;
    sandbox
        .subscribe_hub_webhooks(&receiver.url, &Secret::new(SECRET))
        .await
        .unwrap();
    // A subscription again (a restart of gridflow) replaces the old one: no double sends.
    sandbox
        .subscribe_hub_webhooks(&receiver.url, &Secret::new(SECRET))
        .await
        .unwrap();
    let base = sandbox.simulator("trading_grid").unwrap().base_url();
    partner(
        &sandbox,
        METRO_LOGIN,
        reqwest::Method::POST,
        "/partner/v1/requests",
        json!({"type": "access", "description": "Portal access for our new buyer"}),
    )
    .await;
    let received = receiver.wait_for(3).await;
    assert_eq!(*receiver.refuse.lock().unwrap(), 0);
    let (signature, body) = &received[2];
    assert_eq!(received[0].1, *body, "a retry sends the same body");
    assert_eq!(
        signature,
        &gridflow_core::webhook::body_signature(SECRET.as_bytes(), body)
    );
    let body: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(body["event"], "request.created");
    let inbound = connector.read_webhook(&body).unwrap().unwrap();
    let changes = feed.changes(Some(&start), 10).await.unwrap().changes;
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (inbound.id.as_str(), inbound.name.as_str(), &inbound.payload),
        (
            changes[0].id.as_str(),
            changes[0].kind.as_str(),
            &changes[0].data
        ),
        "the callback and the feed give the same event"
    );
    // A fault on the hub's own routes does not touch the callbacks already sent.
    sandbox
        .simulator("trading_grid")
        .unwrap()
        .faults()
        .push(FaultRule::any(Fault::ServerError));
    let refused = reqwest::Client::new()
        .post(format!("{base}/partner/v1/requests"))
        .header(PARTNER_LOGIN_HEADER, METRO_LOGIN)
        .json(&json!({"type": "media", "description": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 500);
    assert_eq!(
        feed.changes(Some(&start), 10).await.unwrap().changes.len(),
        1
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn partner_routes_need_a_known_partner_login() {
    let (sandbox, _registry, _content) = sandbox().await;
    let base = sandbox.simulator("trading_grid").unwrap().base_url();
    let client = reqwest::Client::new();
    let body = json!({"type": "media", "description": "x"});
    let anonymous = client
        .post(format!("{base}/partner/v1/requests"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let stranger = client
        .post(format!("{base}/partner/v1/requests"))
        .header(PARTNER_LOGIN_HEADER, "nobody@example.com")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), 403);
    let bad_type = client
        .post(format!("{base}/partner/v1/requests"))
        .header(PARTNER_LOGIN_HEADER, METRO_LOGIN)
        .json(&json!({"type": "gossip", "description": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_type.status(), 422);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_partner_reads_its_own_requests_and_no_other_company_s() {
    let (sandbox, _registry, _content) = sandbox().await;
    let created = partner(
        &sandbox,
        METRO_LOGIN,
        reqwest::Method::POST,
        "/partner/v1/requests",
        json!({"type": "media", "description": "Pack shots for the spring reset"}),
    )
    .await;
    let request_id = created["request_id"].as_str().unwrap();
    let path = format!("/partner/v1/requests/{request_id}");
    let own = partner(
        &sandbox,
        METRO_LOGIN,
        reqwest::Method::GET,
        &path,
        Value::Null,
    )
    .await;
    assert_eq!(own["status"], "open");
    assert_eq!(own["description"], "Pack shots for the spring reset");
    let listed = partner(
        &sandbox,
        METRO_LOGIN,
        reqwest::Method::GET,
        "/partner/v1/requests",
        Value::Null,
    )
    .await;
    let ids: Vec<&Value> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|request| &request["request_id"])
        .collect();
    assert_eq!(ids, [&json!(request_id)]);
    // Another partner company sees neither the request nor it in its list.
    let base = sandbox.simulator("trading_grid").unwrap().base_url();
    let other = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header(PARTNER_LOGIN_HEADER, HARBOR_LOGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    let theirs = partner(
        &sandbox,
        HARBOR_LOGIN,
        reqwest::Method::GET,
        "/partner/v1/requests",
        Value::Null,
    )
    .await;
    assert!(
        theirs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|request| request["partner_company_id"] != "GC00933311CD"),
        "{theirs}"
    );
    sandbox.shutdown().await;
}
