//! `smintio.fetch_content` and `smintio.get_asset`'s versions against the Smint.io
//! simulator over real HTTP: a binary streamed from its signed URL into the content store
//! by digest, a chosen older version, the size limit, faults on the download, the test
//! route that replaces a version's bytes, and no signed link or token in any output.

// Helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use gridflow_connectors::Registry;
use gridflow_connectors::config::SmintioConfig;
use gridflow_connectors::content::{ContentRef, ContentStore};
use gridflow_connectors::http::Secret;
use gridflow_connectors::simulator::smintio::{API_ROOT, SANDBOX_REFRESH_TOKEN};
use gridflow_connectors::simulator::{
    self, Fault, FaultRule, RunningSimulator, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SimOptions,
};
use gridflow_connectors::smintio::{SmintioConnector, SmintioCredentials};
use serde_json::{Value, json};
use sha2::Digest as _;
use support::{assert_error, invoke};

/// A licensed asset whose master binary has versions 1 and 2.
const ASSET: &str = "5e0c1a2b-3c4d-4e5f-8a6b-7c8d9e0f0001";
const MISSING: &str = "5e0c1a2b-3c4d-4e5f-8a6b-7c8d9e0f9999";

fn registry(base_url: &str, store: &ContentStore) -> Registry {
    let config = SmintioConfig {
        base_url: format!("{base_url}{API_ROOT}"),
        identity_url: base_url.to_owned(),
        client_id_env: "SMINTIO_CLIENT_ID".to_owned(),
        client_secret_env: "SMINTIO_CLIENT_SECRET".to_owned(),
        refresh_token_env: "SMINTIO_REFRESH_TOKEN".to_owned(),
        timeout: Duration::from_secs(10),
        poll_interval: Duration::from_secs(1),
    };
    let credentials = SmintioCredentials {
        client_id: Secret::new(SANDBOX_CLIENT_ID),
        client_secret: Secret::new(SANDBOX_CLIENT_SECRET),
        refresh_token: Secret::new(SANDBOX_REFRESH_TOKEN),
    };
    let connector = SmintioConnector::new(&config, credentials)
        .unwrap()
        .with_content(store.clone());
    let mut registry = Registry::new();
    registry.register(Arc::new(connector));
    registry
}

async fn fetch(registry: &Registry, arguments: Value) -> Result<Value, gridflow_connectors::Error> {
    invoke(registry, "smintio.fetch_content", arguments, "fetch").await
}

fn reference(output: &Value) -> ContentRef {
    serde_json::from_value(output["content"].clone()).unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// No signed link (its path or its signing parameters), token or credential in `text`.
fn assert_no_secrets(simulator: &RunningSimulator, text: &str) {
    for token in simulator.tokens().issued() {
        assert!(!text.contains(&token), "a token leaked: {text}");
    }
    for secret in [
        SANDBOX_CLIENT_SECRET,
        SANDBOX_REFRESH_TOKEN,
        "Signature",
        "Expires",
        "/cdn/",
        "download_url",
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

fn stored_objects(store: &ContentStore) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for folder in ["sha256", "tmp"] {
        let Ok(entries) = std::fs::read_dir(store.dir().join(folder)) else {
            continue;
        };
        for entry in entries.flatten() {
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

#[tokio::test]
async fn fetch_content_streams_the_latest_master_into_the_store_by_digest() {
    let simulator = simulator::smintio::start(SimOptions::in_memory())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path(), 1024 * 1024);
    let registry = registry(&simulator.base_url(), &store);

    let output = fetch(&registry, json!({"asset_id": ASSET})).await.unwrap();
    let content = reference(&output);
    let bytes = store.read(&content).await.unwrap();
    assert_eq!(content.sha256, sha256(&bytes));
    assert_eq!(
        output["content"],
        json!({"system": "smintio", "asset_id": ASSET, "version": "2", "sha256": content.sha256,
               "size": bytes.len(), "content_type": "image/jpeg", "file_name": "picnic-with-lemonade.jpg"})
    );
    assert_eq!(
        output["observed_rights"],
        json!([{"system": "smintio", "asset_id": ASSET,
                "valid_from": "2026-01-15T00:00:00Z", "valid_until": "2027-01-14T23:59:59Z"}])
    );
    assert_no_secrets(&simulator, &output.to_string());
    let (_, spec) = registry.action("smintio.fetch_content").unwrap();
    assert!(
        spec.effects.rights,
        "fetch_content declares the rights it sees"
    );
    let schema = jsonschema::draft202012::options()
        .build(&spec.output)
        .unwrap();
    assert!(schema.is_valid(&output), "{output}");

    let older = fetch(
        &registry,
        json!({"asset_id": ASSET, "version": 1, "rendition": "original"}),
    )
    .await
    .unwrap();
    assert_eq!(older["content"]["version"], "1");
    assert_ne!(older["content"]["sha256"], output["content"]["sha256"]);
    store.read(&reference(&older)).await.unwrap();

    let asset = invoke(
        &registry,
        "smintio.get_asset",
        json!({"asset_id": ASSET}),
        "read",
    )
    .await
    .unwrap();
    let versions = asset["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(
        versions[1],
        json!({"version": "2", "sha256": null, "size": null, "file_name": "picnic-with-lemonade.jpg",
               "created_at": null, "binary_uuid": "b-0001-v2", "binary_type": "master"}),
        "Smint.io gives no digest, size or date: unknown, not guessed"
    );
    assert_error(
        fetch(&registry, json!({"asset_id": ASSET, "version": "7"})).await,
        false,
        "version_not_found",
        "a version that does not exist",
    );
    assert_error(
        fetch(
            &registry,
            json!({"asset_id": ASSET, "rendition": "thumbnail"}),
        )
        .await,
        false,
        "version_not_found",
        "a binary type the asset lacks",
    );
    simulator.shutdown().await;
}

#[tokio::test]
async fn replaced_bytes_change_the_digest_fetched_next() {
    let simulator = simulator::smintio::start(SimOptions::in_memory())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path(), 1024 * 1024);
    let registry = registry(&simulator.base_url(), &store);
    let before = fetch(&registry, json!({"asset_id": ASSET})).await.unwrap();

    let changed = b"retouched again, same version".to_vec();
    let response = reqwest::Client::new()
        .put(format!(
            "{}/_sim/smintio/assets/{ASSET}/versions/2/content",
            simulator.base_url()
        ))
        .header("content-type", "image/jpeg")
        .body(changed.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let after = fetch(&registry, json!({"asset_id": ASSET})).await.unwrap();
    assert_eq!(after["content"]["version"], "2", "no new version");
    assert_eq!(after["content"]["sha256"], sha256(&changed));
    assert_ne!(after["content"]["sha256"], before["content"]["sha256"]);
    assert_eq!(store.read(&reference(&after)).await.unwrap(), changed);
    let missing = reqwest::Client::new()
        .put(format!(
            "{}/_sim/smintio/assets/{ASSET}/versions/9/content",
            simulator.base_url()
        ))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404, "only existing versions are replaced");
    simulator.shutdown().await;
}

#[tokio::test]
async fn content_over_the_limit_is_refused_and_nothing_is_left() {
    let simulator = simulator::smintio::start(SimOptions::in_memory())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path(), 100);
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
async fn download_faults_are_retryable_and_name_no_signed_link() {
    let simulator = simulator::smintio::start(SimOptions::in_memory())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path(), 1024 * 1024);
    let registry = registry(&simulator.base_url(), &store);
    let arguments = json!({"asset_id": ASSET});

    simulator
        .faults()
        .push(FaultRule::on(Fault::ServerError, "GET", "/cdn/"));
    let error = assert_error(
        fetch(&registry, arguments.clone()).await,
        true,
        "server_error",
        "a 5xx on the download",
    );
    assert!(
        simulator.faults().plan().queue.is_empty(),
        "the fault hit the download"
    );
    assert_no_secrets(&simulator, &error.to_string());
    simulator
        .faults()
        .push(FaultRule::on(Fault::Drop, "GET", "/cdn/"));
    let error = fetch(&registry, arguments.clone()).await.unwrap_err();
    assert!(
        error.is_retryable(),
        "a broken download is retryable: {error}"
    );
    assert_no_secrets(&simulator, &error.to_string());
    simulator.faults().push(FaultRule::on(
        Fault::RateLimit {
            retry_after_secs: 3,
        },
        "GET",
        "/cdn/",
    ));
    let error = assert_error(
        fetch(&registry, arguments.clone()).await,
        true,
        "rate_limited",
        "429 on the download",
    );
    assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
    assert!(
        stored_objects(&store).is_empty(),
        "nothing kept from failed downloads"
    );

    assert_error(
        fetch(&registry, json!({"asset_id": MISSING})).await,
        false,
        "not_found",
        "an asset Smint.io does not have",
    );
    fetch(&registry, arguments).await.unwrap();
    simulator.shutdown().await;
}

#[tokio::test]
async fn a_tampered_or_expired_signed_link_is_refused_by_the_simulated_cdn() {
    let simulator = simulator::smintio::start(SimOptions::in_memory())
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let base = simulator.base_url();
    for query in [
        "",
        "?Expires=99999999999&Signature=forged",
        "?Expires=1&Signature=x",
    ] {
        let response = client
            .get(format!("{base}/cdn/{ASSET}/b-0001{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{query}");
    }
    simulator.shutdown().await;
}
