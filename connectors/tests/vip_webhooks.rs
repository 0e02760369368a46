//! VIP's webhooks against its simulator over real HTTP: subscriptions, every event signed
//! with `X-Signature` (recomputed here), read by the connector as its gridflow event with
//! the ledger changes it means, retries of refused deliveries, and the sandbox's
//! subscription.

// Helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod vip_support;

use axum::http::StatusCode;
use gridflow_connectors::Connector;
use gridflow_connectors::config::Config;
use gridflow_connectors::effects::{DeliveryStatus, LedgerChange};
use gridflow_connectors::http::Secret;
use gridflow_connectors::sandbox::Sandbox;
use gridflow_connectors::simulator::{Fault, FaultRule};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use vip_support::{Received, Receiver, Vip};

const SECRET: &str = "whsec-test-3f9a1c";

const ALL: [&str; 8] = [
    "package.published",
    "package.withdrawn",
    "delivery.delivered",
    "delivery.downloaded",
    "delivery.acknowledged",
    "delivery.failed",
    "delivery.superseded",
    "delivery.revoked",
];

/// `sha256=<hex HMAC-SHA256 of body under secret>`, computed here independently.
fn expected_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2_hmac::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn connector(vip: &Vip) -> std::sync::Arc<dyn Connector> {
    vip.registry.action("vip.get_package").unwrap().0.clone()
}

/// Checks the signature, reads the body as the connector does, checks the payload
/// against the event's schema and that no credential is in it; returns the event.
fn read(vip: &Vip, received: &Received) -> gridflow_connectors::connector::InboundEvent {
    assert_eq!(
        received.signature.as_deref(),
        Some(expected_signature(SECRET, &received.body).as_str()),
        "signed with the subscription's secret"
    );
    let text = String::from_utf8(received.body.to_vec()).unwrap();
    vip.assert_no_credentials(&text);
    assert!(
        !text.contains(SECRET),
        "the webhook secret is never sent: {text}"
    );
    assert!(!text.contains("http"), "no link in an event: {text}");
    let connector = connector(vip);
    let event = connector.read_webhook(&received.json()).unwrap().unwrap();
    let spec = connector
        .events()
        .iter()
        .find(|spec| spec.name == event.name)
        .unwrap_or_else(|| panic!("{} is in the catalogue", event.name));
    let validator = jsonschema::draft202012::new(&spec.payload).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&event.payload)
        .map(|error| error.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{}: {errors:?}\n{}",
        event.name,
        event.payload
    );
    event
}

/// The one status change an event means.
fn status_of(
    vip: &Vip,
    event: &gridflow_connectors::connector::InboundEvent,
) -> gridflow_connectors::effects::StatusChange {
    let effects = connector(vip).event_effects(&event.name, &event.payload);
    match effects.ledger.as_slice() {
        [LedgerChange::Status(change)] => change.clone(),
        other => panic!("{}: one status change, not {other:?}", event.name),
    }
}

#[tokio::test]
async fn subscriptions_are_checked_listed_and_deleted_without_their_secret() {
    let vip = Vip::start().await;
    for (body, field) in [
        (
            json!({"url": "ftp://x.example/hook", "events": ["package.published"], "secret": "s"}),
            "url",
        ),
        (
            json!({"url": "http://x.example/hook", "events": [], "secret": "s"}),
            "events",
        ),
        (
            json!({"url": "http://x.example/hook", "events": ["package.sold"], "secret": "s"}),
            "events",
        ),
        (
            json!({"url": "http://x.example/hook", "events": ["package.published"]}),
            "secret",
        ),
    ] {
        let (status, problem) = vip
            .call(Method::POST, "/v1/webhooks", Some(body), None)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    vip.simulator
        .faults()
        .push(FaultRule::on(Fault::ServerError, "POST", "/v1/webhooks"));
    let body =
        json!({"url": "http://x.example/hook", "events": ["package.published"], "secret": SECRET});
    let (status, _) = vip
        .call(Method::POST, "/v1/webhooks", Some(body), None)
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (_, listed) = vip.call(Method::GET, "/v1/webhooks", None, None).await;
    assert_eq!(
        listed["data"],
        json!([]),
        "a refused request subscribes nothing"
    );

    let hook = vip
        .subscribe("http://x.example/hook", &["package.published"], SECRET)
        .await;
    let id = hook["id"].as_str().unwrap();
    let (_, listed) = vip.call(Method::GET, "/v1/webhooks", None, None).await;
    let (status, one) = vip
        .call(Method::GET, &format!("/v1/webhooks/{id}"), None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    for shown in [&hook, &listed, &one] {
        assert!(!shown.to_string().contains(SECRET), "{shown}");
    }
    assert_eq!(listed["data"][0]["id"], id);
    assert_eq!(one["events"], json!(["package.published"]));
    let (status, _) = vip
        .call(Method::DELETE, &format!("/v1/webhooks/{id}"), None, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, problem) = vip
        .call(Method::GET, &format!("/v1/webhooks/{id}"), None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(problem["detail"].as_str().unwrap().contains(id));
    let unauthenticated = reqwest::get(format!("{}/v1/webhooks", vip.simulator.base_url()))
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    vip.simulator.shutdown().await;
}

#[tokio::test]
async fn every_event_is_signed_and_read_with_the_ledger_change_it_means() {
    let vip = Vip::start().await;
    let mut receiver = Receiver::start(0).await;
    let mut downloads_only = Receiver::start(0).await;
    vip.subscribe(&receiver.url, &ALL, SECRET).await;
    vip.subscribe(&downloads_only.url, &["delivery.downloaded"], SECRET)
        .await;

    let v1 = vip.artifact("a-1", "1", b"v1", "one.png").await;
    let published = vip
        .invoke("publish_content", json!({"title": "Events", "content": [v1],
            "recipients": {"group_ids": ["grp-key-retailers"], "recipient_ids": ["rcp-lakeside-market"]}}), "publish")
        .await
        .unwrap();
    let package_id = published["package_id"].as_str().unwrap().to_owned();
    let delivery = |recipient: &str| {
        published["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|delivery| delivery["recipient_id"] == recipient)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (metro, harbor, lakeside) = (
        delivery("rcp-metro-fresh"),
        delivery("rcp-harbor-liquors"),
        delivery("rcp-lakeside-market"),
    );
    let [package, delivered, failed] = receiver
        .accepted(&["package.published", "delivery.delivered", "delivery.failed"])
        .await
        .try_into()
        .unwrap();
    let package = read(&vip, &package);
    assert_eq!(package.name, "package_published");
    assert_eq!(package.payload["package_id"], package_id.as_str());
    assert_eq!(package.payload["delivery_ids"].as_array().unwrap().len(), 3);
    assert!(
        connector(&vip)
            .event_effects(&package.name, &package.payload)
            .ledger
            .is_empty()
    );
    let delivered = read(&vip, &delivered);
    assert!(
        connector(&vip)
            .event_effects(&delivered.name, &delivered.payload)
            .ledger
            .is_empty()
    );
    let failed = read(&vip, &failed);
    let change = status_of(&vip, &failed);
    assert_eq!(
        (change.status, change.receipt.as_deref()),
        (DeliveryStatus::Failed, Some(lakeside.as_str()))
    );

    assert_eq!(
        vip.download(&metro, "rcp-metro-fresh").await.0,
        StatusCode::OK
    );
    let [downloaded] = receiver
        .accepted(&["delivery.downloaded"])
        .await
        .try_into()
        .unwrap();
    let downloaded = read(&vip, &downloaded);
    let change = status_of(&vip, &downloaded);
    assert_eq!(change.status, DeliveryStatus::Downloaded);
    assert_eq!(
        (change.channel.as_str(), change.reference.as_str()),
        ("vip", package_id.as_str())
    );
    assert_eq!(
        (change.receipt.as_deref(), change.partner.as_deref()),
        (Some(metro.as_str()), Some("rcp-metro-fresh"))
    );
    let at = vip.delivery(&package_id, &metro).await["downloaded_at"].clone();
    assert_eq!(
        change.at.unwrap(),
        chrono::DateTime::parse_from_rfc3339(at.as_str().unwrap()).unwrap()
    );
    let only = downloads_only.next().await;
    assert_eq!(
        only.json()["type"],
        "delivery.downloaded",
        "a subscription gets its types only"
    );

    vip.invoke(
        "acknowledge_delivery",
        json!({"delivery_id": metro, "by": "buyer@metrofresh.example"}),
        "ack",
    )
    .await
    .unwrap();
    vip.invoke(
        "revoke_delivery",
        json!({"delivery_id": harbor, "reason": "wrong market"}),
        "revoke",
    )
    .await
    .unwrap();
    let v2 = vip.artifact("a-1", "2", b"v2", "one.png").await;
    vip.invoke(
        "replace_package_content",
        json!({"package_id": package_id, "content": [v2]}),
        "replace",
    )
    .await
    .unwrap();
    vip.invoke(
        "withdraw_package",
        json!({"package_id": package_id, "reason": "licence ended"}),
        "withdraw",
    )
    .await
    .unwrap();
    let [acknowledged, revoked, superseded, withdrawn] = receiver
        .accepted(&[
            "delivery.acknowledged",
            "delivery.revoked",
            "delivery.superseded",
            "package.withdrawn",
        ])
        .await
        .try_into()
        .unwrap();
    let expectations = [
        (
            acknowledged,
            DeliveryStatus::Acknowledged,
            Some(metro.clone()),
        ),
        (revoked, DeliveryStatus::Withdrawn, Some(harbor.clone())),
        (superseded, DeliveryStatus::Superseded, Some(metro.clone())),
        (withdrawn, DeliveryStatus::Withdrawn, None),
    ];
    for (received, status, receipt) in expectations {
        let event = read(&vip, &received);
        let change = status_of(&vip, &event);
        assert_eq!(
            (change.status, change.receipt),
            (status, receipt),
            "{}",
            event.name
        );
        assert_eq!(change.reference, package_id);
        assert!(change.at.is_some(), "{}", event.name);
    }
    vip.simulator.shutdown().await;
}

#[tokio::test]
async fn refused_deliveries_are_retried_with_the_same_signed_body() {
    let vip = Vip::start().await;
    let mut receiver = Receiver::start(2).await;
    vip.subscribe(
        &receiver.url,
        &["delivery.acknowledged", "delivery.revoked"],
        SECRET,
    )
    .await;
    vip.invoke(
        "acknowledge_delivery",
        json!({"delivery_id": "dlv-00002", "by": "x@atlanticws.example"}),
        "ack",
    )
    .await
    .unwrap();
    let attempts = [
        receiver.next().await,
        receiver.next().await,
        receiver.next().await,
    ];
    let statuses: Vec<u16> = attempts.iter().map(|attempt| attempt.status).collect();
    assert_eq!(statuses, [500, 500, 204]);
    for attempt in &attempts[1..] {
        assert_eq!(
            attempt.body, attempts[0].body,
            "the same event, the same id"
        );
        assert_eq!(attempt.signature, attempts[0].signature);
    }
    assert_eq!(read(&vip, &attempts[2]).name, "delivery_acknowledged");

    // A replayed request and a refused one send nothing; the next change does.
    vip.invoke(
        "acknowledge_delivery",
        json!({"delivery_id": "dlv-00002", "by": "x@atlanticws.example"}),
        "ack",
    )
    .await
    .unwrap();
    vip.invoke(
        "revoke_delivery",
        json!({"delivery_id": "dlv-00002"}),
        "revoke",
    )
    .await
    .unwrap();
    vip_support::assert_error(
        vip.invoke(
            "acknowledge_delivery",
            json!({"delivery_id": "dlv-00002", "by": "y"}),
            "late",
        )
        .await,
        false,
        "conflict",
        "revoked",
    );
    vip.invoke(
        "revoke_delivery",
        json!({"delivery_id": "dlv-00001"}),
        "revoke-other",
    )
    .await
    .unwrap();
    let mut kinds = Vec::new();
    while kinds
        .iter()
        .filter(|kind| *kind == "delivery.revoked")
        .count()
        < 2
    {
        kinds.push(
            receiver.next().await.json()["type"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(kinds, ["delivery.revoked", "delivery.revoked"]);
    vip.simulator.shutdown().await;
}

#[tokio::test]
async fn the_sandbox_subscribes_gridflow_to_vip_once() {
    let sandbox = Sandbox::start(None).await.unwrap();
    let mut receiver = Receiver::start(0).await;
    let events_url = receiver.url.trim_end_matches("/vip").to_owned();
    let secret = Secret::new(SECRET);
    sandbox
        .subscribe_vip("http://127.0.0.1:9/api/v1/events", &secret)
        .await
        .unwrap();
    sandbox.subscribe_vip(&events_url, &secret).await.unwrap();

    let base_url = sandbox.simulator("vip").unwrap().base_url();
    let registry = {
        let mut registry = gridflow_connectors::Registry::new();
        for connector in sandbox.connectors(&Config::default()).unwrap() {
            registry.register(connector);
        }
        registry
    };
    let token = reqwest::Client::new()
        .post(format!("{base_url}/v1/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_id",
                gridflow_connectors::simulator::SANDBOX_CLIENT_ID,
            ),
            (
                "client_secret",
                gridflow_connectors::simulator::SANDBOX_CLIENT_SECRET,
            ),
        ])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let hooks: Value = reqwest::Client::new()
        .get(format!("{base_url}/v1/webhooks"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let urls: Vec<&str> = hooks["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hook| hook["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        [receiver.url.as_str()],
        "the earlier start's subscription is gone"
    );
    assert_eq!(
        hooks["data"][0]["events"].as_array().unwrap().len(),
        ALL.len()
    );

    vip_support::invoke(
        &registry,
        "vip.acknowledge_delivery",
        json!({"delivery_id": "dlv-00002", "by": "x@atlanticws.example"}),
        "ack",
    )
    .await
    .unwrap();
    let received = receiver.next().await;
    assert_eq!(
        received.signature.as_deref(),
        Some(expected_signature(SECRET, &received.body).as_str())
    );
    assert_eq!(received.json()["type"], "delivery.acknowledged");
    sandbox.shutdown().await;
}
