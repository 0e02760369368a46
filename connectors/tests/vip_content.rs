//! VIP content against its simulator over real HTTP: `publish_content`,
//! `replace_package_content`, `revoke_delivery` and `withdraw_package` with what they report
//! to the ledger, the recipient's download, and the faults on the way.

// Helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod vip_support;

use axum::http::StatusCode;
use base64::Engine as _;
use gridflow_connectors::effects::{DeliveryStatus, LedgerChange, ObservedRights};
use gridflow_connectors::simulator::{Fault, FaultRule};
use serde_json::{Value, json};
use vip_support::{Vip, assert_error};

fn ledger(output: &Value) -> Vec<LedgerChange> {
    LedgerChange::read_all(output).unwrap()
}

/// The one status change of an output.
fn only_status(output: &Value) -> gridflow_connectors::effects::StatusChange {
    match ledger(output).as_slice() {
        [LedgerChange::Status(change)] => change.clone(),
        other => panic!("one status change, not {other:?}"),
    }
}

fn ids(deliveries: &Value) -> Vec<String> {
    deliveries
        .as_array()
        .unwrap()
        .iter()
        .map(|delivery| delivery["id"].as_str().unwrap().to_owned())
        .collect()
}

fn delivery_of<'a>(output: &'a Value, recipient: &str) -> &'a Value {
    output["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|delivery| delivery["recipient_id"] == recipient)
        .unwrap_or_else(|| panic!("no delivery to {recipient}: {output}"))
}

#[tokio::test]
async fn publish_content_delivers_checked_bytes_and_reports_each_delivery() {
    let vip = Vip::start().await;
    let front = vip
        .artifact("a-front", "3", b"front label bytes", "front.png")
        .await;
    let back = vip
        .artifact("a-back", "1", b"back label bytes", "back.png")
        .await;
    let output = vip
        .invoke(
            "publish_content",
            json!({"title": "Labels", "metadata": {"campaign": "autumn"},
                   "recipients": {"group_ids": ["grp-key-retailers"], "recipient_ids": ["rcp-lakeside-market"]},
                   "rights": {"valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-06-30T23:59:59Z"},
                   "content": [front.clone(), back.clone()]}),
            "publish",
        )
        .await
        .unwrap();
    let package_id = output["package_id"].as_str().unwrap().to_owned();
    assert_eq!(output["status"], "published");
    assert_eq!(output["version"], 1);
    assert_eq!(output["files"][0]["sha256"], front["sha256"]);
    assert_eq!(output["files"][1]["sha256"], back["sha256"]);

    // Three recipients: two deliveries, one failed (a suspended account).
    let metro = delivery_of(&output, "rcp-metro-fresh")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let lakeside = delivery_of(&output, "rcp-lakeside-market");
    assert_eq!(lakeside["status"], "failed");
    let changes = ledger(&output);
    let delivered: Vec<_> = changes
        .iter()
        .filter_map(|change| match change {
            LedgerChange::Delivered(delivery) => Some(delivery),
            LedgerChange::Status(_) => None,
        })
        .collect();
    assert_eq!(delivered.len(), 6, "three deliveries × two artifacts");
    for delivery in &delivered {
        assert_eq!(
            (delivery.channel.as_str(), delivery.reference.as_str()),
            ("vip", package_id.as_str())
        );
        assert_eq!(delivery.system, "otmm");
        let artifact = if delivery.asset_id == "a-front" {
            &front
        } else {
            &back
        };
        assert_eq!(delivery.sha256, artifact["sha256"].as_str().unwrap());
        assert_eq!(delivery.version, artifact["version"].as_str().unwrap());
        let receipt = delivery.receipt.as_deref().unwrap();
        assert_eq!(delivery_of(&output, &delivery.partner)["id"], receipt);
    }
    let failed: Vec<_> = changes
        .iter()
        .filter_map(|change| match change {
            LedgerChange::Status(status) => Some(status),
            LedgerChange::Delivered(_) => None,
        })
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].status, DeliveryStatus::Failed);
    assert_eq!(failed[0].receipt.as_deref(), lakeside["id"].as_str());
    assert!(
        failed[0].detail.as_ref().unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("suspended")
    );

    // The package's window, once per asset.
    let rights = ObservedRights::read_all(&output).unwrap();
    let assets: Vec<&str> = rights
        .iter()
        .map(|rights| rights.asset_id.as_str())
        .collect();
    assert_eq!(assets, ["a-back", "a-front"]);
    assert_eq!(
        rights[0].window.valid_until.unwrap().to_rfc3339(),
        "2030-06-30T23:59:59+00:00"
    );

    // The recipient gets exactly the stored bytes.
    let (status, download) = vip.download(&metro, "rcp-metro-fresh").await;
    assert_eq!(status, StatusCode::OK, "{download}");
    let bytes: Vec<Vec<u8>> = download["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| {
            base64::engine::general_purpose::STANDARD
                .decode(file["content_base64"].as_str().unwrap())
                .unwrap()
        })
        .collect();
    assert_eq!(
        bytes,
        [b"front label bytes".to_vec(), b"back label bytes".to_vec()]
    );
    vip.simulator.shutdown().await;
}

#[tokio::test]
async fn a_lost_response_is_retried_without_a_second_effect() {
    let vip = Vip::start().await;
    let artifact = vip.artifact("a-1", "1", b"one", "one.png").await;
    let arguments = json!({"title": "Once", "recipients": {"group_ids": ["grp-northeast-distributors"]},
                           "content": [artifact]});
    for (method, path) in [("POST", "/v1/packages/"), ("POST", "/v1/packages")] {
        vip.simulator
            .faults()
            .push(FaultRule::on(Fault::LoseResponse, method, path));
    }
    // The package is created (response lost), then the retry's file upload is lost.
    let first = vip
        .invoke("publish_content", arguments.clone(), "lost")
        .await;
    assert!(first.unwrap_err().is_retryable());
    let second = vip
        .invoke("publish_content", arguments.clone(), "lost")
        .await;
    assert!(second.unwrap_err().is_retryable());
    let output = vip
        .invoke("publish_content", arguments, "lost")
        .await
        .unwrap();
    assert_eq!(ids(&output["deliveries"]).len(), 2);
    let actions: Vec<String> = vip
        .simulator
        .effects()
        .into_iter()
        .map(|effect| effect.action)
        .collect();
    assert_eq!(
        actions,
        ["package.created", "file.uploaded", "package.published"]
    );
    vip.simulator.shutdown().await;
}

#[tokio::test]
async fn faults_on_content_requests_are_classified_and_change_nothing() {
    let vip = Vip::start().await;
    let artifact = vip.artifact("a-1", "1", b"one", "one.png").await;
    let arguments = json!({"package_id": "pkg-autumn-harvest", "content": [artifact]});
    for (fault, code) in [
        (
            Fault::RateLimit {
                retry_after_secs: 3,
            },
            "rate_limited",
        ),
        (Fault::ServerError, "server_error"),
    ] {
        vip.simulator.faults().push(FaultRule::on(
            fault,
            "POST",
            "/v1/packages/pkg-autumn-harvest/publish",
        ));
        assert_error(
            vip.invoke("publish_content", arguments.clone(), "faulted")
                .await,
            true,
            code,
            code,
        );
    }
    let published: Vec<_> = vip
        .simulator
        .effects()
        .into_iter()
        .filter(|effect| effect.action == "package.published")
        .collect();
    assert!(published.is_empty(), "{published:?}");
    let output = vip
        .invoke("publish_content", arguments.clone(), "faulted")
        .await
        .unwrap();
    assert_eq!(output["package_id"], "pkg-autumn-harvest");
    let uploads = vip
        .simulator
        .effects()
        .into_iter()
        .filter(|effect| effect.action == "file.uploaded")
        .count();
    assert_eq!(uploads, 1, "the file went up once for three attempts");

    // A published package takes new content only as a new version.
    let error = assert_error(
        vip.invoke("publish_content", arguments, "again").await,
        false,
        "conflict",
        "published twice",
    );
    assert!(error.message().contains("already published"), "{error}");
    vip.simulator.shutdown().await;
}

#[tokio::test]
async fn content_is_checked_before_and_after_the_upload() {
    let vip = Vip::start().await;
    let mut missing = vip.artifact("a-1", "1", b"kept", "kept.png").await;
    missing["sha256"] = json!("0".repeat(64));
    let error = assert_error(
        vip.invoke(
            "publish_content",
            json!({"title": "T", "content": [missing]}),
            "missing",
        )
        .await,
        false,
        "content_not_found",
        "not in the store",
    );
    assert!(error.message().contains("content[0]"), "{error}");
    assert_eq!(vip.simulator.tokens().issued_count(), 0, "nothing was sent");

    let error = assert_error(
        vip.invoke("publish_content", json!({"package_id": "pkg-autumn-harvest", "title": "T",
                                             "content": [vip.artifact("a", "1", b"x", "x.png").await]}), "both")
            .await,
        false,
        "invalid_arguments",
        "package_id and title",
    );
    assert!(error.message().contains("either package_id"), "{error}");

    // Bytes changed in the store after they were fetched are not delivered.
    let artifact = vip.artifact("a-2", "1", b"approved bytes", "a2.png").await;
    let path = vip
        .store
        .path_of(artifact["sha256"].as_str().unwrap())
        .unwrap();
    std::fs::write(path, b"changed bytes!").unwrap();
    assert_error(
        vip.invoke(
            "publish_content",
            json!({"package_id": "pkg-autumn-harvest", "content": [artifact]}),
            "corrupt",
        )
        .await,
        false,
        "content_corrupt",
        "changed in the store",
    );
    assert!(vip.simulator.effects().is_empty());
    vip.simulator.shutdown().await;
}

#[tokio::test]
async fn a_file_the_platform_received_otherwise_is_refused_before_publishing() {
    let published = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = published.clone();
    let app = axum::Router::new()
        .route(
            "/v1/oauth2/token",
            axum::routing::post(|| async {
                axum::Json(json!({"access_token": "t", "token_type": "Bearer"}))
            }),
        )
        .route(
            "/v1/packages/{id}/files",
            axum::routing::post(|| async {
                (
                    StatusCode::CREATED,
                    axum::Json(json!({"id": "file-1", "sha256": "ab".repeat(32), "size": 5})),
                )
            }),
        )
        .route(
            "/v1/packages/{id}/publish",
            axum::routing::post(move || {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async { axum::Json(json!({"deliveries": []})) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let directory = tempfile::tempdir().unwrap();
    let store = gridflow_connectors::content::ContentStore::new(directory.path(), 1024);
    let reference = store.put(b"hello", "image/png", "h.png").await.unwrap();
    let artifact = json!({"system": "canto", "asset_id": "c-1", "version": "4", "sha256": reference.sha256,
                          "size": 5, "content_type": "image/png", "file_name": "h.png"});
    let registry = vip_support::registry(&base_url, store);
    let error = assert_error(
        vip_support::invoke(
            &registry,
            "vip.publish_content",
            json!({"package_id": "pkg-1", "content": [artifact]}),
            "mismatch",
        )
        .await,
        false,
        "content_mismatch",
        "platform digest",
    );
    assert!(error.message().contains(&reference.sha256), "{error}");
    assert!(error.message().contains("canto c-1 version 4"), "{error}");
    assert_eq!(published.load(std::sync::atomic::Ordering::SeqCst), 0);
    server.abort();
}

#[tokio::test]
async fn a_new_version_supersedes_earlier_deliveries_and_delivers_again() {
    let vip = Vip::start().await;
    let v1 = vip.artifact("a-kit", "1", b"kit v1", "kit.png").await;
    let first = vip
        .invoke(
            "publish_content",
            json!({"title": "Kit", "recipients": {"group_ids": ["grp-key-retailers"]},
                                          "content": [v1]}),
            "publish",
        )
        .await
        .unwrap();
    let package_id = first["package_id"].as_str().unwrap().to_owned();
    let earlier = ids(&first["deliveries"]);
    let metro = delivery_of(&first, "rcp-metro-fresh")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        vip.download(&metro, "rcp-metro-fresh").await.0,
        StatusCode::OK
    );

    let v2 = vip.artifact("a-kit", "2", b"kit v2", "kit.png").await;
    let output = vip
        .invoke(
            "replace_package_content",
            json!({"package_id": package_id, "content": [v2.clone()], "note": "fixed"}),
            "replace",
        )
        .await
        .unwrap();
    assert_eq!(output["version"], 2);
    let superseded: Vec<String> = output["superseded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(superseded, earlier);
    let newer = ids(&output["deliveries"]);
    assert_eq!(newer.len(), 2);
    assert!(newer.iter().all(|id| !earlier.contains(id)));
    let changes = ledger(&output);
    let mut statuses = Vec::new();
    let mut delivered = Vec::new();
    for change in &changes {
        match change {
            LedgerChange::Status(status) => {
                assert_eq!(status.status, DeliveryStatus::Superseded);
                assert_eq!(status.reference, package_id);
                assert_eq!(status.detail.as_ref().unwrap()["version"], 2);
                statuses.push(status.receipt.clone().unwrap());
            }
            LedgerChange::Delivered(delivery) => {
                assert_eq!(
                    (delivery.version.as_str(), delivery.sha256.as_str()),
                    ("2", v2["sha256"].as_str().unwrap())
                );
                delivered.push(delivery.receipt.clone().unwrap());
            }
        }
    }
    assert_eq!(statuses, earlier, "every earlier delivery, by receipt");
    assert_eq!(delivered, newer);

    // The superseded copy is gone; the new one carries version 2's bytes.
    let (status, body) = vip.download(&metro, "rcp-metro-fresh").await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("superseded"));
    let fresh = delivery_of(&output, "rcp-metro-fresh")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = vip.download(&fresh, "rcp-metro-fresh").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["version"], 2);
    assert_eq!(body["files"][0]["sha256"], v2["sha256"]);

    // A draft takes a version without delivering anything.
    let draft = vip
        .invoke(
            "replace_package_content",
            json!({"package_id": "pkg-autumn-harvest", "content": [v2]}),
            "draft",
        )
        .await
        .unwrap();
    assert_eq!(
        (
            draft["version"].as_u64(),
            draft["deliveries"].as_array().unwrap().len()
        ),
        (Some(2), 0)
    );
    assert!(ledger(&draft).is_empty());
    vip.simulator.shutdown().await;
}

#[tokio::test]
async fn revoked_and_withdrawn_deliveries_are_reported_and_closed() {
    let vip = Vip::start().await;
    let artifact = vip.artifact("a-1", "1", b"recall me", "r.png").await;
    let output = vip
        .invoke(
            "publish_content",
            json!({"title": "Recall", "recipients": {"group_ids": ["grp-key-retailers"]},
                                          "content": [artifact]}),
            "publish",
        )
        .await
        .unwrap();
    let package_id = output["package_id"].as_str().unwrap().to_owned();
    let harbor = delivery_of(&output, "rcp-harbor-liquors")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let metro = delivery_of(&output, "rcp-metro-fresh")["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let revoked = vip
        .invoke(
            "revoke_delivery",
            json!({"delivery_id": harbor, "reason": "wrong market"}),
            "revoke",
        )
        .await
        .unwrap();
    assert_eq!(revoked["status"], "revoked");
    let change = only_status(&revoked);
    assert_eq!(change.status, DeliveryStatus::Withdrawn);
    assert_eq!(
        (change.reference.as_str(), change.receipt.as_deref()),
        (package_id.as_str(), Some(harbor.as_str()))
    );
    assert_eq!(change.partner.as_deref(), Some("rcp-harbor-liquors"));
    assert!(change.at.is_some());
    let (status, _) = vip.download(&harbor, "rcp-harbor-liquors").await;
    assert_eq!(status, StatusCode::GONE);
    let again = vip
        .invoke(
            "revoke_delivery",
            json!({"delivery_id": harbor}),
            "revoke-again",
        )
        .await
        .unwrap();
    assert_eq!(
        again["revoked_at"], revoked["revoked_at"],
        "revoking twice changes nothing"
    );

    let withdrawn = vip
        .invoke(
            "withdraw_package",
            json!({"package_id": package_id, "reason": "licence ended"}),
            "withdraw",
        )
        .await
        .unwrap();
    let change = only_status(&withdrawn);
    assert_eq!(
        (change.status, change.receipt.as_deref()),
        (DeliveryStatus::Withdrawn, None)
    );
    assert_eq!(change.detail.as_ref().unwrap()["reason"], "licence ended");
    assert_eq!(
        vip.download(&metro, "rcp-metro-fresh").await.0,
        StatusCode::GONE
    );
    assert_error(
        vip.invoke(
            "acknowledge_delivery",
            json!({"delivery_id": metro, "by": "x"}),
            "ack",
        )
        .await,
        false,
        "conflict",
        "acknowledging a revoked delivery",
    );
    vip.simulator.shutdown().await;
}

#[tokio::test]
async fn downloads_record_the_first_time_for_the_recipient_only() {
    let vip = Vip::start().await;
    let artifact = vip.artifact("a-1", "1", b"download me", "d.png").await;
    let output = vip
        .invoke(
            "publish_content",
            json!({"title": "D", "recipients": {"recipient_ids": ["rcp-northwind"]},
                                          "content": [artifact]}),
            "publish",
        )
        .await
        .unwrap();
    let package_id = output["package_id"].as_str().unwrap().to_owned();
    let delivery = ids(&output["deliveries"]).remove(0);
    assert_eq!(
        vip.download(&delivery, "rcp-metro-fresh").await.0,
        StatusCode::FORBIDDEN
    );
    let (status, body) = vip
        .call(
            reqwest::Method::GET,
            &format!("/v1/deliveries/{delivery}/download"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["detail"].as_str().unwrap().contains("X-Recipient-Id"));

    // A fault before the handler records nothing.
    vip.simulator
        .faults()
        .push(FaultRule::on(Fault::ServerError, "GET", "/v1/deliveries/"));
    assert_eq!(
        vip.download(&delivery, "rcp-northwind").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert!(vip.delivery(&package_id, &delivery).await["downloaded_at"].is_null());

    assert_eq!(
        vip.download(&delivery, "rcp-northwind").await.0,
        StatusCode::OK
    );
    let first = vip.delivery(&package_id, &delivery).await;
    assert_eq!(first["status"], "downloaded");
    assert!(first["downloaded_at"].is_string());
    assert_eq!(
        vip.download(&delivery, "rcp-northwind").await.0,
        StatusCode::OK
    );
    let second = vip.delivery(&package_id, &delivery).await;
    assert_eq!(
        second["downloaded_at"], first["downloaded_at"],
        "the first download is kept"
    );
    assert_eq!(second["download_count"], 2);

    let acknowledged = vip
        .invoke(
            "acknowledge_delivery",
            json!({"delivery_id": delivery, "by": "studio@northwind.example"}),
            "ack",
        )
        .await
        .unwrap();
    assert!(acknowledged["acknowledged_at"].is_string());
    let delivery = vip.delivery(&package_id, &delivery).await;
    assert_eq!(delivery["status"], "acknowledged");
    assert_eq!(delivery["downloaded_at"], first["downloaded_at"]);
    vip.simulator.shutdown().await;
}
