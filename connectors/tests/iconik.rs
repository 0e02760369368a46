//! The `iconik` connector against the iconik simulator over real HTTP.

// Helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use gridflow_connectors::config::IconikConfig;
use gridflow_connectors::http::Secret;
use gridflow_connectors::iconik::{IconikConnector, IconikCredentials};
use gridflow_connectors::simulator::iconik::{API_ROOT, SANDBOX_VIEW_ID};
use gridflow_connectors::simulator::{
    self, SANDBOX_CLIENT_ID, SANDBOX_PASSWORD, SANDBOX_USERNAME, SimOptions,
};
use gridflow_connectors::{Connector, Registry};
use serde_json::json;
use support::{Case, assert_error, invocation, invoke, run_contract};

const APPROVED: &str = "a1f0c3d2-5b6e-4f70-8a91-b2c3d4e5f601";
const REQUESTED: &str = "a1f0c3d2-5b6e-4f70-8a91-b2c3d4e5f602";
const EXPIRED: &str = "a1f0c3d2-5b6e-4f70-8a91-b2c3d4e5f603";
const NO_APPROVAL: &str = "a1f0c3d2-5b6e-4f70-8a91-b2c3d4e5f605";
const MISSING: &str = "ffffffff-0000-4000-8000-000000000000";

fn config(base_url: &str, timeout: Duration) -> IconikConfig {
    IconikConfig {
        base_url: format!("{base_url}{API_ROOT}"),
        app_id_env: "ICONIK_APP_ID".to_owned(),
        email_env: "ICONIK_EMAIL".to_owned(),
        password_env: "ICONIK_PASSWORD".to_owned(),
        metadata_view_id: SANDBOX_VIEW_ID.to_owned(),
        valid_from_field: "rights_valid_from".to_owned(),
        valid_until_field: "rights_valid_until".to_owned(),
        timeout,
    }
}

fn credentials(password: &str) -> IconikCredentials {
    IconikCredentials {
        app_id: Secret::new(SANDBOX_CLIENT_ID),
        email: Secret::new(SANDBOX_USERNAME),
        password: Secret::new(password),
    }
}

fn registry(base_url: &str) -> Registry {
    let mut registry = Registry::new();
    let connector = IconikConnector::new(
        &config(base_url, Duration::from_secs(10)),
        credentials(SANDBOX_PASSWORD),
    )
    .unwrap();
    registry.register(Arc::new(connector));
    registry
}

#[tokio::test]
async fn every_action_meets_the_contract() {
    let simulator = simulator::iconik::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    let slow = IconikConnector::new(
        &config(&simulator.base_url(), Duration::from_secs(1)),
        credentials(SANDBOX_PASSWORD),
    )
    .unwrap();
    let cases = [
        Case {
            action: "iconik.search_assets",
            arguments: json!({"query": "citrus"}),
            missing: None,
        },
        Case {
            action: "iconik.get_asset",
            arguments: json!({"asset_id": APPROVED}),
            missing: Some(json!({"asset_id": MISSING})),
        },
        Case {
            action: "iconik.get_download_link",
            arguments: json!({"asset_id": APPROVED}),
            missing: Some(json!({"asset_id": MISSING})),
        },
        Case {
            action: "iconik.update_metadata",
            arguments: json!({"asset_id": APPROVED, "fields": {"language": "fr-CA", "region": ["CA-QC", "CA-ON"]}}),
            missing: Some(json!({"asset_id": MISSING, "fields": {"language": "x"}})),
        },
        Case {
            action: "iconik.create_version",
            arguments: json!({"asset_id": REQUESTED}),
            missing: Some(json!({"asset_id": MISSING})),
        },
        Case {
            action: "iconik.request_approval",
            arguments: json!({"asset_id": NO_APPROVAL, "groups": ["content-team"]}),
            missing: Some(json!({"asset_id": MISSING, "users": ["u-0002"]})),
        },
        Case {
            action: "iconik.fetch_content",
            arguments: json!({"asset_id": APPROVED}),
            missing: Some(json!({"asset_id": MISSING})),
        },
    ];
    run_contract(
        &simulator,
        &registry,
        &slow,
        &cases,
        &[SANDBOX_PASSWORD, SANDBOX_USERNAME],
    )
    .await;
    simulator.shutdown().await;
}

#[tokio::test]
async fn approval_and_rights_are_normalised_and_missing_means_unknown() {
    let simulator = simulator::iconik::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    let get = |asset_id: &'static str| {
        invoke(
            &registry,
            "iconik.get_asset",
            json!({"asset_id": asset_id}),
            "get",
        )
    };

    let approved = get(APPROVED).await.unwrap();
    assert_eq!(approved["approval"], "approved");
    assert_eq!(approved["rights"]["valid_from"], "2026-01-01T00:00:00Z");
    assert_eq!(approved["metadata"]["brand"], json!(["Aurora Springs"]));
    assert_eq!(approved["versions"].as_array().unwrap().len(), 1);

    let expired = get(EXPIRED).await.unwrap();
    assert_eq!(expired["approval"], "approved");
    let until = expired["rights"]["valid_until"].as_str().unwrap();
    assert!(until.starts_with("2025-01-15T23:59:59"), "{until}");

    let unknown = get(NO_APPROVAL).await.unwrap();
    assert_eq!(unknown["approval"], "unknown");
    assert_eq!(unknown["approval_status"], "N/A");
    assert_eq!(
        unknown["rights"],
        json!({"valid_from": null, "valid_until": null})
    );

    let found = invoke(
        &registry,
        "iconik.search_assets",
        json!({"query": "citrus"}),
        "search",
    )
    .await
    .unwrap();
    let ids: Vec<_> = found["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["asset_id"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![json!(APPROVED)],
        "only approved assets by default"
    );
    let all = invoke(
        &registry,
        "iconik.search_assets",
        json!({"query": "citrus", "approved_only": false}),
        "all",
    )
    .await
    .unwrap();
    assert_eq!(all["assets"].as_array().unwrap().len(), 2);
    simulator.shutdown().await;
}

#[tokio::test]
async fn writes_change_the_simulator_once_per_attempt_key() {
    let simulator = simulator::iconik::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    let (connector, _) = registry.action("iconik.create_version").unwrap();
    let call = || {
        connector.invoke(invocation(
            "create_version",
            json!({"asset_id": APPROVED}),
            "version",
        ))
    };
    let first = call().await.unwrap();
    let second = call().await.unwrap();
    assert_eq!(first["version_id"], second["version_id"]);
    assert_eq!(first["status"], "IN_PROGRESS");
    let created: Vec<_> = simulator
        .effects()
        .into_iter()
        .filter(|effect| effect.action == "version.created")
        .collect();
    assert_eq!(
        created.len(),
        1,
        "one effect per logical action: {created:?}"
    );

    invoke(
        &registry,
        "iconik.update_metadata",
        json!({"asset_id": APPROVED, "fields": {"language": "de-DE"}}),
        "meta",
    )
    .await
    .unwrap();
    let read = invoke(
        &registry,
        "iconik.get_asset",
        json!({"asset_id": APPROVED}),
        "read",
    )
    .await
    .unwrap();
    assert_eq!(read["metadata"]["language"], json!(["de-DE"]));
    assert_eq!(
        read["metadata"]["brand"],
        json!(["Aurora Springs"]),
        "other fields kept"
    );
    simulator.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_the_systems_message() {
    let simulator = simulator::iconik::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    let error = assert_error(
        invoke(
            &registry,
            "iconik.create_version",
            json!({"asset_id": APPROVED, "source_version_id": "nope"}),
            "bad",
        )
        .await,
        false,
        "invalid",
        "unknown source version",
    );
    assert!(
        error
            .message()
            .contains("source_version_id: version nope is not a version"),
        "{error}"
    );
    let effects = simulator.effects().len();
    let error = invoke(
        &registry,
        "iconik.get_asset",
        json!({"asset": APPROVED}),
        "typo",
    )
    .await
    .unwrap_err();
    assert_eq!(error.code(), "invalid_arguments");
    let error = invoke(
        &registry,
        "iconik.update_metadata",
        json!({"asset_id": APPROVED, "fields": {}}),
        "empty",
    )
    .await
    .unwrap_err();
    assert_eq!(error.code(), "invalid_arguments");
    assert_eq!(simulator.effects().len(), effects, "nothing changed");
    simulator.shutdown().await;
}

#[tokio::test]
async fn refused_credentials_are_permanent_and_never_printed() {
    let simulator = simulator::iconik::start(SimOptions::in_memory())
        .await
        .unwrap();
    let wrong = "wrong-password-value-123";
    let connector = IconikConnector::new(
        &config(&simulator.base_url(), Duration::from_secs(10)),
        credentials(wrong),
    )
    .unwrap();
    let error = assert_error(
        connector
            .invoke(invocation(
                "get_asset",
                json!({"asset_id": APPROVED}),
                "get",
            ))
            .await,
        false,
        "unauthorized",
        "wrong password",
    );
    assert!(!error.to_string().contains(wrong), "{error}");
    assert!(error.message().contains("Invalid credentials"), "{error}");
    simulator.shutdown().await;
}

#[tokio::test]
async fn state_survives_a_simulator_restart() {
    let directory = tempfile::tempdir().unwrap();
    let state_file = directory.path().join("iconik.json");
    let simulator = simulator::iconik::start(SimOptions::persisted(&state_file))
        .await
        .unwrap();
    invoke(
        &registry(&simulator.base_url()),
        "iconik.update_metadata",
        json!({"asset_id": APPROVED, "fields": {"product": "Citrus Spritz 16oz"}}),
        "persist",
    )
    .await
    .unwrap();
    simulator.shutdown().await;

    let restarted = simulator::iconik::start(SimOptions::persisted(&state_file))
        .await
        .unwrap();
    let read = invoke(
        &registry(&restarted.base_url()),
        "iconik.get_asset",
        json!({"asset_id": APPROVED}),
        "read",
    )
    .await
    .unwrap();
    assert_eq!(read["metadata"]["product"], json!(["Citrus Spritz 16oz"]));
    assert_eq!(restarted.effects().len(), 1);
    restarted.shutdown().await;
}

#[tokio::test]
async fn changes_are_posted_to_matching_webhooks_once() {
    use axum::http::HeaderMap;
    use tokio::sync::mpsc;

    let (sender, mut received) = mpsc::unbounded_channel::<(Option<String>, serde_json::Value)>();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: HeaderMap, axum::Json(body): axum::Json<serde_json::Value>| {
                let sender = sender.clone();
                async move {
                    let secret = headers
                        .get("x-hook-secret")
                        .and_then(|value| value.to_str().ok())
                        .map(str::to_owned);
                    sender.send((secret, body)).unwrap();
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, receiver).await });

    let simulator = simulator::iconik::start(SimOptions::in_memory())
        .await
        .unwrap();
    let api = format!("{}{API_ROOT}", simulator.base_url());
    let http = reqwest::Client::new();
    let login: serde_json::Value = http
        .post(format!("{api}/auth/v1/auth/simple/login/"))
        .header("App-ID", SANDBOX_CLIENT_ID)
        .json(&json!({"app_id": SANDBOX_CLIENT_ID, "email": SANDBOX_USERNAME, "password": SANDBOX_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap();
    let create = |body: serde_json::Value| {
        http.post(format!("{api}/notifications/v1/webhooks/"))
            .header("App-ID", SANDBOX_CLIENT_ID)
            .header("Auth-Token", token)
            .json(&body)
            .send()
    };
    let refused = create(json!({"url": hook_url})).await.unwrap();
    assert_eq!(refused.status(), 400);
    let refused: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(
        refused["errors"]["event_type"][0],
        "Missing data for required field."
    );
    let created = create(
        json!({"url": hook_url, "event_type": "assets", "status": "ENABLED",
                                "headers": {"X-Hook-Secret": "shared-secret"}}),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    create(json!({"url": hook_url, "event_type": "assets", "status": "DISABLED"}))
        .await
        .unwrap();

    let registry = registry(&simulator.base_url());
    let (connector, _) = registry.action("iconik.update_metadata").unwrap();
    let arguments = json!({"asset_id": APPROVED, "fields": {"language": "it-IT"}});
    connector
        .invoke(invocation("update_metadata", arguments.clone(), "hooked"))
        .await
        .unwrap();
    connector
        .invoke(invocation("update_metadata", arguments, "hooked"))
        .await
        .unwrap();
    invoke(
        &registry,
        "iconik.create_version",
        json!({"asset_id": APPROVED}),
        "hooked-version",
    )
    .await
    .unwrap();

    invoke(
        &registry,
        "iconik.request_approval",
        json!({"asset_id": APPROVED, "groups": ["content-team"]}),
        "hooked-approval",
    )
    .await
    .unwrap();
    // Deliveries run concurrently: collect them until the last change's has arrived.
    let mut deliveries = Vec::new();
    while !deliveries
        .iter()
        .any(|(_, body): &(Option<String>, serde_json::Value)| body["realm"] == "approvals")
    {
        deliveries.push(next(&mut received).await);
    }
    while let Ok(late) = received.try_recv() {
        deliveries.push(late);
    }
    let realm = |name: &str| {
        deliveries
            .iter()
            .filter(|(_, body)| body["realm"] == name)
            .collect::<Vec<_>>()
    };
    let metadata = realm("metadata");
    assert_eq!(
        metadata.len(),
        1,
        "the replayed update changed nothing and was not delivered: {deliveries:?}"
    );
    let (secret, first) = metadata[0];
    assert_eq!(
        secret.as_deref(),
        Some("shared-secret"),
        "custom headers are sent"
    );
    assert_eq!(first["event_type"], "assets");
    assert_eq!(first["operation"], "update");
    assert_eq!(first["object_id"], APPROVED);
    assert_eq!(
        first["data"]["metadata_values"]["language"]["field_values"][0]["value"],
        "it-IT"
    );
    assert_eq!(realm("versions").len(), 1);
    assert_eq!(realm("versions")[0].1["operation"], "create");
    assert_eq!(
        deliveries.len(),
        3,
        "the disabled definition received nothing: {deliveries:?}"
    );
    simulator.shutdown().await;
    server.abort();
}

/// The next webhook delivery, waited for with a deadline.
async fn next(
    received: &mut tokio::sync::mpsc::UnboundedReceiver<(Option<String>, serde_json::Value)>,
) -> (Option<String>, serde_json::Value) {
    tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("a webhook delivery within 10 s")
        .unwrap()
}
