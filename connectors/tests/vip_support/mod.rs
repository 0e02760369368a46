//! What the VIP suites share: a simulator with a connector whose content store holds test
//! artifacts, raw calls to the simulator's recipient and webhook routes, a webhook receiver
//! and the check that no credential reaches an output.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use gridflow_connectors::config::VipConfig;
use gridflow_connectors::content::{Artifact, ContentStore};
use gridflow_connectors::http::Secret;
use gridflow_connectors::simulator::{
    self, RunningSimulator, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SimOptions,
};
use gridflow_connectors::vip::{VipConnector, VipCredentials};
use gridflow_connectors::{Error, Registry};
use serde_json::{Value, json};
use tokio::sync::mpsc;

#[path = "../support/mod.rs"]
mod support;

pub use support::{assert_error, invoke};

/// A VIP simulator, a registry with its connector, and the connector's content store.
pub struct Vip {
    pub simulator: RunningSimulator,
    pub registry: Registry,
    pub store: ContentStore,
    _directory: tempfile::TempDir,
}

impl Vip {
    /// A fresh simulator in memory.
    pub async fn start() -> Self {
        let simulator = simulator::vip::start(SimOptions::in_memory())
            .await
            .unwrap();
        Self::with(simulator)
    }

    /// A connector for `simulator` with an empty content store.
    pub fn with(simulator: RunningSimulator) -> Self {
        let directory = tempfile::tempdir().unwrap();
        let store = ContentStore::new(directory.path(), 1024 * 1024);
        let registry = registry(&simulator.base_url(), store.clone());
        Self {
            simulator,
            registry,
            store,
            _directory: directory,
        }
    }

    /// Stores `bytes` and returns them as an artifact of `asset_id` version `version`.
    pub async fn artifact(&self, asset_id: &str, version: &str, bytes: &[u8], name: &str) -> Value {
        let content = self.store.put(bytes, "image/png", name).await.unwrap();
        serde_json::to_value(Artifact {
            system: "otmm".to_owned(),
            asset_id: asset_id.to_owned(),
            version: version.to_owned(),
            content,
        })
        .unwrap()
    }

    /// Invokes `vip.<action>` as attempt 1 of step `step`; checks that no credential or
    /// token of the simulator is in the outcome.
    pub async fn invoke(&self, action: &str, arguments: Value, step: &str) -> Result<Value, Error> {
        let outcome = invoke(&self.registry, &format!("vip.{action}"), arguments, step).await;
        let text = match &outcome {
            Ok(output) => output.to_string(),
            Err(error) => error.to_string(),
        };
        self.assert_no_credentials(&text);
        outcome
    }

    /// No client secret and no token the simulator issued is in `text`.
    pub fn assert_no_credentials(&self, text: &str) {
        assert!(
            !text.contains(SANDBOX_CLIENT_SECRET),
            "a credential leaked: {text}"
        );
        for token in self.simulator.tokens().issued() {
            assert!(!text.contains(&token), "a token leaked: {text}");
        }
    }

    /// A token of the simulator, as a recipient's portal would hold one.
    pub async fn token(&self) -> String {
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/v1/oauth2/token", self.simulator.base_url()))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", SANDBOX_CLIENT_ID),
                ("client_secret", SANDBOX_CLIENT_SECRET),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["access_token"].as_str().unwrap().to_owned()
    }

    /// `GET /v1/deliveries/{id}/download` as `recipient`: the status and body.
    pub async fn download(&self, delivery_id: &str, recipient: &str) -> (StatusCode, Value) {
        self.call(
            reqwest::Method::GET,
            &format!("/v1/deliveries/{delivery_id}/download"),
            None,
            Some(recipient),
        )
        .await
    }

    /// A raw authenticated call to the simulator: its status and JSON body (`null` if none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        recipient: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.simulator.base_url()))
            .bearer_auth(self.token().await);
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(recipient) = recipient {
            request = request.header("X-Recipient-Id", recipient);
        }
        let response = request.send().await.unwrap();
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        let bytes = response.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// The simulator's delivery `id`, as `GET /v1/deliveries` lists it.
    pub async fn delivery(&self, package_id: &str, delivery_id: &str) -> Value {
        let (_, page) = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/deliveries?package_id={package_id}&limit=200"),
                None,
                None,
            )
            .await;
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|delivery| delivery["id"] == delivery_id)
            .cloned()
            .unwrap_or_else(|| panic!("delivery {delivery_id} of {package_id}: {page}"))
    }

    /// Subscribes `url` to `events` with `secret`; returns the subscription.
    pub async fn subscribe(&self, url: &str, events: &[&str], secret: &str) -> Value {
        let (status, hook) = self
            .call(
                reqwest::Method::POST,
                "/v1/webhooks",
                Some(json!({"url": url, "events": events, "secret": secret})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{hook}");
        hook
    }
}

/// A registry holding a VIP connector for `base_url` that reads content from `store`.
pub fn registry(base_url: &str, store: ContentStore) -> Registry {
    let config = VipConfig {
        base_url: base_url.to_owned(),
        client_id_env: "VIP_CLIENT_ID".to_owned(),
        client_secret_env: "VIP_CLIENT_SECRET".to_owned(),
        scope: "distribution.read distribution.write".to_owned(),
        timeout: Duration::from_secs(10),
    };
    let credentials = VipCredentials {
        client_id: Secret::new(SANDBOX_CLIENT_ID),
        client_secret: Secret::new(SANDBOX_CLIENT_SECRET),
    };
    let connector = VipConnector::new(&config, credentials)
        .unwrap()
        .with_content(store);
    let mut registry = Registry::new();
    registry.register(Arc::new(connector));
    registry
}

/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    /// `X-Signature`.
    pub signature: Option<String>,
    /// The raw body.
    pub body: Bytes,
    /// The status it was answered with.
    pub status: u16,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A webhook endpoint on loopback that records every request, answering the first
/// `fail_first` with 500.
pub struct Receiver {
    pub url: String,
    requests: mpsc::UnboundedReceiver<Received>,
    _server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Listens on a free port.
    pub async fn start(fail_first: usize) -> Self {
        let (sender, requests) = mpsc::unbounded_channel();
        let seen = Arc::new(Mutex::new(0_usize));
        let handler = move |headers: HeaderMap, body: Bytes| {
            let sender = sender.clone();
            let seen = seen.clone();
            async move {
                let count = {
                    let mut seen = seen.lock().unwrap();
                    *seen += 1;
                    *seen
                };
                let status = if count <= fail_first {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                };
                let signature = headers
                    .get("x-signature")
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned);
                let _ = sender.send(Received {
                    signature,
                    body,
                    status: status.as_u16(),
                });
                status
            }
        };
        let app = axum::Router::new().route("/api/v1/events/vip", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/api/v1/events/vip",
            listener.local_addr().unwrap()
        );
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            requests,
            _server: server,
        }
    }

    /// The next request, waiting at most ten seconds.
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(10), self.requests.recv())
            .await
            .expect("a webhook request within 10 s")
            .expect("the receiver runs")
    }

    /// Requests until one of each type in `types` was answered 2xx (in any order);
    /// returns the accepted ones by type.
    pub async fn accepted(&mut self, types: &[&str]) -> Vec<Received> {
        let mut found: Vec<Option<Received>> = vec![None; types.len()];
        while found.iter().any(Option::is_none) {
            let received = self.next().await;
            if received.status >= 300 {
                continue;
            }
            let kind = received.json()["type"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if let Some(slot) = types
                .iter()
                .zip(found.iter_mut())
                .find(|(wanted, slot)| **wanted == kind && slot.is_none())
                .map(|(_, slot)| slot)
            {
                *slot = Some(received);
            }
        }
        found.into_iter().map(Option::unwrap).collect()
    }
}
