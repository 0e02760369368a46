//! The `canto` connector against the Canto simulator over real HTTP.

// Helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use gridflow_connectors::canto::{CantoConnector, CantoCredentials};
use gridflow_connectors::config::CantoConfig;
use gridflow_connectors::http::Secret;
use gridflow_connectors::simulator::{
    self, Fault, FaultRule, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SimOptions,
};
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
        upload_wait: Duration::from_secs(10),
        upload_poll_interval: Duration::from_millis(50),
    }
}

/// The first bytes of a PNG file, as `create_version` takes a file inline.
const PNG_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

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
            action: "canto.fetch_content",
            arguments: json!({"scheme": "image", "asset_id": "hl26cs0001"}),
            missing: Some(json!({"scheme": "image", "asset_id": "nope"})),
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
        Case {
            action: "canto.create_version",
            arguments: json!({"scheme": "image", "asset_id": "hl26cs0001", "file_name": "citrus-spritz-can-12oz-v2.png",
                              "content_base64": PNG_BASE64, "comment": "fr-CA cut added"}),
            missing: Some(
                json!({"scheme": "image", "asset_id": "nope", "file_name": "x.png", "content_base64": PNG_BASE64}),
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
    // create_version ran three times with the same action key (first call, the
    // short-timeout connector, after the token expired): one upload, one version.
    assert_eq!(count(&simulator, "upload.received"), 1);
    assert_eq!(count(&simulator, "version.created"), 1);
    let read = invoke(
        &registry,
        "canto.get_asset",
        json!({"scheme": "image", "asset_id": "hl26cs0001"}),
        "read",
    )
    .await
    .unwrap();
    let versions = read["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(versions[1]["comment"], "fr-CA cut added");
    simulator.shutdown().await;
}

/// How many effects named `action` the simulator recorded.
fn count(simulator: &simulator::RunningSimulator, action: &str) -> usize {
    simulator
        .effects()
        .iter()
        .filter(|effect| effect.action == action)
        .count()
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

/// A webhook receiver on loopback: its URL, the bodies it receives, and its server.
async fn hook_receiver() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let (sender, received) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
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
    (hook_url, received, server)
}

/// Configures the simulator's webhooks as Canto's admin UI would.
async fn configure_hooks(simulator: &simulator::RunningSimulator, hook_url: &str) {
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
}

#[tokio::test]
async fn metadata_edits_fire_the_webhook_with_its_secure_token() {
    let (hook_url, mut received, server) = hook_receiver().await;
    let simulator = simulator::canto::start(SimOptions::in_memory())
        .await
        .unwrap();
    configure_hooks(&simulator, &hook_url).await;

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

/// Attempt `attempt` of `create_version` in step `step`; every attempt of a step shares
/// the action's idempotency key.
fn create_version_attempt(
    arguments: serde_json::Value,
    step: &str,
    attempt: u32,
) -> gridflow_connectors::Invocation {
    gridflow_connectors::Invocation::new(
        "create_version",
        arguments,
        gridflow_core::InstanceId::from("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
        gridflow_core::StepId::from(step),
        None,
        attempt,
    )
}

fn new_version_arguments() -> serde_json::Value {
    json!({"scheme": "image", "asset_id": "hl26cs0001", "file_name": "citrus-spritz-can-12oz-v2.png",
           "content_base64": PNG_BASE64})
}

async fn version_count(registry: &Registry) -> usize {
    invoke(
        registry,
        "canto.get_asset",
        json!({"scheme": "image", "asset_id": "hl26cs0001"}),
        "read",
    )
    .await
    .unwrap()["versions"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_lost_s3_response_and_its_retry_create_one_version() {
    let simulator = simulator::canto::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    let (connector, _) = registry.action("canto.create_version").unwrap();
    simulator.faults().push(FaultRule::on(
        Fault::LoseResponse,
        "POST",
        simulator::canto::S3_PATH,
    ));
    let first = create_version_attempt(new_version_arguments(), "new-version", 1);
    let action_key = first.action_key();
    let error = connector
        .invoke(first)
        .await
        .expect_err("the response was lost");
    assert!(error.is_retryable(), "{error}");
    assert!(
        simulator.faults().plan().queue.is_empty(),
        "the fault hit the S3 POST"
    );
    assert_eq!(
        count(&simulator, "upload.received"),
        1,
        "the upload took effect"
    );

    let output = connector
        .invoke(create_version_attempt(
            new_version_arguments(),
            "new-version",
            2,
        ))
        .await
        .unwrap();
    assert_eq!(
        output,
        json!({"asset_id": "hl26cs0001", "scheme": "image", "version_id": "2",
               "file_name": "citrus-spritz-can-12oz-v2.png", "versions": 2,
               "created": output["created"].clone(), "comment": null})
    );
    assert!(output["created"].is_string(), "{output}");
    let uploads: Vec<_> = simulator
        .effects()
        .into_iter()
        .filter(|effect| effect.action == "upload.received")
        .collect();
    assert_eq!(uploads.len(), 1, "one upload: {uploads:?}");
    assert_eq!(
        uploads[0].idempotency_key.as_deref(),
        Some(action_key.as_str())
    );
    assert_eq!(uploads[0].path, simulator::canto::S3_PATH);
    let versions: Vec<_> = simulator
        .effects()
        .into_iter()
        .filter(|effect| effect.action == "version.created")
        .collect();
    assert_eq!(versions.len(), 1, "one new version: {versions:?}");
    assert_eq!(versions[0].object_id.as_deref(), Some("image/hl26cs0001"));
    assert_eq!(version_count(&registry).await, 2);
    simulator.shutdown().await;
}

#[tokio::test]
async fn an_upload_not_processed_in_time_is_retryable_and_named() {
    let simulator = simulator::canto::start(SimOptions::in_memory())
        .await
        .unwrap();
    let processing = |paused: bool| {
        reqwest::Client::new()
            .put(format!("{}/_sim/canto/processing", simulator.base_url()))
            .json(&json!({"paused": paused}))
            .send()
    };
    assert_eq!(processing(true).await.unwrap().status(), 200);
    let mut impatient = config(&simulator.base_url(), Duration::from_secs(10));
    impatient.upload_wait = Duration::from_millis(300);
    let connector = CantoConnector::new(&impatient, credentials(SANDBOX_CLIENT_SECRET)).unwrap();
    let error = assert_error(
        connector
            .invoke(create_version_attempt(
                new_version_arguments(),
                "slow-upload",
                1,
            ))
            .await,
        true,
        "upload_pending",
        "processing paused",
    );
    assert!(
        error.message().contains("citrus-spritz-can-12oz-v2.png")
            && error.message().contains("image/hl26cs0001"),
        "the error names the upload: {error}"
    );
    let registry = registry(&simulator.base_url());
    assert_eq!(version_count(&registry).await, 1, "not processed yet");

    assert_eq!(processing(false).await.unwrap().status(), 200);
    let output = connector
        .invoke(create_version_attempt(
            new_version_arguments(),
            "slow-upload",
            2,
        ))
        .await
        .unwrap();
    assert_eq!(output["version_id"], "2");
    assert_eq!(count(&simulator, "upload.received"), 1);
    assert_eq!(count(&simulator, "version.created"), 1);
    simulator.shutdown().await;
}

#[tokio::test]
async fn faults_on_the_s3_post_and_the_status_poll_are_classified() {
    let simulator = simulator::canto::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    simulator.faults().push(FaultRule::on(
        Fault::RateLimit {
            retry_after_secs: 9,
        },
        "POST",
        simulator::canto::S3_PATH,
    ));
    let error = assert_error(
        invoke(
            &registry,
            "canto.create_version",
            new_version_arguments(),
            "s3-limited",
        )
        .await,
        true,
        "rate_limited",
        "429 on the S3 POST",
    );
    assert_eq!(error.retry_after(), Some(Duration::from_secs(9)));
    assert!(error.message().contains("S3"), "{error}");
    assert_eq!(count(&simulator, "upload.received"), 0, "nothing uploaded");

    simulator.faults().push(FaultRule::on(
        Fault::ServerError,
        "GET",
        "/api/v1/upload/status",
    ));
    assert_error(
        invoke(
            &registry,
            "canto.create_version",
            new_version_arguments(),
            "status-broken",
        )
        .await,
        true,
        "server_error",
        "500 on the status poll",
    );
    assert_eq!(count(&simulator, "upload.received"), 1);
    let output = invoke(
        &registry,
        "canto.create_version",
        new_version_arguments(),
        "status-broken",
    )
    .await
    .unwrap();
    assert_eq!(output["version_id"], "2");
    assert_eq!(
        count(&simulator, "upload.received"),
        1,
        "the retry re-used it"
    );
    simulator.shutdown().await;
}

#[tokio::test]
async fn create_version_arguments_are_checked_before_anything_is_sent() {
    let simulator = simulator::canto::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    let (connector, _) = registry.action("canto.create_version").unwrap();
    let base = new_version_arguments();
    let with = |extra: serde_json::Value| {
        let mut arguments = base.clone();
        for (name, value) in extra.as_object().unwrap() {
            arguments[name] = value.clone();
        }
        arguments
    };
    for (arguments, context) in [
        (
            with(json!({"source_url": "http://127.0.0.1:9/file.png"})),
            "both sources",
        ),
        (with(json!({"version": "3"})), "unknown field"),
        (
            json!({"scheme": "image", "asset_id": "hl26cs0001", "file_name": "x.png"}),
            "no file",
        ),
    ] {
        assert_error(
            invoke(&registry, "canto.create_version", arguments, "bad").await,
            false,
            "invalid_arguments",
            context,
        );
    }
    // The connector checks what the schema cannot, also when invoked directly.
    for (arguments, named) in [
        (
            with(json!({"content_base64": "not base64!"})),
            "content_base64",
        ),
        (
            with(json!({"source_url": "ftp://example.com/x.png"})),
            "exactly one",
        ),
    ] {
        let error = assert_error(
            connector
                .invoke(create_version_attempt(arguments, "bad", 1))
                .await,
            false,
            "invalid_arguments",
            named,
        );
        assert!(error.message().contains(named), "{error}");
    }
    let mut ftp = base.clone();
    ftp.as_object_mut().unwrap().remove("content_base64");
    ftp["source_url"] = json!("ftp://example.com/x.png");
    let error = assert_error(
        connector
            .invoke(create_version_attempt(ftp, "bad", 1))
            .await,
        false,
        "invalid_arguments",
        "ftp",
    );
    assert!(error.message().contains("http(s)"), "{error}");
    assert!(simulator.effects().is_empty(), "nothing was uploaded");
    simulator.shutdown().await;
}

#[tokio::test]
async fn a_source_url_is_fetched_without_credentials_and_uploaded() {
    use axum::http::{HeaderMap, StatusCode};

    let file = vec![7_u8; 1234];
    let served = file.clone();
    let source = axum::Router::new()
        .route(
            "/renditions/spot.png",
            axum::routing::get(move |headers: HeaderMap| {
                let served = served.clone();
                async move {
                    if headers.contains_key("authorization") {
                        return (StatusCode::BAD_REQUEST, Vec::new());
                    }
                    (StatusCode::OK, served)
                }
            }),
        )
        .route(
            "/renditions/gone.png",
            axum::routing::get(|| async { (StatusCode::NOT_FOUND, "no such rendition") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source_root = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, source).await });

    let simulator = simulator::canto::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    let arguments = |path: &str| {
        json!({"scheme": "image", "asset_id": "hl26cs0001", "file_name": "spot.png",
               "source_url": format!("{source_root}{path}")})
    };
    let error = assert_error(
        invoke(
            &registry,
            "canto.create_version",
            arguments("/renditions/gone.png"),
            "gone",
        )
        .await,
        false,
        "not_found",
        "missing source",
    );
    assert!(
        error.message().contains("source_url") && error.message().contains("no such rendition"),
        "{error}"
    );
    assert!(simulator.effects().is_empty());

    let output = invoke(
        &registry,
        "canto.create_version",
        arguments("/renditions/spot.png"),
        "fetched",
    )
    .await
    .unwrap();
    assert_eq!(output["version_id"], "2");
    // The simulator records the uploaded size on the content, as Canto does.
    let client = reqwest::Client::new();
    let token = access_token(&client, &simulator).await;
    let content: serde_json::Value = client
        .get(format!("{}/api/v1/image/hl26cs0001", simulator.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(content["size"], file.len().to_string());
    simulator.shutdown().await;
    server.abort();
}

#[tokio::test]
async fn a_new_version_fires_the_add_new_version_webhook() {
    let (hook_url, mut received, server) = hook_receiver().await;
    let simulator = simulator::canto::start(SimOptions::in_memory())
        .await
        .unwrap();
    configure_hooks(&simulator, &hook_url).await;
    let registry = registry(&simulator.base_url());
    invoke(
        &registry,
        "canto.create_version",
        new_version_arguments(),
        "hooked",
    )
    .await
    .unwrap();
    let body = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("a webhook delivery within 10 s")
        .unwrap();
    assert_eq!(
        body,
        json!({"secure_token": "tok-new-version", "scheme": "image", "id": "hl26cs0001",
               "album": "alb-launch-2026", "displayname": "citrus-spritz-can-12oz.png"})
    );
    simulator.shutdown().await;
    server.abort();
}

/// The simulated bucket checks the form as S3 does and answers errors in S3's XML.
#[tokio::test]
async fn the_simulated_bucket_checks_the_policy_and_signature() {
    let simulator = simulator::canto::start(SimOptions::in_memory())
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let token = access_token(&client, &simulator).await;
    let setting: serde_json::Value = client
        .get(format!("{}/api/v1/upload/setting", simulator.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = setting["url"].as_str().unwrap().to_owned();
    assert_eq!(
        url,
        format!("{}{}", simulator.base_url(), simulator::canto::S3_PATH)
    );
    let post = |overrides: &[(&str, &str)]| {
        let mut form = reqwest::multipart::Form::new();
        for name in ["key", "acl", "AWSAccessKeyId", "Policy", "Signature"] {
            let value = overrides
                .iter()
                .find(|(field, _)| *field == name)
                .map_or_else(
                    || setting[name].as_str().unwrap().to_owned(),
                    |(_, v)| (*v).to_owned(),
                );
            form = form.text(name, value);
        }
        for (name, value) in overrides {
            if !["key", "acl", "AWSAccessKeyId", "Policy", "Signature"].contains(name) {
                form = form.text(name.to_string(), value.to_string());
            }
        }
        let part = reqwest::multipart::Part::bytes(b"bytes".to_vec()).file_name("a.png");
        client.post(&url).multipart(form.part("file", part)).send()
    };
    for (overrides, status, code) in [
        (vec![("Signature", "forged")], 403, "SignatureDoesNotMatch"),
        (vec![("key", "elsewhere/a.png")], 403, "AccessDenied"),
        (vec![("name", "a.png")], 403, "AccessDenied"),
        (
            vec![("AWSAccessKeyId", "AKIAOTHER")],
            403,
            "InvalidAccessKeyId",
        ),
    ] {
        let response = post(&overrides).await.unwrap();
        assert_eq!(response.status(), status, "{overrides:?}");
        let body = response.text().await.unwrap();
        assert!(
            body.contains(&format!("<Code>{code}</Code>")) && body.contains("<Message>"),
            "{overrides:?}: {body}"
        );
    }
    assert!(
        simulator.effects().is_empty(),
        "refused uploads change nothing"
    );
    let created = post(&[("success_action_status", "201")]).await.unwrap();
    assert_eq!(created.status(), 201);
    assert!(created.text().await.unwrap().contains("<PostResponse>"));
    let plain = post(&[]).await.unwrap();
    assert_eq!(plain.status(), 204);
    assert_eq!(count(&simulator, "upload.received"), 2);
    simulator.shutdown().await;
}

/// A Canto access token from the simulator, as a caller outside the connector gets one.
async fn access_token(client: &reqwest::Client, simulator: &simulator::RunningSimulator) -> String {
    let token: serde_json::Value = client
        .post(format!("{}/oauth/api/oauth2/token", simulator.base_url()))
        .query(&[
            ("app_id", SANDBOX_CLIENT_ID),
            ("app_secret", SANDBOX_CLIENT_SECRET),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    token["accessToken"].as_str().unwrap().to_owned()
}
