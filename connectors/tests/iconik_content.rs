//! Content by digest for iconik: `iconik.fetch_content` (over the signed download links)
//! and the versions of `iconik.get_asset` against the iconik simulator over real HTTP.

// Helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gridflow_connectors::config::IconikConfig;
use gridflow_connectors::content::{ContentRef, ContentStore};
use gridflow_connectors::http::Secret;
use gridflow_connectors::iconik::{IconikConnector, IconikCredentials};
use gridflow_connectors::simulator::iconik::content::SIGNING_PARAMETERS;
use gridflow_connectors::simulator::iconik::{API_ROOT, SANDBOX_VIEW_ID};
use gridflow_connectors::simulator::{
    self, Fault, FaultRule, RunningSimulator, SANDBOX_CLIENT_ID, SANDBOX_PASSWORD,
    SANDBOX_USERNAME, SimOptions,
};
use gridflow_connectors::{Error, Registry};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{assert_error, invoke};

/// Cold Brew lifestyle shoot: two versions, each with a file.
const TWO_VERSIONS: &str = "a1f0c3d2-5b6e-4f70-8a91-b2c3d4e5f604";
const FIRST_VERSION: &str = "b2e1d4c3-6a7f-4081-9b2c-c3d4e5f6a703";
const SECOND_VERSION: &str = "b2e1d4c3-6a7f-4081-9b2c-c3d4e5f6a705";
/// Citrus Spritz hero can: approved, with a rights window.
const APPROVED: &str = "a1f0c3d2-5b6e-4f70-8a91-b2c3d4e5f601";
const MISSING: &str = "ffffffff-0000-4000-8000-000000000000";

fn registry_for(simulator: &RunningSimulator, store: &ContentStore) -> Registry {
    let config = IconikConfig {
        base_url: format!("{}{API_ROOT}", simulator.base_url()),
        app_id_env: "ICONIK_APP_ID".to_owned(),
        email_env: "ICONIK_EMAIL".to_owned(),
        password_env: "ICONIK_PASSWORD".to_owned(),
        metadata_view_id: SANDBOX_VIEW_ID.to_owned(),
        valid_from_field: "rights_valid_from".to_owned(),
        valid_until_field: "rights_valid_until".to_owned(),
        timeout: Duration::from_secs(10),
    };
    let credentials = IconikCredentials {
        app_id: Secret::new(SANDBOX_CLIENT_ID),
        email: Secret::new(SANDBOX_USERNAME),
        password: Secret::new(SANDBOX_PASSWORD),
    };
    let connector = IconikConnector::new(&config, credentials)
        .unwrap()
        .with_content(store.clone());
    let mut registry = Registry::new();
    registry.register(Arc::new(connector));
    registry
}

async fn fetch(registry: &Registry, arguments: Value) -> Result<Value, Error> {
    invoke(registry, "iconik.fetch_content", arguments, "fetch").await
}

async fn get_asset(registry: &Registry, asset_id: &str) -> Value {
    invoke(
        registry,
        "iconik.get_asset",
        json!({"asset_id": asset_id}),
        "get",
    )
    .await
    .unwrap()
}

/// The bytes the simulator serves for the asset's file `file_id`, through a signed link
/// asked for with `get_download_link`.
async fn served_bytes(registry: &Registry, asset_id: &str, file_id: &str) -> Vec<u8> {
    let link = invoke(
        registry,
        "iconik.get_download_link",
        json!({"asset_id": asset_id, "file_id": file_id}),
        "link",
    )
    .await
    .unwrap();
    let response = reqwest::get(link["url"].as_str().unwrap()).await.unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

fn reference(content: &Value) -> ContentRef {
    serde_json::from_value(content.clone()).unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every object filed in the store, by walking `<dir>/sha256`.
fn stored_objects(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(prefixes) = std::fs::read_dir(dir.join("sha256")) else {
        return Vec::new();
    };
    prefixes
        .flat_map(|prefix| std::fs::read_dir(prefix.unwrap().path()).unwrap())
        .map(|entry| entry.unwrap().path())
        .collect()
}

#[tokio::test]
async fn fetch_content_streams_the_newest_version_into_the_store() {
    let simulator = simulator::iconik::start(SimOptions::in_memory())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path(), 1024 * 1024);
    let registry = registry_for(&simulator, &store);

    let output = fetch(&registry, json!({"asset_id": TWO_VERSIONS}))
        .await
        .unwrap();
    let (_, spec) = registry.action("iconik.fetch_content").unwrap();
    assert!(spec.effects.rights);
    let validator = jsonschema::draft202012::options()
        .build(&spec.output)
        .unwrap();
    assert!(validator.is_valid(&output), "{output}");
    let content = &output["content"];
    assert_eq!(content["system"], "iconik");
    assert_eq!(content["asset_id"], TWO_VERSIONS);
    assert_eq!(content["version"], SECOND_VERSION);
    assert_eq!(content["file_name"], "cold-brew-lifestyle-01-retouched.jpg");
    assert_eq!(content["content_type"], "image/jpeg");
    let expected = served_bytes(
        &registry,
        TWO_VERSIONS,
        "c3f2e5d4-7b80-4192-8c3d-d4e5f6a7b805",
    )
    .await;
    assert_eq!(store.read(&reference(content)).await.unwrap(), expected);
    assert_eq!(content["sha256"], sha256(&expected));
    assert_eq!(content["size"], expected.len());

    let approved = fetch(&registry, json!({"asset_id": APPROVED}))
        .await
        .unwrap();
    let asset = get_asset(&registry, APPROVED).await;
    assert_eq!(
        approved["observed_rights"],
        json!([{"system": "iconik", "asset_id": APPROVED, "valid_from": asset["rights"]["valid_from"],
                "valid_until": asset["rights"]["valid_until"]}])
    );
    assert_eq!(
        approved["observed_rights"][0]["valid_from"],
        "2026-01-01T00:00:00Z"
    );
    simulator.shutdown().await;
}

#[tokio::test]
async fn an_older_version_is_fetched_by_id_or_number_and_get_asset_lists_every_digest() {
    let simulator = simulator::iconik::start(SimOptions::in_memory())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path(), 1024 * 1024);
    let registry = registry_for(&simulator, &store);

    let older = fetch(
        &registry,
        json!({"asset_id": TWO_VERSIONS, "version": FIRST_VERSION}),
    )
    .await
    .unwrap();
    let by_number = fetch(&registry, json!({"asset_id": TWO_VERSIONS, "version": 1}))
        .await
        .unwrap();
    assert_eq!(older, by_number);
    assert_eq!(older["content"]["version"], FIRST_VERSION);
    let expected = served_bytes(
        &registry,
        TWO_VERSIONS,
        "c3f2e5d4-7b80-4192-8c3d-d4e5f6a7b803",
    )
    .await;
    assert_eq!(
        store.read(&reference(&older["content"])).await.unwrap(),
        expected
    );
    let newest = fetch(&registry, json!({"asset_id": TWO_VERSIONS}))
        .await
        .unwrap();
    assert_ne!(older["content"]["sha256"], newest["content"]["sha256"]);

    let asset = get_asset(&registry, TWO_VERSIONS).await;
    let versions = asset["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    for (entry, fetched) in versions.iter().zip([&older, &newest]) {
        assert_eq!(entry["version"], fetched["content"]["version"]);
        assert_eq!(entry["sha256"], fetched["content"]["sha256"]);
        assert_eq!(entry["size"], fetched["content"]["size"]);
        assert_eq!(entry["file_name"], fetched["content"]["file_name"]);
        assert!(entry["created_at"].is_string(), "{entry}");
    }

    // A new version has no file until one is uploaded: the default stays the newest
    // version with bytes, and the new one has none to fetch.
    let created = invoke(
        &registry,
        "iconik.create_version",
        json!({"asset_id": TWO_VERSIONS}),
        "new-version",
    )
    .await
    .unwrap();
    let asset = get_asset(&registry, TWO_VERSIONS).await;
    assert_eq!(asset["versions"][2]["version"], created["version_id"]);
    assert_eq!(
        asset["versions"][2]["sha256"],
        Value::Null,
        "no file: unknown"
    );
    let default = fetch(&registry, json!({"asset_id": TWO_VERSIONS}))
        .await
        .unwrap();
    assert_eq!(default["content"], newest["content"]);
    assert_error(
        fetch(&registry, json!({"asset_id": TWO_VERSIONS, "version": 3})).await,
        false,
        "no_content",
        "a version without a file",
    );
    assert_error(
        fetch(
            &registry,
            json!({"asset_id": TWO_VERSIONS, "version": "nope"}),
        )
        .await,
        false,
        "version_not_found",
        "an unknown version",
    );
    assert_error(
        fetch(
            &registry,
            json!({"asset_id": TWO_VERSIONS, "rendition": "proxy"}),
        )
        .await,
        false,
        "rendition_not_found",
        "only the original",
    );
    simulator.shutdown().await;
}

#[tokio::test]
async fn content_over_the_limit_is_refused_and_leaves_nothing() {
    let simulator = simulator::iconik::start(SimOptions::in_memory())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path(), 64);
    let registry = registry_for(&simulator, &store);
    assert_error(
        fetch(&registry, json!({"asset_id": APPROVED})).await,
        false,
        "content_too_large",
        "the seeded bytes exceed 64 bytes",
    );
    assert!(stored_objects(dir.path()).is_empty());
    let left: Vec<_> = std::fs::read_dir(dir.path().join("tmp")).unwrap().collect();
    assert!(left.is_empty(), "no partial object: {left:?}");
    simulator.shutdown().await;
}

#[tokio::test]
async fn download_faults_are_classified_and_no_signed_link_or_credential_is_output() {
    let simulator = simulator::iconik::start(SimOptions::in_memory())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path(), 1024 * 1024);
    let registry = registry_for(&simulator, &store);
    let mut texts = Vec::new();

    simulator
        .faults()
        .push(FaultRule::on(Fault::ServerError, "GET", "/storage/iconik/"));
    let error = assert_error(
        fetch(&registry, json!({"asset_id": APPROVED})).await,
        true,
        "server_error",
        "a 5xx on the download",
    );
    texts.push(error.message().to_owned());
    simulator
        .faults()
        .push(FaultRule::on(Fault::Drop, "GET", "/storage/iconik/"));
    let error = fetch(&registry, json!({"asset_id": APPROVED}))
        .await
        .unwrap_err();
    assert!(
        error.is_retryable(),
        "a dropped download is retried: {error}"
    );
    texts.push(error.message().to_owned());
    simulator.faults().push(FaultRule::on(
        Fault::RateLimit {
            retry_after_secs: 3,
        },
        "GET",
        &format!("{API_ROOT}/files/"),
    ));
    let error = assert_error(
        fetch(&registry, json!({"asset_id": APPROVED})).await,
        true,
        "rate_limited",
        "a 429 on the file list",
    );
    texts.push(error.message().to_owned());
    assert!(
        simulator.faults().plan().queue.is_empty(),
        "every fault hit"
    );
    assert!(stored_objects(dir.path()).is_empty(), "nothing filed");

    let error = assert_error(
        fetch(&registry, json!({"asset_id": MISSING})).await,
        false,
        "not_found",
        "a missing asset",
    );
    texts.push(error.message().to_owned());

    simulator.tokens().expire_all();
    let output = fetch(&registry, json!({"asset_id": APPROVED}))
        .await
        .unwrap();
    texts.push(serde_json::to_string(&output).unwrap());
    let mut secrets: Vec<String> = simulator.tokens().issued();
    assert!(secrets.len() >= 2, "a token was refreshed: {secrets:?}");
    secrets.extend([SANDBOX_PASSWORD.to_owned(), SANDBOX_CLIENT_ID.to_owned()]);
    secrets.extend(SIGNING_PARAMETERS.iter().map(|name| format!("{name}=")));
    secrets.push("/storage/".to_owned());
    for text in &texts {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{secret} leaked: {text}");
        }
        assert!(!text.contains("http"), "no link is output: {text}");
    }
    simulator.shutdown().await;
}

#[tokio::test]
async fn signed_links_are_checked_by_the_storage() {
    let simulator = simulator::iconik::start(SimOptions::in_memory())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path(), 1024 * 1024);
    let registry = registry_for(&simulator, &store);
    let link = invoke(
        &registry,
        "iconik.get_download_link",
        json!({"asset_id": APPROVED}),
        "link",
    )
    .await
    .unwrap();
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with(&simulator.base_url()), "{url}");
    let forged = url.replace("Signature=", "Signature=0");
    assert_eq!(reqwest::get(&forged).await.unwrap().status(), 403);
    let unsigned = url.split_once('?').unwrap().0;
    assert_eq!(reqwest::get(unsigned).await.unwrap().status(), 403);
    assert_eq!(reqwest::get(url).await.unwrap().status(), 200);
    simulator.shutdown().await;
}

#[tokio::test]
async fn replaced_bytes_change_the_digest_fetched_next_and_survive_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let state_file = state.path().join("iconik.json");
    let simulator = simulator::iconik::start(SimOptions::persisted(&state_file))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path(), 1024 * 1024);
    let registry = registry_for(&simulator, &store);
    let before = fetch(&registry, json!({"asset_id": TWO_VERSIONS}))
        .await
        .unwrap();

    let new_bytes = b"retouched again: warmer light".to_vec();
    let replaced = reqwest::Client::new()
        .put(format!(
            "{}/_sim/iconik/assets/{TWO_VERSIONS}/versions/{SECOND_VERSION}/content",
            simulator.base_url()
        ))
        .header("Content-Type", "image/png")
        .body(new_bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 200);
    let by_number = reqwest::Client::new()
        .put(format!(
            "{}/_sim/iconik/assets/{TWO_VERSIONS}/versions/3/content",
            simulator.base_url()
        ))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(by_number.status(), 404, "there is no third version");

    let asset = get_asset(&registry, TWO_VERSIONS).await;
    assert_eq!(
        asset["versions"].as_array().unwrap().len(),
        2,
        "no new version"
    );
    assert_eq!(asset["versions"][1]["sha256"], sha256(&new_bytes));
    let after = fetch(&registry, json!({"asset_id": TWO_VERSIONS}))
        .await
        .unwrap();
    assert_eq!(after["content"]["version"], before["content"]["version"]);
    assert_ne!(after["content"]["sha256"], before["content"]["sha256"]);
    assert_eq!(after["content"]["sha256"], sha256(&new_bytes));
    assert_eq!(after["content"]["content_type"], "image/png");
    assert_eq!(
        store.read(&reference(&after["content"])).await.unwrap(),
        new_bytes
    );

    simulator.shutdown().await;
    let restarted = simulator::iconik::start(SimOptions::persisted(&state_file))
        .await
        .unwrap();
    let restarted_registry = registry_for(&restarted, &store);
    let again = fetch(&restarted_registry, json!({"asset_id": TWO_VERSIONS}))
        .await
        .unwrap();
    assert_eq!(
        again["content"], after["content"],
        "the bytes survive a restart"
    );
    restarted.shutdown().await;
}

#[tokio::test]
async fn bytes_changed_unseen_by_iconik_are_refused_naming_both_digests() {
    let simulator = simulator::iconik::start(SimOptions::in_memory())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path(), 1024 * 1024);
    let registry = registry_for(&simulator, &store);
    let recorded = get_asset(&registry, TWO_VERSIONS).await["versions"][0]["sha256"].clone();

    let new_bytes = b"swapped on the storage".to_vec();
    let replaced = reqwest::Client::new()
        .put(format!(
            "{}/_sim/iconik/assets/{TWO_VERSIONS}/versions/1/content?keep_checksum=true",
            simulator.base_url()
        ))
        .body(new_bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 200);
    assert_eq!(
        get_asset(&registry, TWO_VERSIONS).await["versions"][0]["sha256"],
        recorded,
        "iconik still gives the checksum it recorded"
    );
    let error = assert_error(
        fetch(&registry, json!({"asset_id": TWO_VERSIONS, "version": 1})).await,
        false,
        "content_digest_mismatch",
        "the bytes no longer match the checksum",
    );
    let message = error.message();
    assert!(
        message.contains(recorded.as_str().unwrap()) && message.contains(&sha256(&new_bytes)),
        "{message}"
    );
    assert!(stored_objects(dir.path()).is_empty(), "nothing filed");
    simulator.shutdown().await;
}
