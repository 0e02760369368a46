//! The catalogue's events are what the systems really emit: every change the OTMM and
//! Trading Grid feeds return, and every webhook the iconik and Canto simulators send to
//! the subscription `serve --sandbox` makes, is an event the connector lists, and its
//! payload (as gridflow receives it: Canto's `secure_token` removed) fits the listed
//! payload schema.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::post;
use gridflow_connectors::Registry;
use gridflow_connectors::config::Config;
use gridflow_connectors::http::Secret;
use gridflow_connectors::sandbox::Sandbox;
use gridflow_connectors::simulator::otmm::seeded_asset_id;
use serde_json::{Value, json};

use support::invoke;

/// `(source, event type, body)` of each webhook received.
type Received = Arc<Mutex<Vec<(String, String, Value)>>>;

/// Checks `payload` against the catalogued event `<source>.<name>`.
fn assert_fits(registry: &Registry, source: &str, name: &str, payload: &Value) {
    let events = registry.events(source).unwrap();
    let spec = events
        .iter()
        .find(|event| event.name == name)
        .unwrap_or_else(|| panic!("{source}.{name} is not in the catalogue"));
    let validator = jsonschema::draft202012::new(&spec.payload).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(payload)
        .map(|error| format!("{}: {error}", error.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{source}.{name}: {errors:?}\n{payload:#}"
    );
}

async fn sandbox() -> (Sandbox, Registry) {
    let sandbox = Sandbox::start(None).await.unwrap();
    let mut registry = Registry::new();
    for connector in sandbox.connectors(&Config::default()).unwrap() {
        registry.register(connector);
    }
    (sandbox, registry)
}

#[tokio::test]
async fn feed_changes_are_catalogued_events_with_fitting_payloads() {
    let (sandbox, registry) = sandbox().await;
    let feed = |source: &str| {
        registry
            .connectors()
            .find(|connector| connector.name() == source)
            .cloned()
            .unwrap()
            .change_feed()
            .unwrap()
    };
    let (otmm, hub) = (feed("otmm"), feed("trading_grid"));
    let otmm_start = otmm.changes(None, 10).await.unwrap().cursor;
    let hub_start = hub.changes(None, 10).await.unwrap().cursor;

    invoke(
        &registry,
        "otmm.update_metadata",
        json!({"asset_id": seeded_asset_id(2), "fields": {"CUSTOM.FIELD.REGION": "EU-West"}}),
        "tag",
    )
    .await
    .unwrap();
    let issue = invoke(
        &registry,
        "trading_grid.open_issue",
        json!({"title": "Label", "description": "Old label", "partner_company_id": "GC00933311CD", "severity": "low"}),
        "open",
    )
    .await
    .unwrap();
    for (action, arguments) in [
        (
            "trading_grid.update_issue",
            json!({"issue_id": issue["issue_id"], "status": "resolved"}),
        ),
        (
            "trading_grid.comment_on_issue",
            json!({"issue_id": issue["issue_id"], "comment": "Fixed in v2", "author": "brand"}),
        ),
        (
            "trading_grid.record_acknowledgement",
            json!({"post_id": "post-000001", "company_id": "GC00933311CD", "ack_type": "received"}),
        ),
    ] {
        invoke(&registry, action, arguments, action).await.unwrap();
    }

    let changes = otmm.changes(Some(&otmm_start), 10).await.unwrap().changes;
    assert_eq!(changes.len(), 1);
    for change in &changes {
        assert_fits(&registry, "otmm", &change.kind, &change.data);
    }
    let changes = hub.changes(Some(&hub_start), 10).await.unwrap().changes;
    let kinds: Vec<&str> = changes.iter().map(|change| change.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "issue_created",
            "issue_updated",
            "issue_commented",
            "post_acknowledged"
        ]
    );
    for change in &changes {
        assert_fits(&registry, "trading_grid", &change.kind, &change.data);
    }
    sandbox.shutdown().await;
}

async fn receive(
    State(received): State<Received>,
    Path(source): Path<String>,
    Query(query): Query<std::collections::BTreeMap<String, String>>,
    axum::Json(mut body): axum::Json<Value>,
) {
    // gridflow removes Canto's Secure Token before the event goes anywhere.
    if let Some(fields) = body.as_object_mut() {
        fields.remove("secure_token");
    }
    let event_type = query.get("type").cloned().unwrap_or_default();
    received.lock().unwrap().push((source, event_type, body));
}

#[tokio::test]
async fn webhooks_are_catalogued_events_with_fitting_payloads() {
    let (sandbox, registry) = sandbox().await;
    let received = Received::default();
    let app = Router::new()
        .route("/events/{source}", post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    sandbox
        .subscribe_webhooks(
            &format!("http://{address}/events"),
            &Secret::new("canto-secret"),
            &Secret::new("iconik-secret"),
        )
        .await
        .unwrap();

    invoke(
        &registry,
        "iconik.update_metadata",
        json!({"asset_id": "a1f0c3d2-5b6e-4f70-8a91-b2c3d4e5f601", "fields": {"region": ["US-East"]}}),
        "tag-video",
    )
    .await
    .unwrap();
    invoke(
        &registry,
        "canto.update_metadata",
        json!({"scheme": "image", "asset_id": "hl26cs0001", "fields": {"Region": "US-East"}}),
        "tag-image",
    )
    .await
    .unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut sources: Vec<String> = received
            .lock()
            .unwrap()
            .iter()
            .map(|(source, _, _)| source.clone())
            .collect();
        sources.sort();
        if sources == ["canto", "iconik"] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "webhooks received: {sources:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (source, event_type, body) in received.lock().unwrap().iter() {
        assert_fits(&registry, source, event_type, body);
    }
    server.abort();
    sandbox.shutdown().await;
}
