//! The `otmm` connector against the OTMM simulator over real HTTP.

// Helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use gridflow_connectors::config::{Config, OtmmConfig};
use gridflow_connectors::http::Secret;
use gridflow_connectors::otmm::{OtmmConnector, OtmmCredentials};
use gridflow_connectors::simulator::otmm::{API_ROOT, seeded_asset_id};
use gridflow_connectors::simulator::{
    self, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD, SANDBOX_USERNAME, SimOptions,
};
use gridflow_connectors::{Connector, Registry};
use serde_json::json;
use support::{Case, assert_error, invocation, invoke, run_contract};

fn config(base_url: &str, timeout: Duration) -> OtmmConfig {
    let text = format!(
        "[connectors.otmm]\nbase_url = \"{base_url}{API_ROOT}\"\nusername_env = \"OTMM_USERNAME\"\npassword_env = \"OTMM_PASSWORD\"\n\
         client_id_env = \"OTMM_CLIENT_ID\"\nclient_secret_env = \"OTMM_CLIENT_SECRET\"\nvalid_from_field = \"CUSTOM.FIELD.RIGHTS_FROM\"\n"
    );
    let mut config = Config::parse(&text, "test.toml")
        .unwrap()
        .connectors
        .otmm
        .unwrap();
    config.timeout = timeout;
    config
}

fn credentials(password: &str) -> OtmmCredentials {
    OtmmCredentials {
        username: Secret::new(SANDBOX_USERNAME),
        password: Secret::new(password),
        client_id: Secret::new(SANDBOX_CLIENT_ID),
        client_secret: Secret::new(SANDBOX_CLIENT_SECRET),
    }
}

fn registry(base_url: &str) -> Registry {
    let mut registry = Registry::new();
    let connector = OtmmConnector::new(
        &config(base_url, Duration::from_secs(10)),
        credentials(SANDBOX_PASSWORD),
    )
    .unwrap();
    registry.register(Arc::new(connector));
    registry
}

const MISSING: &str = "ffffffffffffffffffffffffffffffffffffffff";

#[tokio::test]
async fn every_action_meets_the_contract() {
    let simulator = simulator::otmm::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    let slow = OtmmConnector::new(
        &config(&simulator.base_url(), Duration::from_secs(1)),
        credentials(SANDBOX_PASSWORD),
    )
    .unwrap();
    let citrus = seeded_asset_id(2);
    let cases = [
        Case {
            action: "otmm.search_assets",
            arguments: json!({"query": "citrus"}),
            missing: None,
        },
        Case {
            action: "otmm.get_asset",
            arguments: json!({"asset_id": citrus}),
            missing: Some(json!({"asset_id": MISSING})),
        },
        Case {
            action: "otmm.get_download_link",
            arguments: json!({"asset_id": citrus}),
            missing: Some(json!({"asset_id": MISSING})),
        },
        Case {
            action: "otmm.update_metadata",
            arguments: json!({"asset_id": citrus, "fields": {"CUSTOM.FIELD.REGION": "US-East"}}),
            missing: Some(json!({"asset_id": MISSING, "fields": {"CUSTOM.FIELD.REGION": "x"}})),
        },
        Case {
            action: "otmm.create_version",
            arguments: json!({"asset_id": seeded_asset_id(6), "file_name": "label-fr-ca-v2.png"}),
            missing: Some(json!({"asset_id": MISSING, "file_name": "x.png"})),
        },
        Case {
            action: "otmm.fetch_content",
            arguments: json!({"asset_id": citrus, "version": 1}),
            missing: Some(json!({"asset_id": MISSING})),
        },
    ];
    run_contract(
        &simulator,
        &registry,
        &slow,
        &cases,
        &[SANDBOX_PASSWORD, SANDBOX_CLIENT_SECRET],
    )
    .await;
    simulator.shutdown().await;
}

#[tokio::test]
async fn approval_and_rights_are_normalised_and_missing_means_unknown() {
    let simulator = simulator::otmm::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    let get = |number: u64| {
        invoke(
            &registry,
            "otmm.get_asset",
            json!({"asset_id": seeded_asset_id(number)}),
            "get",
        )
    };
    let citrus = get(2).await.unwrap();
    assert_eq!(citrus["approval"], "approved");
    assert_eq!(citrus["rights"]["valid_from"], "2026-04-01T00:00:00Z");
    assert_eq!(
        citrus["rights"]["valid_until"],
        "2027-03-31T23:59:59.999999Z"
    );
    assert_eq!(citrus["versions"].as_array().unwrap().len(), 2);
    assert_eq!(
        citrus["metadata"]["CUSTOM.FIELD.PRODUCT"],
        "Citrus Spritz 12oz"
    );
    let expired = get(3).await.unwrap();
    assert_eq!(expired["expired"], true);
    assert_eq!(
        expired["rights"]["valid_until"],
        "2025-01-15T23:59:59.999999Z"
    );
    assert_eq!(get(4).await.unwrap()["approval"], "pending");
    assert_eq!(get(5).await.unwrap()["approval"], "rejected");
    assert_eq!(get(7).await.unwrap()["approval"], "restricted");
    let undated = get(6).await.unwrap();
    assert_eq!(
        undated["rights"],
        json!({"valid_from": null, "valid_until": null}),
        "no dates: unknown, not unlimited"
    );

    let approved = invoke(&registry, "otmm.search_assets", json!({}), "search")
        .await
        .unwrap();
    let names: Vec<&str> = approved["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|asset| asset["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        approved["assets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|asset| asset["approval"] == "approved")
    );
    let everything = invoke(
        &registry,
        "otmm.search_assets",
        json!({"approved_only": false, "limit": 4}),
        "search-all",
    )
    .await
    .unwrap();
    assert_eq!(everything["total"], 8, "latest versions only");
    assert_eq!(everything["next_after"], 4);
    simulator.shutdown().await;
}

#[tokio::test]
async fn metadata_update_and_new_version_take_effect_once() {
    let simulator = simulator::otmm::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    let (connector, _) = registry.action("otmm.update_metadata").unwrap();
    let citrus = seeded_asset_id(2);
    let arguments = json!({"asset_id": citrus, "fields": {"CUSTOM.FIELD.STATUS": "Rejected"}});
    connector
        .invoke(invocation("update_metadata", arguments.clone(), "reject"))
        .await
        .unwrap();
    connector
        .invoke(invocation("update_metadata", arguments, "reject"))
        .await
        .unwrap();
    let asset = invoke(
        &registry,
        "otmm.get_asset",
        json!({"asset_id": citrus}),
        "read",
    )
    .await
    .unwrap();
    assert_eq!(asset["approval"], "rejected");

    let version = connector
        .invoke(invocation(
            "create_version",
            json!({"asset_id": citrus, "file_name": "v3.png"}),
            "version",
        ))
        .await
        .unwrap();
    let again = connector
        .invoke(invocation(
            "create_version",
            json!({"asset_id": citrus, "file_name": "v3.png"}),
            "version",
        ))
        .await
        .unwrap();
    assert_eq!(version["asset_id"], again["asset_id"]);
    assert_eq!(version["version"], 3);
    let actions: Vec<String> = simulator
        .effects()
        .into_iter()
        .map(|effect| effect.action)
        .collect();
    assert_eq!(actions, ["metadata.updated", "version.created"]);
    let link = invoke(
        &registry,
        "otmm.get_download_link",
        json!({"asset_id": version["asset_id"]}),
        "link",
    )
    .await
    .unwrap();
    let url = link["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}{API_ROOT}/renditions/", simulator.base_url())),
        "{url}"
    );
    simulator.shutdown().await;
}

#[tokio::test]
async fn refused_password_is_permanent_and_never_printed() {
    let simulator = simulator::otmm::start(SimOptions::in_memory())
        .await
        .unwrap();
    let wrong = "wrong-otmm-password";
    let connector = OtmmConnector::new(
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
        "wrong password",
    );
    assert_eq!(error.message(), "Invalid client or user credentials.");
    simulator.shutdown().await;
}

#[tokio::test]
async fn session_login_works_with_x_requested_by() {
    let simulator = simulator::otmm::start(SimOptions::in_memory())
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let root = format!("{}{API_ROOT}", simulator.base_url());
    let session: serde_json::Value = client
        .post(format!("{root}/sessions"))
        .form(&[
            ("username", SANDBOX_USERNAME),
            ("password", SANDBOX_PASSWORD),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = session["session_resource"]["session"]["id"]
        .as_str()
        .unwrap();
    let asset = client
        .get(format!("{root}/assets/{}", seeded_asset_id(1)))
        .header("X-Requested-By", id)
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), 200);
    let anonymous = client
        .get(format!("{root}/assets/{}", seeded_asset_id(1)))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    simulator.shutdown().await;
}
