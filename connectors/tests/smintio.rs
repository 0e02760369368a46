//! The `smintio` connector against the Smint.io simulator over real HTTP.

// Helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use gridflow_connectors::config::SmintioConfig;
use gridflow_connectors::http::Secret;
use gridflow_connectors::simulator::smintio::{API_ROOT, SANDBOX_REFRESH_TOKEN};
use gridflow_connectors::simulator::{self, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SimOptions};
use gridflow_connectors::smintio::{SmintioConnector, SmintioCredentials};
use gridflow_connectors::{Connector, Registry};
use serde_json::json;
use support::{Case, assert_error, invocation, invoke, run_contract};

const CURRENT: &str = "5e0c1a2b-3c4d-4e5f-8a6b-7c8d9e0f0001";
const CURRENT_CART: &str = "ca7c1a2b-3c4d-4e5f-8a6b-7c8d9e0f0001";
const EXPIRED: &str = "5e0c1a2b-3c4d-4e5f-8a6b-7c8d9e0f0002";
const RESTRICTED: &str = "5e0c1a2b-3c4d-4e5f-8a6b-7c8d9e0f0003";
const OPEN_ENDED: &str = "5e0c1a2b-3c4d-4e5f-8a6b-7c8d9e0f0004";
const MISSING: &str = "5e0c1a2b-3c4d-4e5f-8a6b-7c8d9e0f9999";

fn config(base_url: &str, timeout: Duration) -> SmintioConfig {
    SmintioConfig {
        base_url: format!("{base_url}{API_ROOT}"),
        identity_url: base_url.to_owned(),
        client_id_env: "SMINTIO_CLIENT_ID".to_owned(),
        client_secret_env: "SMINTIO_CLIENT_SECRET".to_owned(),
        refresh_token_env: "SMINTIO_REFRESH_TOKEN".to_owned(),
        timeout,
        poll_interval: Duration::from_secs(1),
    }
}

fn credentials(refresh_token: &str) -> SmintioCredentials {
    SmintioCredentials {
        client_id: Secret::new(SANDBOX_CLIENT_ID),
        client_secret: Secret::new(SANDBOX_CLIENT_SECRET),
        refresh_token: Secret::new(refresh_token),
    }
}

fn registry(base_url: &str) -> Registry {
    let mut registry = Registry::new();
    let connector = SmintioConnector::new(
        &config(base_url, Duration::from_secs(10)),
        credentials(SANDBOX_REFRESH_TOKEN),
    )
    .unwrap();
    registry.register(Arc::new(connector));
    registry
}

#[tokio::test]
async fn every_action_meets_the_contract() {
    let simulator = simulator::smintio::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    let slow = SmintioConnector::new(
        &config(&simulator.base_url(), Duration::from_secs(1)),
        credentials(SANDBOX_REFRESH_TOKEN),
    )
    .unwrap();
    let cases = [
        Case {
            action: "smintio.sync_assets",
            arguments: json!({"limit": 3}),
            missing: None,
        },
        Case {
            action: "smintio.get_asset",
            arguments: json!({"asset_id": CURRENT}),
            missing: Some(json!({"asset_id": MISSING})),
        },
        Case {
            action: "smintio.fetch_content",
            arguments: json!({"asset_id": CURRENT}),
            missing: Some(json!({"asset_id": MISSING})),
        },
        Case {
            action: "smintio.get_download_link",
            arguments: json!({"asset_id": CURRENT, "cart_uuid": CURRENT_CART}),
            missing: Some(json!({"asset_id": MISSING, "cart_uuid": CURRENT_CART})),
        },
    ];
    run_contract(
        &simulator,
        &registry,
        &slow,
        &cases,
        &[SANDBOX_CLIENT_SECRET, SANDBOX_REFRESH_TOKEN],
    )
    .await;
    assert!(simulator.effects().is_empty(), "CLAPI-C is read-only");
    simulator.shutdown().await;
}

#[tokio::test]
async fn licence_terms_become_approval_and_rights_and_missing_means_unknown() {
    let simulator = simulator::smintio::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    let get = |asset_id: &'static str| {
        invoke(
            &registry,
            "smintio.get_asset",
            json!({"asset_id": asset_id}),
            "get",
        )
    };

    let current = get(CURRENT).await.unwrap();
    assert_eq!(current["approval"], "approved");
    assert_eq!(
        current["rights"],
        json!({"valid_from": "2026-01-15T00:00:00Z", "valid_until": "2027-01-14T23:59:59Z"})
    );
    assert_eq!(current["name"], "Picnic with lemonade");
    assert_eq!(current["versions"][0]["binary_type"], "master");

    let expired = get(EXPIRED).await.unwrap();
    assert_eq!(expired["rights"]["valid_until"], "2025-01-31T23:59:59Z");
    assert_eq!(get(RESTRICTED).await.unwrap()["approval"], "restricted");
    let open = get(OPEN_ENDED).await.unwrap();
    assert_eq!(
        open["rights"]["valid_until"],
        json!(null),
        "no end given: unknown, not unlimited"
    );

    // The feed pages with continuation tokens and skips what cannot be synced.
    let mut continuation = None;
    let mut seen = Vec::new();
    loop {
        let mut arguments = json!({"limit": 2, "approved_only": false});
        if let Some(token) = &continuation {
            arguments["continuation_uuid"] = json!(token);
        }
        let page = invoke(&registry, "smintio.sync_assets", arguments, "sync")
            .await
            .unwrap();
        if page["count"] == 0 {
            break;
        }
        seen.extend(
            page["assets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["asset_id"].clone()),
        );
        continuation = page["continuation_uuid"].as_str().map(str::to_owned);
    }
    assert_eq!(
        seen,
        vec![
            json!(CURRENT),
            json!(EXPIRED),
            json!(RESTRICTED),
            json!(OPEN_ENDED)
        ]
    );
    let approved = invoke(
        &registry,
        "smintio.sync_assets",
        json!({"limit": 10}),
        "approved",
    )
    .await
    .unwrap();
    assert_eq!(
        approved["assets"].as_array().unwrap().len(),
        3,
        "restricted is left out by default"
    );

    let link = invoke(
        &registry,
        "smintio.get_download_link",
        json!({"asset_id": CURRENT, "cart_uuid": CURRENT_CART}),
        "link",
    )
    .await
    .unwrap();
    assert!(link["url"].as_str().unwrap().contains("Expires="), "{link}");
    simulator.shutdown().await;
}

#[tokio::test]
async fn a_revoked_refresh_token_is_permanent_and_never_printed() {
    let simulator = simulator::smintio::start(SimOptions::in_memory())
        .await
        .unwrap();
    let revoked = "revoked-refresh-token-123";
    let connector = SmintioConnector::new(
        &config(&simulator.base_url(), Duration::from_secs(10)),
        credentials(revoked),
    )
    .unwrap();
    let error = assert_error(
        connector
            .invoke(invocation("sync_assets", json!({}), "sync"))
            .await,
        false,
        "invalid",
        "revoked refresh token",
    );
    assert!(!error.to_string().contains(revoked), "{error}");
    assert!(
        error
            .message()
            .contains("refresh token is unknown or revoked"),
        "{error}"
    );
    let error = invoke(
        &registry(&simulator.base_url()),
        "smintio.get_asset",
        json!({"uuid": CURRENT}),
        "typo",
    )
    .await
    .unwrap_err();
    assert_eq!(error.code(), "invalid_arguments");
    simulator.shutdown().await;
}
