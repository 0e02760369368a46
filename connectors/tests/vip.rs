//! The `vip` connector against the VIP simulator over real HTTP.

// Helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use gridflow_connectors::config::VipConfig;
use gridflow_connectors::content::{Artifact, ContentStore};
use gridflow_connectors::http::Secret;
use gridflow_connectors::simulator::{self, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SimOptions};
use gridflow_connectors::vip::{VipConnector, VipCredentials};
use gridflow_connectors::{Connector, Registry};
use serde_json::json;
use support::{Case, assert_error, invocation, invoke, run_contract};

fn config(base_url: &str, timeout: Duration) -> VipConfig {
    VipConfig {
        base_url: base_url.to_owned(),
        client_id_env: "VIP_CLIENT_ID".to_owned(),
        client_secret_env: "VIP_CLIENT_SECRET".to_owned(),
        scope: "distribution.read distribution.write".to_owned(),
        timeout,
    }
}

fn credentials(secret: &str) -> VipCredentials {
    VipCredentials {
        client_id: Secret::new(SANDBOX_CLIENT_ID),
        client_secret: Secret::new(secret),
    }
}

fn registry(base_url: &str) -> Registry {
    registry_with(base_url, ContentStore::scratch())
}

fn registry_with(base_url: &str, content: ContentStore) -> Registry {
    let mut registry = Registry::new();
    let connector = VipConnector::new(
        &config(base_url, Duration::from_secs(10)),
        credentials(SANDBOX_CLIENT_SECRET),
    )
    .unwrap()
    .with_content(content);
    registry.register(Arc::new(connector));
    registry
}

#[tokio::test]
async fn every_action_meets_the_contract() {
    let simulator = simulator::vip::start(SimOptions::in_memory())
        .await
        .unwrap();
    let directory = tempfile::tempdir().unwrap();
    let store = ContentStore::new(directory.path(), 1024 * 1024);
    let reference = store
        .put(
            b"citrus spritz sell sheet",
            "application/pdf",
            "sell-sheet.pdf",
        )
        .await
        .unwrap();
    let artifact = serde_json::to_value(Artifact {
        system: "otmm".to_owned(),
        asset_id: "a-sell-sheet".to_owned(),
        version: "2".to_owned(),
        content: reference,
    })
    .unwrap();
    let registry = registry_with(&simulator.base_url(), store.clone());
    let slow = VipConnector::new(
        &config(&simulator.base_url(), Duration::from_secs(1)),
        credentials(SANDBOX_CLIENT_SECRET),
    )
    .unwrap()
    .with_content(store);
    let cases = [
        Case {
            action: "vip.list_recipients",
            arguments: json!({"group_id": "grp-key-retailers"}),
            missing: None,
        },
        Case {
            action: "vip.create_package",
            arguments: json!({"title": "Autumn kit", "assets": [{"source": "otmm", "source_id": "a1", "file_name": "a.png"}],
                              "rights": {"valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"},
                              "recipients": {"group_ids": ["grp-key-retailers"]}}),
            missing: None,
        },
        Case {
            action: "vip.get_package",
            arguments: json!({"package_id": "pkg-summer-citrus"}),
            missing: Some(json!({"package_id": "pkg-nope"})),
        },
        Case {
            action: "vip.update_package",
            arguments: json!({"package_id": "pkg-summer-citrus", "metadata": {"language": "fr-CA"}}),
            missing: Some(json!({"package_id": "pkg-nope", "title": "x"})),
        },
        Case {
            action: "vip.publish_package",
            arguments: json!({"package_id": "pkg-autumn-harvest"}),
            missing: Some(json!({"package_id": "pkg-nope"})),
        },
        Case {
            action: "vip.publish_content",
            arguments: json!({"title": "Sell sheets", "recipients": {"group_ids": ["grp-key-retailers"]},
                              "rights": {"valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"},
                              "content": [artifact.clone()]}),
            missing: Some(json!({"package_id": "pkg-nope", "content": [artifact.clone()]})),
        },
        Case {
            action: "vip.list_deliveries",
            arguments: json!({"package_id": "pkg-summer-citrus", "limit": 2}),
            missing: None,
        },
        Case {
            action: "vip.acknowledge_delivery",
            arguments: json!({"delivery_id": "dlv-00002", "by": "buyer@atlanticws.example"}),
            missing: Some(json!({"delivery_id": "dlv-nope", "by": "x"})),
        },
        Case {
            action: "vip.notify_recipients",
            arguments: json!({"recipient_ids": ["rcp-metro-fresh"], "subject": "Recall", "message": "Stop using the summer pack shots."}),
            missing: Some(json!({"recipient_ids": ["rcp-nope"], "subject": "x", "message": "x"})),
        },
        Case {
            action: "vip.revoke_delivery",
            arguments: json!({"delivery_id": "dlv-00001", "reason": "wrong market"}),
            missing: Some(json!({"delivery_id": "dlv-nope"})),
        },
        Case {
            action: "vip.replace_package_content",
            arguments: json!({"package_id": "pkg-summer-citrus", "content": [artifact.clone()], "note": "new sheet"}),
            missing: Some(json!({"package_id": "pkg-nope", "content": [artifact]})),
        },
        Case {
            action: "vip.withdraw_package",
            arguments: json!({"package_id": "pkg-summer-citrus", "reason": "recall"}),
            missing: Some(json!({"package_id": "pkg-nope", "reason": "x"})),
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
async fn repeated_attempt_key_creates_one_package() {
    let simulator = simulator::vip::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    let (connector, _) = registry.action("vip.create_package").unwrap();
    let call = || {
        connector.invoke(invocation(
            "create_package",
            json!({"title": "Once"}),
            "create",
        ))
    };
    let first = call().await.unwrap();
    let second = call().await.unwrap();
    assert_eq!(first["package_id"], second["package_id"]);
    let created: Vec<_> = simulator
        .effects()
        .into_iter()
        .filter(|effect| effect.action == "package.created")
        .collect();
    assert_eq!(
        created.len(),
        1,
        "one effect per logical action: {created:?}"
    );
    assert!(
        created[0]
            .idempotency_key
            .as_deref()
            .is_some_and(|key| key.ends_with(":create"))
    );
    simulator.shutdown().await;
}

#[tokio::test]
async fn expired_rights_refuse_publishing_with_the_systems_message() {
    let simulator = simulator::vip::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    let error = assert_error(
        invoke(
            &registry,
            "vip.publish_package",
            json!({"package_id": "pkg-holiday-2024"}),
            "publish",
        )
        .await,
        false,
        "conflict",
        "expired package",
    );
    assert!(error.message().contains("rights expired"), "{error}");
    let error = assert_error(
        invoke(
            &registry,
            "vip.create_package",
            json!({"title": " "}),
            "blank",
        )
        .await,
        false,
        "invalid",
        "blank title",
    );
    assert!(error.message().contains("title: is required"), "{error}");
    simulator.shutdown().await;
}

#[tokio::test]
async fn refused_credentials_are_permanent_and_never_printed() {
    let simulator = simulator::vip::start(SimOptions::in_memory())
        .await
        .unwrap();
    let wrong = "wrong-secret-value-123";
    let connector = VipConnector::new(
        &config(&simulator.base_url(), Duration::from_secs(10)),
        credentials(wrong),
    )
    .unwrap();
    let error = assert_error(
        connector
            .invoke(invocation("list_recipients", json!({}), "list"))
            .await,
        false,
        "unauthorized",
        "wrong secret",
    );
    assert!(!error.to_string().contains(wrong), "{error}");
    assert!(error.message().contains("invalid_client"), "{error}");
    simulator.shutdown().await;
}

#[tokio::test]
async fn unknown_argument_is_rejected_before_any_request() {
    let simulator = simulator::vip::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    let error = invoke(
        &registry,
        "vip.get_package",
        json!({"package": "pkg-summer-citrus"}),
        "typo",
    )
    .await
    .unwrap_err();
    assert_eq!(error.code(), "invalid_arguments");
    assert_eq!(simulator.tokens().issued_count(), 0, "nothing was sent");
    simulator.shutdown().await;
}

#[tokio::test]
async fn state_survives_a_simulator_restart() {
    let directory = tempfile::tempdir().unwrap();
    let state_file = directory.path().join("vip.json");
    let simulator = simulator::vip::start(SimOptions::persisted(&state_file))
        .await
        .unwrap();
    let created = invoke(
        &registry(&simulator.base_url()),
        "vip.create_package",
        json!({"title": "Persisted"}),
        "persist",
    )
    .await
    .unwrap();
    simulator.shutdown().await;

    let restarted = simulator::vip::start(SimOptions::persisted(&state_file))
        .await
        .unwrap();
    let registry = registry(&restarted.base_url());
    let read = invoke(
        &registry,
        "vip.get_package",
        json!({"package_id": created["package_id"]}),
        "read",
    )
    .await
    .unwrap();
    assert_eq!(read["package"]["title"], "Persisted");
    assert_eq!(restarted.effects().len(), 1);
    restarted.shutdown().await;
}
