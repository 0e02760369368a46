//! The `canto` connector against the Canto simulator over real HTTP.

// Helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use gridflow_connectors::canto::{CantoConnector, CantoCredentials};
use gridflow_connectors::config::CantoConfig;
use gridflow_connectors::http::Secret;
use gridflow_connectors::simulator::{self, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SimOptions};
use gridflow_connectors::{Connector, Registry};
use serde_json::json;
use support::{Case, assert_error, invocation, invoke, run_contract};

fn config(base_url: &str, timeout: Duration) -> CantoConfig {
    CantoConfig {
        base_url: base_url.to_owned(),
        oauth_url: base_url.to_owned(),
        app_id_env: "CANTO_APP_ID".to_owned(),
        app_secret_env: "CANTO_APP_SECRET".to_owned(),
        valid_from_field: "Usage Start".to_owned(),
        valid_until_field: "Usage Expiry".to_owned(),
        timeout,
    }
}

fn credentials(secret: &str) -> CantoCredentials {
    CantoCredentials {
        app_id: Secret::new(SANDBOX_CLIENT_ID),
        app_secret: Secret::new(secret),
    }
}

fn registry(base_url: &str) -> Registry {
    let mut registry = Registry::new();
    let connector = CantoConnector::new(
        &config(base_url, Duration::from_secs(10)),
        credentials(SANDBOX_CLIENT_SECRET),
    )
    .unwrap();
    registry.register(Arc::new(connector));
    registry
}

#[tokio::test]
async fn every_action_meets_the_contract() {
    let simulator = simulator::canto::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    let slow = CantoConnector::new(
        &config(&simulator.base_url(), Duration::from_secs(1)),
        credentials(SANDBOX_CLIENT_SECRET),
    )
    .unwrap();
    let cases = [
        Case {
            action: "canto.search_assets",
            arguments: json!({"keyword": "citrus"}),
            missing: None,
        },
        Case {
            action: "canto.get_asset",
            arguments: json!({"scheme": "image", "asset_id": "hl26cs0001"}),
            missing: Some(json!({"scheme": "image", "asset_id": "nope"})),
        },
        Case {
            action: "canto.get_download_link",
            arguments: json!({"scheme": "image", "asset_id": "hl26cs0001"}),
            missing: Some(json!({"scheme": "video", "asset_id": "hl26cs0001"})),
        },
        Case {
            action: "canto.update_metadata",
            arguments: json!({"scheme": "image", "asset_id": "hl26cs0001", "fields": {"Language": "fr-CA"}}),
            missing: Some(
                json!({"scheme": "image", "asset_id": "nope", "fields": {"Language": "x"}}),
            ),
        },
        Case {
            action: "canto.comment_version",
            arguments: json!({"scheme": "image", "asset_id": "hl26cs0001", "version_id": "1", "comment": "please add a fr-CA cut"}),
            missing: Some(
                json!({"scheme": "image", "asset_id": "nope", "version_id": "1", "comment": "x"}),
            ),
        },
    ];
    run_contract(
        &simulator,
        &registry,
        &slow,
        &cases,
        &[SANDBOX_CLIENT_SECRET],
    )
    .await;
    simulator.shutdown().await;
}

#[tokio::test]
async fn approval_and_rights_are_normalised_and_missing_means_unknown() {
    let simulator = simulator::canto::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    let get = |scheme: &'static str, id: &'static str| {
        invoke(
            &registry,
            "canto.get_asset",
            json!({"scheme": scheme, "asset_id": id}),
            "get",
        )
    };
    let approved = get("image", "hl26cs0001").await.unwrap();
    assert_eq!(approved["approval"], "approved");
    assert_eq!(approved["rights"]["valid_from"], "2026-04-01T00:00:00Z");
    assert_eq!(approved["metadata"]["Brand"], "Aurora Springs");
    assert_eq!(approved["versions"].as_array().unwrap().len(), 1);

    let expired = get("image", "hl24st0002").await.unwrap();
    assert!(
        expired["rights"]["valid_until"]
            .as_str()
            .unwrap()
            .starts_with("2025-01-15T23:59:59")
    );
    assert_eq!(
        get("document", "nb26pd0004").await.unwrap()["approval"],
        "restricted"
    );
    let pending = get("video", "cs26vd0003").await.unwrap();
    assert_eq!(pending["approval"], "pending");
    assert_eq!(
        pending["rights"]["valid_until"],
        json!(null),
        "no expiry field: unknown"
    );
    let bare = get("image", "nb26ps0005").await.unwrap();
    assert_eq!(bare["approval"], "unknown");
    assert_eq!(
        bare["rights"],
        json!({"valid_from": null, "valid_until": null})
    );

    let found = invoke(
        &registry,
        "canto.search_assets",
        json!({"keyword": "citrus"}),
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
        vec![json!("hl26cs0001")],
        "only approved content by default"
    );
    let all = invoke(
        &registry,
        "canto.search_assets",
        json!({"keyword": "citrus", "approved_only": false}),
        "all",
    )
    .await
    .unwrap();
    assert_eq!(all["found"], 2);

    let link = invoke(
        &registry,
        "canto.get_download_link",
        json!({"scheme": "image", "asset_id": "hl26cs0001"}),
        "link",
    )
    .await
    .unwrap();
    let url = link["url"].as_str().unwrap();
    assert!(
        url.starts_with(&simulator.base_url())
            && url.ends_with("/api_binary/v1/image/hl26cs0001/download"),
        "{url}"
    );
    simulator.shutdown().await;
}

#[tokio::test]
async fn metadata_edit_applies_once_per_attempt_key() {
    let simulator = simulator::canto::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    let (connector, _) = registry.action("canto.update_metadata").unwrap();
    let arguments =
        json!({"scheme": "image", "asset_id": "hl26cs0001", "fields": {"Region": "CA-QC"}});
    let call = || connector.invoke(invocation("update_metadata", arguments.clone(), "edit"));
    call().await.unwrap();
    call().await.unwrap();
    let edits: Vec<_> = simulator
        .effects()
        .into_iter()
        .filter(|effect| effect.action == "metadata.updated")
        .collect();
    assert_eq!(edits.len(), 1, "one effect per logical action: {edits:?}");
    let read = invoke(
        &registry,
        "canto.get_asset",
        json!({"scheme": "image", "asset_id": "hl26cs0001"}),
        "read",
    )
    .await
    .unwrap();
    assert_eq!(read["metadata"]["Region"], "CA-QC");
    assert_eq!(
        read["metadata"]["Brand"], "Aurora Springs",
        "other fields kept"
    );

    let effects = simulator.effects().len();
    let error = invoke(
        &registry,
        "canto.get_asset",
        json!({"scheme": "photo", "asset_id": "x"}),
        "typo",
    )
    .await
    .unwrap_err();
    assert_eq!(error.code(), "invalid_arguments");
    let error = assert_error(
        invoke(
            &registry,
            "canto.comment_version",
            json!({"scheme": "image", "asset_id": "hl26cs0001", "version_id": "9", "comment": "x"}),
            "v9",
        )
        .await,
        false,
        "not_found",
        "unknown version",
    );
    assert!(error.message().contains("has no version 9"), "{error}");
    assert_eq!(simulator.effects().len(), effects, "nothing changed");
    simulator.shutdown().await;
}

#[tokio::test]
async fn refused_credentials_are_permanent_and_never_printed() {
    let simulator = simulator::canto::start(SimOptions::in_memory())
        .await
        .unwrap();
    let wrong = "wrong-secret-value-123";
    let connector = CantoConnector::new(
        &config(&simulator.base_url(), Duration::from_secs(10)),
        credentials(wrong),
    )
    .unwrap();
    let error = assert_error(
        connector
            .invoke(invocation("search_assets", json!({}), "search"))
            .await,
        false,
        "unauthorized",
        "wrong secret",
    );
    assert!(!error.to_string().contains(wrong), "{error}");
    assert!(error.message().contains("wrong app_secret"), "{error}");
    simulator.shutdown().await;
}

#[tokio::test]
async fn state_survives_a_simulator_restart() {
    let directory = tempfile::tempdir().unwrap();
    let state_file = directory.path().join("canto.json");
    let simulator = simulator::canto::start(SimOptions::persisted(&state_file))
        .await
        .unwrap();
    invoke(
        &registry(&simulator.base_url()),
        "canto.update_metadata",
        json!({"scheme": "image", "asset_id": "hl26cs0001", "fields": {"Language": "es-MX"}}),
        "persist",
    )
    .await
    .unwrap();
    simulator.shutdown().await;

    let restarted = simulator::canto::start(SimOptions::persisted(&state_file))
        .await
        .unwrap();
    let read = invoke(
        &registry(&restarted.base_url()),
        "canto.get_asset",
        json!({"scheme": "image", "asset_id": "hl26cs0001"}),
        "read",
    )
    .await
    .unwrap();
    assert_eq!(read["metadata"]["Language"], "es-MX");
    assert_eq!(restarted.effects().len(), 1);
    restarted.shutdown().await;
}

#[tokio::test]
async fn metadata_edits_fire_the_webhook_with_its_secure_token() {
    use tokio::sync::mpsc;

    let (sender, mut received) = mpsc::unbounded_channel::<serde_json::Value>();
    let receiver = axum::Router::new().route(
        "/canto-hook",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let sender = sender.clone();
            async move {
                sender.send(body).unwrap();
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/canto-hook", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, receiver).await });

    let simulator = simulator::canto::start(SimOptions::in_memory())
        .await
        .unwrap();
    let configured = reqwest::Client::new()
        .put(format!("{}/_sim/canto/webhooks", simulator.base_url()))
        .json(&json!([
            {"event": "Update Metadata", "url": hook_url, "secure_token": "tok-update-metadata"},
            {"event": "Add New Version", "url": hook_url, "secure_token": "tok-new-version"}
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(configured.status(), 200);

    let registry = registry(&simulator.base_url());
    let arguments =
        json!({"scheme": "image", "asset_id": "hl26cs0001", "fields": {"Region": "US-West"}});
    invoke(
        &registry,
        "canto.update_metadata",
        arguments.clone(),
        "hook",
    )
    .await
    .unwrap();
    invoke(&registry, "canto.update_metadata", arguments, "hook")
        .await
        .unwrap();
    invoke(
        &registry,
        "canto.update_metadata",
        json!({"scheme": "video", "asset_id": "cs26vd0003", "fields": {"Region": "US"}}),
        "hook-2",
    )
    .await
    .unwrap();

    let mut deliveries = Vec::new();
    while !deliveries
        .iter()
        .any(|body: &serde_json::Value| body["id"] == "cs26vd0003")
    {
        let body = tokio::time::timeout(Duration::from_secs(10), received.recv())
            .await
            .expect("a webhook delivery within 10 s")
            .unwrap();
        deliveries.push(body);
    }
    while let Ok(late) = received.try_recv() {
        deliveries.push(late);
    }
    let first: Vec<_> = deliveries
        .iter()
        .filter(|body| body["id"] == "hl26cs0001")
        .collect();
    assert_eq!(
        first.len(),
        1,
        "the replayed edit was not delivered: {deliveries:?}"
    );
    assert_eq!(
        *first[0],
        json!({"secure_token": "tok-update-metadata", "scheme": "image", "id": "hl26cs0001",
               "album": "alb-launch-2026", "displayname": "citrus-spritz-can-12oz.png"})
    );
    assert_eq!(
        deliveries.len(),
        2,
        "only the Update Metadata webhook fired: {deliveries:?}"
    );
    simulator.shutdown().await;
    server.abort();
}
