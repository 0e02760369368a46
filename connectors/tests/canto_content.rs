//! `canto.fetch_content` and `canto.get_asset`'s versions against the Canto simulator over
//! real HTTP: bytes streamed into the content store by digest, a chosen older version, the
//! size limit, faults on the download, Canto's md5 checked, the test route that replaces a
//! version's bytes, and no token or link in any output.

// Helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use gridflow_connectors::Registry;
use gridflow_connectors::canto::{CantoConnector, CantoCredentials};
use gridflow_connectors::config::CantoConfig;
use gridflow_connectors::content::{ContentRef, ContentStore};
use gridflow_connectors::http::Secret;
use gridflow_connectors::simulator::{
    self, Fault, FaultRule, RunningSimulator, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SimOptions,
};
use md5::Digest as _;
use serde_json::{Value, json};
use sha2::Digest as _;
use support::{assert_error, invoke};

/// Approved content with one version, a PNG, in the `image` scheme.
const ASSET: &str = "hl26cs0001";

/// A 1×1 PNG, the file `create_version` uploads as version 2.
const PNG_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

fn config(base_url: &str) -> CantoConfig {
    CantoConfig {
        base_url: base_url.to_owned(),
        oauth_url: base_url.to_owned(),
        app_id_env: "CANTO_APP_ID".to_owned(),
        app_secret_env: "CANTO_APP_SECRET".to_owned(),
        valid_from_field: "Usage Start".to_owned(),
        valid_until_field: "Usage Expiry".to_owned(),
        timeout: Duration::from_secs(10),
        upload_wait: Duration::from_secs(10),
        upload_poll_interval: Duration::from_millis(50),
    }
}

fn registry(base_url: &str, store: &ContentStore) -> Registry {
    let credentials = CantoCredentials {
        app_id: Secret::new(SANDBOX_CLIENT_ID),
        app_secret: Secret::new(SANDBOX_CLIENT_SECRET),
    };
    let connector = CantoConnector::new(&config(base_url), credentials)
        .unwrap()
        .with_content(store.clone());
    let mut registry = Registry::new();
    registry.register(Arc::new(connector));
    registry
}

async fn fetch(registry: &Registry, arguments: Value) -> Result<Value, gridflow_connectors::Error> {
    invoke(registry, "canto.fetch_content", arguments, "fetch").await
}

fn reference(output: &Value) -> ContentRef {
    serde_json::from_value(output["content"].clone()).unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// No token the simulator issued, no credential and no download path in `output`.
fn assert_no_secrets(simulator: &RunningSimulator, output: &Value) {
    let text = output.to_string();
    for token in simulator.tokens().issued() {
        assert!(!text.contains(&token), "a token leaked: {text}");
    }
    for secret in [
        SANDBOX_CLIENT_SECRET,
        "api_binary",
        "Bearer",
        "Signature",
        "AWSAccessKeyId",
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

/// Every object file in the store.
fn stored_objects(store: &ContentStore) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for folder in ["sha256", "tmp"] {
        let Ok(prefixes) = std::fs::read_dir(store.dir().join(folder)) else {
            continue;
        };
        for entry in prefixes.flatten() {
            if entry.path().is_dir() {
                found.extend(
                    std::fs::read_dir(entry.path())
                        .unwrap()
                        .flatten()
                        .map(|e| e.path()),
                );
            } else {
                found.push(entry.path());
            }
        }
    }
    found
}

async fn replace_bytes(
    simulator: &RunningSimulator,
    version: &str,
    bytes: &[u8],
    content_type: &str,
) {
    let response = reqwest::Client::new()
        .put(format!(
            "{}/_sim/canto/assets/{ASSET}/versions/{version}/content",
            simulator.base_url()
        ))
        .header("content-type", content_type)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

#[tokio::test]
async fn fetch_content_streams_the_current_version_into_the_store_by_digest() {
    let simulator = simulator::canto::start(SimOptions::in_memory())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path(), 1024 * 1024);
    let registry = registry(&simulator.base_url(), &store);

    // Without a scheme the connector finds the content in whichever scheme holds it.
    let output = fetch(&registry, json!({"asset_id": ASSET})).await.unwrap();
    let content = reference(&output);
    let bytes = store.read(&content).await.unwrap();
    assert_eq!(content.sha256, sha256(&bytes), "the digest is the bytes'");
    assert_eq!(content.size, bytes.len() as u64);
    assert!(!bytes.is_empty());
    assert_eq!(
        output["content"],
        json!({"system": "canto", "asset_id": ASSET, "version": "1", "sha256": content.sha256,
               "size": content.size, "content_type": "image/png", "file_name": "citrus-spritz-can-12oz.png"})
    );
    let asset = invoke(
        &registry,
        "canto.get_asset",
        json!({"scheme": "image", "asset_id": ASSET}),
        "read",
    )
    .await
    .unwrap();
    assert_eq!(
        output["observed_rights"],
        json!([{"system": "canto", "asset_id": ASSET,
                "valid_from": asset["rights"]["valid_from"], "valid_until": asset["rights"]["valid_until"]}])
    );
    assert_eq!(
        fetch(
            &registry,
            json!({"asset_id": ASSET, "scheme": "image", "version": 1, "rendition": "original"})
        )
        .await
        .unwrap(),
        output,
        "the same version fetched again is the same object"
    );
    assert_no_secrets(&simulator, &output);

    let (_, spec) = registry.action("canto.fetch_content").unwrap();
    assert!(
        spec.effects.rights,
        "fetch_content declares the rights it sees"
    );
    let schema = jsonschema::draft202012::options()
        .build(&spec.output)
        .unwrap();
    assert!(schema.is_valid(&output), "{output}");
    simulator.shutdown().await;
}

#[tokio::test]
async fn an_older_version_is_fetched_and_get_asset_lists_every_version() {
    let simulator = simulator::canto::start(SimOptions::in_memory())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path(), 1024 * 1024);
    let registry = registry(&simulator.base_url(), &store);
    let first = fetch(&registry, json!({"asset_id": ASSET})).await.unwrap();
    invoke(
        &registry,
        "canto.create_version",
        json!({"scheme": "image", "asset_id": ASSET, "file_name": "citrus-spritz-can-12oz-v2.png",
               "content_base64": PNG_BASE64}),
        "upload",
    )
    .await
    .unwrap();
    let png = base64::engine::general_purpose::STANDARD
        .decode(PNG_BASE64)
        .unwrap();

    let latest = fetch(&registry, json!({"asset_id": ASSET})).await.unwrap();
    assert_eq!(latest["content"]["version"], "2");
    assert_eq!(
        store.read(&reference(&latest)).await.unwrap(),
        png,
        "the uploaded file"
    );
    let older = fetch(&registry, json!({"asset_id": ASSET, "version": "1"}))
        .await
        .unwrap();
    assert_eq!(older["content"]["version"], "1");
    assert_eq!(
        older["content"]["sha256"], first["content"]["sha256"],
        "version 1 kept its bytes"
    );
    assert_ne!(older["content"]["sha256"], latest["content"]["sha256"]);

    let asset = invoke(
        &registry,
        "canto.get_asset",
        json!({"scheme": "image", "asset_id": ASSET}),
        "read",
    )
    .await
    .unwrap();
    let versions = asset["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(versions[0]["version"], "1");
    assert_eq!(versions[0]["sha256"], json!(null), "Canto gives no SHA-256");
    assert_eq!(
        versions[0]["size"],
        json!(null),
        "an older version's size is unknown"
    );
    assert_eq!(versions[1]["version"], "2");
    assert_eq!(versions[1]["current"], true);
    assert_eq!(versions[1]["size"], png.len());
    let png_md5 = hex::encode(md5::Md5::digest(&png));
    assert_eq!(
        versions[1]["md5"], png_md5,
        "Canto's md5 of the current version"
    );
    assert_eq!(versions[0]["md5"], json!(null));
    assert!(
        versions
            .iter()
            .all(|version| version["created_at"].is_string()),
        "{versions:?}"
    );
    assert_error(
        fetch(&registry, json!({"asset_id": ASSET, "version": 9})).await,
        false,
        "version_not_found",
        "a version that does not exist",
    );
    simulator.shutdown().await;
}

#[tokio::test]
async fn replaced_bytes_change_the_digest_fetched_next_without_a_new_version() {
    let simulator = simulator::canto::start(SimOptions::in_memory())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path(), 1024 * 1024);
    let registry = registry(&simulator.base_url(), &store);
    let before = fetch(&registry, json!({"asset_id": ASSET})).await.unwrap();

    let changed = b"the same version, other bytes".to_vec();
    replace_bytes(&simulator, "1", &changed, "image/png").await;
    let after = fetch(&registry, json!({"asset_id": ASSET})).await.unwrap();
    assert_eq!(after["content"]["version"], "1", "no new version");
    assert_eq!(after["content"]["sha256"], sha256(&changed));
    assert_ne!(after["content"]["sha256"], before["content"]["sha256"]);
    assert_eq!(store.read(&reference(&after)).await.unwrap(), changed);
    let asset = invoke(
        &registry,
        "canto.get_asset",
        json!({"scheme": "image", "asset_id": ASSET}),
        "read",
    )
    .await
    .unwrap();
    assert_eq!(asset["versions"].as_array().unwrap().len(), 1);
    simulator.shutdown().await;
}

#[tokio::test]
async fn content_over_the_limit_is_refused_and_nothing_is_left() {
    let simulator = simulator::canto::start(SimOptions::in_memory())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path(), 64);
    let registry = registry(&simulator.base_url(), &store);
    assert_error(
        fetch(&registry, json!({"asset_id": ASSET})).await,
        false,
        "content_too_large",
        "bytes past max_bytes",
    );
    assert!(
        stored_objects(&store).is_empty(),
        "{:?}",
        stored_objects(&store)
    );
    simulator.shutdown().await;
}

#[tokio::test]
async fn download_faults_are_retryable_and_a_missing_asset_is_permanent() {
    let simulator = simulator::canto::start(SimOptions::in_memory())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path(), 1024 * 1024);
    let registry = registry(&simulator.base_url(), &store);
    let arguments = json!({"asset_id": ASSET, "scheme": "image"});

    simulator
        .faults()
        .push(FaultRule::on(Fault::ServerError, "GET", "/api_binary/"));
    assert_error(
        fetch(&registry, arguments.clone()).await,
        true,
        "server_error",
        "a 5xx on the download",
    );
    assert!(
        simulator.faults().plan().queue.is_empty(),
        "the fault hit the download"
    );
    simulator
        .faults()
        .push(FaultRule::on(Fault::Drop, "GET", "/api_binary/"));
    let error = fetch(&registry, arguments.clone()).await.unwrap_err();
    assert!(
        error.is_retryable(),
        "a broken download is retryable: {error}"
    );
    assert!(
        stored_objects(&store).is_empty(),
        "nothing kept from failed downloads"
    );

    let error = assert_error(
        fetch(&registry, json!({"asset_id": "nope"})).await,
        false,
        "not_found",
        "an asset in no scheme",
    );
    assert!(error.message().contains("nope"), "{error}");
    assert_error(
        fetch(
            &registry,
            json!({"asset_id": ASSET, "rendition": "preview"}),
        )
        .await,
        false,
        "invalid_arguments",
        "a rendition Canto's connector does not read",
    );
    fetch(&registry, arguments).await.unwrap();
    simulator.shutdown().await;
}

#[tokio::test]
async fn bytes_that_do_not_match_cantos_md5_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("canto.json");
    let simulator = simulator::canto::start(SimOptions::persisted(&state_file))
        .await
        .unwrap();
    let store = ContentStore::new(dir.path().join("content"), 1024 * 1024);
    let before = fetch(
        &registry(&simulator.base_url(), &store),
        json!({"asset_id": ASSET}),
    )
    .await
    .unwrap();
    simulator.shutdown().await;

    // Restarted, the simulator serves the same bytes.
    let simulator = simulator::canto::start(SimOptions::persisted(&state_file))
        .await
        .unwrap();
    let registry = registry(&simulator.base_url(), &store);
    assert_eq!(
        fetch(&registry, json!({"asset_id": ASSET})).await.unwrap(),
        before
    );
    simulator.shutdown().await;

    // Canto's md5 no longer describes the bytes (as when a file is swapped in storage).
    let mut persisted: Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    let key = format!("image/{ASSET}");
    let md5 = persisted["state"]["contents"][&key]["md5"]
        .as_str()
        .unwrap()
        .to_owned();
    persisted["state"]["contents"][&key]["md5"] = json!("0123456789abcdef0123456789abcdef");
    std::fs::write(&state_file, persisted.to_string()).unwrap();
    let simulator = simulator::canto::start(SimOptions::persisted(&state_file))
        .await
        .unwrap();
    let store = ContentStore::new(dir.path().join("other"), 1024 * 1024);
    let registry = self::registry(&simulator.base_url(), &store);
    let error = assert_error(
        fetch(&registry, json!({"asset_id": ASSET})).await,
        false,
        "content_digest_mismatch",
        "md5 differs",
    );
    assert!(
        error.message().contains("0123456789abcdef0123456789abcdef"),
        "{error}"
    );
    assert!(
        error.message().contains(&md5),
        "names the md5 of the bytes: {error}"
    );
    assert!(stored_objects(&store).is_empty(), "nothing kept");
    simulator.shutdown().await;
}

#[tokio::test]
async fn fetch_content_is_in_the_catalogue_with_its_effects() {
    let store = ContentStore::scratch();
    let registry = registry("http://127.0.0.1:9", &store);
    let connector = registry.connectors().find(|c| c.name() == "canto").unwrap();
    let spec = connector
        .actions()
        .iter()
        .find(|spec| spec.name == "fetch_content")
        .unwrap();
    assert_eq!(spec.arguments["additionalProperties"], false);
    assert_eq!(spec.arguments["required"], json!(["asset_id"]));
    assert!(spec.effects.rights && !spec.effects.ledger && spec.effects.delivers.is_none());
}
