//! A partner raises an issue on the hub simulator's partner routes (`POST
//! /partner/v1/issues`): it becomes the catalogued `trading_grid.issue_created` event,
//! naming the partner user, its category and the asset it is about, and our answers
//! through the connector (`comment_on_issue`, `update_issue`) are what the partner reads
//! back on `GET /partner/v1/issues/{id}`. Bad bodies and other companies' issues are
//! refused.

#![allow(clippy::unwrap_used)]

mod support;

use gridflow_connectors::Registry;
use gridflow_connectors::config::Config;
use gridflow_connectors::sandbox::Sandbox;
use gridflow_connectors::simulator::trading_grid::PARTNER_LOGIN_HEADER;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::invoke;

const METRO_LOGIN: &str = "media@metrofresh.example";
const GREEN_LOGIN: &str = "buyer@greenmountain.example";

async fn partner(
    sandbox: &Sandbox,
    login: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let base = sandbox.simulator("trading_grid").unwrap().base_url();
    let mut request = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .header(PARTNER_LOGIN_HEADER, login);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_partner_raises_an_issue_on_an_asset_and_reads_our_answer() {
    let sandbox = Sandbox::start(None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.content.dir = Some(dir.path().to_owned());
    let mut registry = Registry::new();
    for connector in sandbox.connectors(&config).unwrap() {
        registry.register(connector);
    }
    let hub = registry
        .connectors()
        .find(|connector| connector.name() == "trading_grid")
        .cloned()
        .unwrap();
    let feed = hub.clone().change_feed().unwrap();
    let start = feed.changes(None, 10).await.unwrap().cursor;

    let (status, issue) = partner(
        &sandbox,
        METRO_LOGIN,
        Method::POST,
        "/partner/v1/issues",
        Some(json!({"title": "Blurry can shot", "description": "The 12oz can is blurry at print size.",
                    "category": "low_quality", "severity": "high",
                    "related": {"post_id": "post-000001", "asset_id": "f9de6bb3e5c869aaba88bd7d5aded3f91c68c34b", "system": "otmm"}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{issue}");
    let issue_id = issue["issue_id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            &issue["partner_company_id"],
            &issue["login_id"],
            &issue["status"]
        ),
        (&json!("GC00933311CD"), &json!(METRO_LOGIN), &json!("open"))
    );

    let changes = feed.changes(Some(&start), 10).await.unwrap().changes;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].kind, "issue_created");
    let spec = hub
        .events()
        .iter()
        .find(|event| event.name == "issue_created")
        .unwrap();
    let validator = jsonschema::draft202012::new(&spec.payload).unwrap();
    assert!(
        validator.is_valid(&changes[0].data),
        "{:#}",
        changes[0].data
    );
    assert_eq!(
        changes[0].data["related"]["asset_id"],
        "f9de6bb3e5c869aaba88bd7d5aded3f91c68c34b"
    );
    assert_eq!(changes[0].data["category"], "low_quality");

    invoke(
        &registry,
        "trading_grid.comment_on_issue",
        json!({"issue_id": issue_id, "comment": "Corrected in version 3.", "author": "content-team"}),
        "answer",
    )
    .await
    .unwrap();
    invoke(
        &registry,
        "trading_grid.update_issue",
        json!({"issue_id": issue_id, "status": "closed"}),
        "close",
    )
    .await
    .unwrap();
    let path = format!("/partner/v1/issues/{issue_id}");
    let (status, seen) = partner(&sandbox, METRO_LOGIN, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["status"], "closed");
    assert_eq!(seen["comments"][0]["body"], "Corrected in version 3.");

    let (status, _) = partner(&sandbox, GREEN_LOGIN, Method::GET, &path, None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another company's issue is not shown"
    );
    for bad in [
        json!({"title": "No description"}),
        json!({"title": "t", "description": "d", "category": "smelly"}),
        json!({"title": "t", "description": "d", "related": {"asset_id": 7}}),
        json!({"title": "t", "description": "d", "related": {"shelf": "A3"}}),
    ] {
        let (status, _) = partner(
            &sandbox,
            METRO_LOGIN,
            Method::POST,
            "/partner/v1/issues",
            Some(bad.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let (status, _) = partner(
        &sandbox,
        "nobody@example.com",
        Method::POST,
        "/partner/v1/issues",
        Some(json!({"title": "t", "description": "d"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        feed.changes(Some(&start), 10).await.unwrap().changes.len(),
        3,
        "the issue, our comment and our update; no refused body made an event"
    );
}
