//! Content by digest for OTMM: `otmm.fetch_content` and the versions of `otmm.get_asset`
//! against the OTMM simulator over real HTTP.

// Helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gridflow_connectors::config::{Config, OtmmConfig};
use gridflow_connectors::content::{ContentRef, ContentStore};
use gridflow_connectors::http::Secret;
use gridflow_connectors::otmm::{OtmmConnector, OtmmCredentials};
use gridflow_connectors::simulator::otmm::{API_ROOT, seeded_asset_id};
use gridflow_connectors::simulator::{
    self, Fault, FaultRule, RunningSimulator, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET,
    SANDBOX_PASSWORD, SANDBOX_USERNAME, SimOptions,
};
use gridflow_connectors::{Error, Registry};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{assert_error, invoke};

const MISSING: &str = "ffffffffffffffffffffffffffffffffffffffff";

fn config(base_url: &str) -> OtmmConfig {
    let text = format!(
        "[connectors.otmm]\nbase_url = \"{base_url}{API_ROOT}\"\nusername_env = \"OTMM_USERNAME\"\npassword_env = \"OTMM_PASSWORD\"\n\
         client_id_env = \"OTMM_CLIENT_ID\"\nclient_secret_env = \"OTMM_CLIENT_SECRET\"\nvalid_from_field = \"CUSTOM.FIELD.RIGHTS_FROM\"\n"
    );
    let mut config = Config::parse(&text, "test.toml")
        .unwrap()
        .connectors
        .otmm
        .unwrap();
    config.timeout = Duration::from_secs(10);
    config
}

/// A registry with the OTMM connector keeping its content in `store`.
fn registry_for(simulator: &RunningSimulator, store: &ContentStore) -> Registry {
    let credentials = OtmmCredentials {
        username: Secret::new(SANDBOX_USERNAME),
        password: Secret::new(SANDBOX_PASSWORD),
        client_id: Secret::new(SANDBOX_CLIENT_ID),
        client_secret: Secret::new(SANDBOX_CLIENT_SECRET),
    };
    let connector = OtmmConnector::new(&config(&simulator.base_url()), credentials)
        .unwrap()
        .with_content(store.clone());
    let mut registry = Registry::new();
    registry.register(Arc::new(connector));
    registry
}

async fn fetch(registry: &Registry, arguments: Value) -> Result<Value, Error> {
    invoke(registry, "otmm.fetch_content", arguments, "fetch").await
}

async fn get_asset(registry: &Registry, asset_id: &str) -> Value {
    invoke(
        registry,
        "otmm.get_asset",
        json!({"asset_id": asset_id}),
        "get",
    )
    .await
    .unwrap()
}

/// The bytes the simulator serves for version `asset_id`, read over a session of its own.
async fn served_bytes(simulator: &RunningSimulator, asset_id: &str) -> Vec<u8> {
    let client = reqwest::Client::new();
    let root = format!("{}{API_ROOT}", simulator.base_url());
    let session: Value = client
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
    let response = client
        .get(format!("{root}/assets/{asset_id}/contents"))
        .header("X-Requested-By", id)
        .send()
        .await
        .unwrap();
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
    let root = dir.join("sha256");
    let Ok(prefixes) = std::fs::read_dir(&root) else {
        return Vec::new();
    };
    prefixes
        .flat_map(|prefix| std::fs::read_dir(prefix.unwrap().path()).unwrap())
        .map(|entry| entry.unwrap().path())
        .collect()
}

fn assert_output_fits(registry: &Registry, output: &Value) {
    let (_, spec) = registry.action("otmm.fetch_content").unwrap();
    let validator = jsonschema::draft202012::options()
        .build(&spec.output)
        .unwrap();
    let violations: Vec<String> = validator
        .iter_errors(output)
        .map(|e| e.to_string())
        .collect();
    assert!(violations.is_empty(), "{violations:?}\n{output}");
    assert!(
        spec.effects.rights,
        "fetch_content declares observed rights"
    );
}

#[tokio::test]
async fn fetch_content_streams_the_latest_version_into_the_store() {
    let simulator = simulator::otmm::start(SimOptions::in_memory())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path(), 1024 * 1024);
    let registry = registry_for(&simulator, &store);
    let first = seeded_asset_id(1);
    let second = seeded_asset_id(2);

    // Named by its first version's id, the asset's latest version is fetched.
    let output = fetch(&registry, json!({"asset_id": first})).await.unwrap();
    assert_output_fits(&registry, &output);
    let content = &output["content"];
    assert_eq!(content["system"], "otmm");
    assert_eq!(
        content["asset_id"], first,
        "the asset is its first version's id"
    );
    assert_eq!(content["version"], "2");
    assert_eq!(content["file_name"], "citrus-spritz-can-12oz.png");
    assert_eq!(content["content_type"], "image/png");
    let expected = served_bytes(&simulator, &second).await;
    let stored = store.read(&reference(content)).await.unwrap();
    assert_eq!(
        stored, expected,
        "the store holds the bytes the system serves"
    );
    assert_eq!(content["sha256"], sha256(&expected));
    assert_eq!(content["size"], expected.len());

    let asset = get_asset(&registry, &second).await;
    assert_eq!(
        output["observed_rights"],
        json!([{"system": "otmm", "asset_id": first, "valid_from": asset["rights"]["valid_from"],
                "valid_until": asset["rights"]["valid_until"]}])
    );
    assert_eq!(
        output["observed_rights"][0]["valid_until"],
        "2027-03-31T23:59:59.999999Z"
    );

    // The same version named by its id gives the same artifact.
    let by_id = fetch(&registry, json!({"asset_id": second, "version": second}))
        .await
        .unwrap();
    assert_eq!(by_id["content"], output["content"]);
    simulator.shutdown().await;
}

#[tokio::test]
async fn an_older_version_is_fetched_by_number_and_get_asset_lists_every_digest() {
    let simulator = simulator::otmm::start(SimOptions::in_memory())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path(), 1024 * 1024);
    let registry = registry_for(&simulator, &store);
    let second = seeded_asset_id(2);

    let older = fetch(&registry, json!({"asset_id": second, "version": 1}))
        .await
        .unwrap();
    let as_text = fetch(&registry, json!({"asset_id": second, "version": "1"}))
        .await
        .unwrap();
    assert_eq!(older, as_text);
    assert_eq!(older["content"]["version"], "1");
    let expected = served_bytes(&simulator, &seeded_asset_id(1)).await;
    assert_eq!(
        store.read(&reference(&older["content"])).await.unwrap(),
        expected
    );
    let latest = fetch(&registry, json!({"asset_id": second})).await.unwrap();
    assert_ne!(older["content"]["sha256"], latest["content"]["sha256"]);

    let asset = get_asset(&registry, &second).await;
    let versions = asset["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    for (entry, fetched) in versions.iter().zip([&older, &latest]) {
        assert_eq!(entry["version"], fetched["content"]["version"]);
        assert_eq!(entry["sha256"], fetched["content"]["sha256"]);
        assert_eq!(entry["size"], fetched["content"]["size"]);
        assert_eq!(entry["file_name"], fetched["content"]["file_name"]);
        assert!(entry["created_at"].is_string(), "{entry}");
    }

    let error = assert_error(
        fetch(&registry, json!({"asset_id": second, "version": 7})).await,
        false,
        "version_not_found",
        "no version 7",
    );
    assert!(error.message().contains(&second), "{error}");
    assert_error(
        fetch(
            &registry,
            json!({"asset_id": second, "rendition": "thumbnail"}),
        )
        .await,
        false,
        "rendition_not_found",
        "the simulator has no thumbnails",
    );
    let refused = registry.validate_arguments(
        "otmm.fetch_content",
        &json!({"asset_id": second, "version": 1, "format": "jpg"}),
    );
    assert!(refused.is_err(), "the arguments are a closed schema");
    simulator.shutdown().await;
}

#[tokio::test]
async fn content_over_the_limit_is_refused_and_leaves_nothing() {
    let simulator = simulator::otmm::start(SimOptions::in_memory())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path(), 64);
    let registry = registry_for(&simulator, &store);
    let error = assert_error(
        fetch(&registry, json!({"asset_id": seeded_asset_id(2)})).await,
        false,
        "content_too_large",
        "the seeded bytes exceed 64 bytes",
    );
    assert!(error.message().contains("otmm asset"), "{error}");
    assert!(stored_objects(dir.path()).is_empty());
    let left: Vec<_> = std::fs::read_dir(dir.path().join("tmp")).unwrap().collect();
    assert!(left.is_empty(), "no partial object: {left:?}");
    simulator.shutdown().await;
}

#[tokio::test]
async fn download_faults_are_classified_and_nothing_secret_is_output() {
    let simulator = simulator::otmm::start(SimOptions::in_memory())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path(), 1024 * 1024);
    let registry = registry_for(&simulator, &store);
    let second = seeded_asset_id(2);
    let download = format!("{API_ROOT}/assets/{second}/contents");
    let mut texts = Vec::new();

    simulator
        .faults()
        .push(FaultRule::on(Fault::ServerError, "GET", &download));
    let error = assert_error(
        fetch(&registry, json!({"asset_id": second})).await,
        true,
        "server_error",
        "a 5xx on the download",
    );
    texts.push(error.message().to_owned());
    simulator
        .faults()
        .push(FaultRule::on(Fault::Drop, "GET", &download));
    let error = fetch(&registry, json!({"asset_id": second}))
        .await
        .unwrap_err();
    assert!(
        error.is_retryable(),
        "a dropped download is retried: {error}"
    );
    texts.push(error.message().to_owned());
    assert!(
        simulator.faults().plan().queue.is_empty(),
        "both faults hit"
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
    let output = fetch(&registry, json!({"asset_id": second})).await.unwrap();
    texts.push(serde_json::to_string(&output).unwrap());
    let mut secrets: Vec<String> = simulator.tokens().issued();
    assert!(secrets.len() >= 2, "a token was refreshed: {secrets:?}");
    secrets.extend([
        SANDBOX_PASSWORD.to_owned(),
        SANDBOX_CLIENT_SECRET.to_owned(),
    ]);
    for text in &texts {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{secret} leaked: {text}");
        }
        assert!(!text.contains("http"), "no link is output: {text}");
    }
    simulator.shutdown().await;
}

#[tokio::test]
async fn replaced_bytes_change_the_digest_fetched_next_and_survive_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let state_file = state.path().join("otmm.json");
    let simulator = simulator::otmm::start(SimOptions::persisted(&state_file))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path(), 1024 * 1024);
    let registry = registry_for(&simulator, &store);
    let first = seeded_asset_id(1);
    let before = fetch(&registry, json!({"asset_id": first})).await.unwrap();

    let new_bytes = b"retouched: the can is now teal".to_vec();
    let replaced = reqwest::Client::new()
        .put(format!(
            "{}/_sim/otmm/assets/{first}/versions/2/content",
            simulator.base_url()
        ))
        .header("Content-Type", "image/webp")
        .body(new_bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 200);
    let asset = get_asset(&registry, &first).await;
    assert_eq!(
        asset["versions"].as_array().unwrap().len(),
        2,
        "no new version"
    );
    assert_eq!(asset["versions"][1]["sha256"], sha256(&new_bytes));

    let after = fetch(&registry, json!({"asset_id": first})).await.unwrap();
    assert_eq!(after["content"]["version"], before["content"]["version"]);
    assert_eq!(after["content"]["sha256"], sha256(&new_bytes));
    assert_eq!(after["content"]["content_type"], "image/webp");
    assert_eq!(
        store.read(&reference(&after["content"])).await.unwrap(),
        new_bytes
    );
    let replaced_effects = simulator
        .effects()
        .into_iter()
        .filter(|effect| effect.action == "content.replaced")
        .count();
    assert_eq!(replaced_effects, 1);

    simulator.shutdown().await;
    let restarted = simulator::otmm::start(SimOptions::persisted(&state_file))
        .await
        .unwrap();
    let restarted_registry = registry_for(&restarted, &store);
    let again = fetch(&restarted_registry, json!({"asset_id": first}))
        .await
        .unwrap();
    assert_eq!(
        again["content"], after["content"],
        "the bytes survive a restart"
    );
    restarted.shutdown().await;
}

#[tokio::test]
async fn bytes_changed_unseen_by_otmm_are_refused_naming_both_digests() {
    let simulator = simulator::otmm::start(SimOptions::in_memory())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path(), 1024 * 1024);
    let registry = registry_for(&simulator, &store);
    let second = seeded_asset_id(2);
    let recorded = get_asset(&registry, &second).await["versions"][1]["sha256"].clone();

    let new_bytes = b"swapped on the storage".to_vec();
    let replaced = reqwest::Client::new()
        .put(format!(
            "{}/_sim/otmm/assets/{second}/versions/2/content?keep_checksum=true",
            simulator.base_url()
        ))
        .body(new_bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 200);
    assert_eq!(
        get_asset(&registry, &second).await["versions"][1]["sha256"],
        recorded,
        "OTMM still gives the checksum it recorded"
    );
    let error = assert_error(
        fetch(&registry, json!({"asset_id": second})).await,
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
