//! Content by digest through the Trading Grid hub, over real HTTP against its simulator:
//! `publish_content` uploads the stored bytes, checks the digest the hub reports, and
//! records one delivery per recipient and artifact; partners download by document id
//! (no link anywhere) until a withdrawal, after which the download answers 410.

// Helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use gridflow_connectors::Registry;
use gridflow_connectors::config::TradingGridConfig;
use gridflow_connectors::content::{Artifact, ContentStore};
use gridflow_connectors::effects::{DeliveryStatus, LedgerChange};
use gridflow_connectors::http::Secret;
use gridflow_connectors::simulator::trading_grid::{PARTNER_LOGIN_HEADER, SANDBOX_COMPANY_ID};
use gridflow_connectors::simulator::{
    self, RunningSimulator, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SimOptions,
};
use gridflow_connectors::trading_grid::{TradingGridConnector, TradingGridCredentials};
use serde_json::{Value, json};
use support::{assert_error, invoke};

const METRO: &str = "GC00933311CD";
const METRO_LOGIN: &str = "media@metrofresh.example";
const HARBOR: &str = "GC00977799GH";
const HARBOR_LOGIN: &str = "owner@harborliquors.example";

struct Hub {
    simulator: RunningSimulator,
    registry: Registry,
    content: ContentStore,
    _dir: tempfile::TempDir,
}

impl Hub {
    async fn start() -> Self {
        let simulator = simulator::trading_grid::start(SimOptions::in_memory())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let content = ContentStore::new(dir.path(), 1024 * 1024);
        let config = TradingGridConfig {
            base_url: simulator.base_url(),
            company_id: SANDBOX_COMPANY_ID.to_owned(),
            client_id_env: "TG_KEY".to_owned(),
            client_secret_env: "TG_SECRET".to_owned(),
            timeout: Duration::from_secs(10),
            poll_interval: Duration::from_secs(60),
        };
        let credentials = TradingGridCredentials {
            client_id: Secret::new(SANDBOX_CLIENT_ID),
            client_secret: Secret::new(SANDBOX_CLIENT_SECRET),
        };
        let connector = TradingGridConnector::new(&config, credentials)
            .unwrap()
            .with_content(content.clone());
        let mut registry = Registry::new();
        registry.register(Arc::new(connector));
        Self {
            simulator,
            registry,
            content,
            _dir: dir,
        }
    }

    async fn artifact(&self, bytes: &[u8], asset_id: &str, file_name: &str) -> Value {
        let reference = self
            .content
            .put(bytes, "image/png", file_name)
            .await
            .unwrap();
        serde_json::to_value(Artifact {
            system: "otmm".to_owned(),
            asset_id: asset_id.to_owned(),
            version: "3".to_owned(),
            content: reference,
        })
        .unwrap()
    }

    async fn publish(
        &self,
        artifacts: Value,
        step: &str,
    ) -> Result<Value, gridflow_connectors::Error> {
        invoke(
            &self.registry,
            "trading_grid.publish_content",
            json!({"community_id": "cmty-aurora-partners", "group_ids": ["grp-retailers"],
                   "title": "Spring pack shots", "body": "Approved images.", "content": artifacts}),
            step,
        )
        .await
    }

    /// A partner user's download: the status and the bytes.
    async fn download(&self, login: &str, post_id: &Value, document_id: &Value) -> (u16, Vec<u8>) {
        let response = reqwest::Client::new()
            .get(format!(
                "{}/partner/v1/posts/{}/documents/{}",
                self.simulator.base_url(),
                post_id.as_str().unwrap(),
                document_id.as_str().unwrap()
            ))
            .header(PARTNER_LOGIN_HEADER, login)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.bytes().await.unwrap().to_vec())
    }

    fn effects_named(&self, action: &str) -> usize {
        self.simulator
            .effects()
            .iter()
            .filter(|effect| effect.action == action)
            .count()
    }
}

fn assert_fits_output(registry: &Registry, action: &str, output: &Value) {
    let (_, spec) = registry.action(action).unwrap();
    let validator = jsonschema::draft202012::new(&spec.output).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(output)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{action}: {errors:?}\n{output:#}");
}

/// No link, and none of the credentials or tokens the simulator issued, in `text`.
fn assert_no_link(simulator: &RunningSimulator, text: &str, context: &str) {
    for needle in [
        "http://",
        "https://",
        "url",
        "Signature=",
        "access_token",
        SANDBOX_CLIENT_SECRET,
    ] {
        assert!(!text.contains(needle), "{context}: {needle:?} in {text}");
    }
    let tokens = simulator.tokens().issued();
    assert!(!tokens.is_empty(), "{context}: the connector signed in");
    for token in tokens {
        assert!(
            !text.contains(token.as_str()),
            "{context}: a token in {text}"
        );
    }
}

#[tokio::test]
async fn published_content_reaches_the_group_with_its_digest_and_one_delivery_per_partner_and_file()
{
    let hub = Hub::start().await;
    let front = hub
        .artifact(b"front of the can", "asset-front", "front.png")
        .await;
    let back = hub
        .artifact(b"back of the can", "asset-back", "back.png")
        .await;
    let output = hub
        .publish(json!([front.clone(), back.clone()]), "publish")
        .await
        .unwrap();
    assert_fits_output(&hub.registry, "trading_grid.publish_content", &output);
    assert_eq!(output["status"], "published");
    assert_eq!(output["recipients"], json!([METRO, HARBOR]));
    let documents = output["documents"].as_array().unwrap();
    assert_eq!(documents[0]["sha256"], front["sha256"]);
    assert_eq!(documents[1]["file_name"], "back.png");
    let ledger = LedgerChange::read_all(&output).unwrap();
    assert_eq!(ledger.len(), 4, "two partners by two files");
    for change in &ledger {
        let LedgerChange::Delivered(delivery) = change else {
            panic!("a delivery: {change:?}");
        };
        assert_eq!(delivery.channel, "trading_grid");
        assert_eq!(delivery.reference, output["post_id"].as_str().unwrap());
        assert_eq!(delivery.version, "3");
        let document = documents
            .iter()
            .find(|document| document["sha256"] == delivery.sha256.as_str())
            .unwrap();
        assert_eq!(
            delivery.receipt.as_deref(),
            document["document_id"].as_str()
        );
    }
    assert_no_link(&hub.simulator, &output.to_string(), "publish output");

    // The partner's download gives the very bytes; the post holds no link.
    let (status, bytes) = hub
        .download(
            METRO_LOGIN,
            &output["post_id"],
            &documents[0]["document_id"],
        )
        .await;
    assert_eq!((status, bytes.as_slice()), (200, &b"front of the can"[..]));
    let post = invoke(
        &hub.registry,
        "trading_grid.get_post",
        json!({"post_id": output["post_id"]}),
        "read",
    )
    .await
    .unwrap();
    assert_fits_output(&hub.registry, "trading_grid.get_post", &post);
    assert_eq!(post["downloads"][0]["login_id"], METRO_LOGIN);
    assert_eq!(post["documents"][1]["sha256"], back["sha256"]);
    assert_no_link(&hub.simulator, &post.to_string(), "get_post output");

    // The same action again (a retry after a lost answer) uploads and posts nothing more.
    let again = hub.publish(json!([front, back]), "publish").await.unwrap();
    assert_eq!(again["post_id"], output["post_id"]);
    assert_eq!(hub.effects_named("document.uploaded"), 2);
    assert_eq!(hub.effects_named("post.published"), 1);
    hub.simulator.shutdown().await;
}

#[tokio::test]
async fn a_digest_the_hub_reports_wrong_fails_for_good_and_posts_nothing() {
    let hub = Hub::start().await;
    let image = hub
        .artifact(b"label artwork", "asset-label", "label.png")
        .await;
    reqwest::Client::new()
        .post(format!(
            "{}/_sim/trading_grid/corrupt_uploads",
            hub.simulator.base_url()
        ))
        .json(&json!({"count": 1}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let error = assert_error(
        hub.publish(json!([image]), "mangled").await,
        false,
        "content_digest_mismatch",
        "mangled upload",
    );
    assert!(error.message().contains("label.png"), "{error}");
    assert_eq!(hub.effects_named("post.published"), 0);

    // Bytes changed in the store are refused before anything is uploaded.
    let changed = hub.artifact(b"original", "asset-x", "x.png").await;
    let path = hub
        .content
        .path_of(changed["sha256"].as_str().unwrap())
        .unwrap();
    std::fs::write(path, b"tampered").unwrap();
    let uploads = hub.effects_named("document.uploaded");
    assert_error(
        hub.publish(json!([changed]), "tampered").await,
        false,
        "content_corrupt",
        "tampered",
    );
    assert_eq!(hub.effects_named("document.uploaded"), uploads);
    let empty = hub.publish(json!([]), "empty").await;
    assert_error(empty, false, "invalid_arguments", "no content");
    hub.simulator.shutdown().await;
}

#[tokio::test]
async fn withdrawn_partners_and_documents_get_410_and_the_ledger_says_withdrawn() {
    let hub = Hub::start().await;
    let first = hub.artifact(b"first file", "asset-1", "one.png").await;
    let second = hub.artifact(b"second file", "asset-2", "two.png").await;
    let output = hub
        .publish(json!([first, second]), "publish")
        .await
        .unwrap();
    let post_id = &output["post_id"];
    let (one, two) = (
        &output["documents"][0]["document_id"],
        &output["documents"][1]["document_id"],
    );
    assert_eq!(hub.download(HARBOR_LOGIN, post_id, one).await.0, 200);

    let withdrawn = invoke(
        &hub.registry,
        "trading_grid.withdraw_post",
        json!({"post_id": post_id, "partner_company_ids": [HARBOR], "reason": "licence ended in the US"}),
        "withdraw",
    )
    .await
    .unwrap();
    assert_fits_output(&hub.registry, "trading_grid.withdraw_post", &withdrawn);
    let ledger = LedgerChange::read_all(&withdrawn).unwrap();
    let [LedgerChange::Status(status)] = ledger.as_slice() else {
        panic!("one withdrawal: {ledger:?}");
    };
    assert_eq!(status.status, DeliveryStatus::Withdrawn);
    assert_eq!(
        (status.partner.as_deref(), status.receipt.as_deref()),
        (Some(HARBOR), None)
    );
    assert_eq!(
        status.detail,
        Some(json!({"reason": "licence ended in the US"}))
    );
    assert_eq!(hub.download(HARBOR_LOGIN, post_id, one).await.0, 410);
    assert_eq!(hub.download(METRO_LOGIN, post_id, one).await.0, 200);

    let document = invoke(
        &hub.registry,
        "trading_grid.withdraw_document",
        json!({"post_id": post_id, "document_id": two}),
        "withdraw-two",
    )
    .await
    .unwrap();
    let ledger = LedgerChange::read_all(&document).unwrap();
    assert!(matches!(ledger.as_slice(),
        [LedgerChange::Status(change)] if change.receipt.as_ref() == two.as_str().map(str::to_owned).as_ref() && change.partner.is_none()));
    assert_eq!(hub.download(METRO_LOGIN, post_id, two).await.0, 410);
    assert_eq!(hub.download(METRO_LOGIN, post_id, one).await.0, 200);

    let whole = invoke(
        &hub.registry,
        "trading_grid.withdraw_post",
        json!({"post_id": post_id}),
        "all",
    )
    .await
    .unwrap();
    assert_eq!(whole["status"], "withdrawn");
    assert_eq!(hub.download(METRO_LOGIN, post_id, one).await.0, 410);
    let again = invoke(
        &hub.registry,
        "trading_grid.withdraw_post",
        json!({"post_id": post_id}),
        "twice",
    )
    .await;
    assert_error(again, false, "conflict", "withdrawn twice");
    let post = invoke(
        &hub.registry,
        "trading_grid.get_post",
        json!({"post_id": post_id}),
        "read",
    )
    .await
    .unwrap();
    assert_eq!(post["withdrawn"], true);
    assert_eq!(post["documents"][1]["withdrawn"], true);
    // A partner the post never reached does not learn it exists.
    assert_eq!(
        hub.download("buyer@greenmountain.example", post_id, one)
            .await
            .0,
        404
    );
    hub.simulator.shutdown().await;
}
