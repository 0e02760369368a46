//! The change feeds of OTMM and Trading Grid against their simulators over real HTTP: a
//! first read takes the position of now, later reads return each change once, in order,
//! with the cursor to resume after it, and a feed fault is a retryable error.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use gridflow_connectors::Registry;
use gridflow_connectors::config::Config;
use gridflow_connectors::feed::SharedFeed;
use gridflow_connectors::sandbox::Sandbox;
use gridflow_connectors::simulator::otmm::seeded_asset_id;
use gridflow_connectors::simulator::{Fault, FaultRule};
use serde_json::json;

use support::invoke;

async fn sandbox() -> (Sandbox, Registry) {
    let sandbox = Sandbox::start(None).await.unwrap();
    let mut registry = Registry::new();
    for connector in sandbox.connectors(&Config::default()).unwrap() {
        registry.register(connector);
    }
    (sandbox, registry)
}

fn feed(registry: &Registry, source: &str) -> SharedFeed {
    let (connector, _) = registry
        .connectors()
        .map(|connector| (connector.clone(), ()))
        .find(|(connector, _)| connector.name() == source)
        .unwrap();
    Arc::clone(&connector).change_feed().unwrap()
}

/// Edits seeded asset `number` (a latest version: 2, 3, 4…; asset 1 is version 1 of 2).
async fn edit(registry: &Registry, number: u64, region: &str, step: &str) {
    invoke(
        registry,
        "otmm.update_metadata",
        json!({"asset_id": seeded_asset_id(number), "fields": {"CUSTOM.FIELD.REGION": region}}),
        step,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn otmm_feed_returns_each_edit_once_after_its_cursor() {
    let (sandbox, registry) = sandbox().await;
    let otmm = feed(&registry, "otmm");
    assert_eq!(otmm.source(), "otmm");
    let baseline = otmm.changes(None, 10).await.unwrap();
    assert!(baseline.changes.is_empty(), "the past is not replayed");

    edit(&registry, 2, "EU-West", "edit-1").await;
    edit(&registry, 3, "US-East", "edit-2").await;
    let page = otmm.changes(Some(&baseline.cursor), 10).await.unwrap();
    let assets: Vec<_> = page
        .changes
        .iter()
        .map(|change| change.data["asset_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        assets,
        [seeded_asset_id(2), seeded_asset_id(3)],
        "oldest first"
    );
    assert!(
        page.changes
            .iter()
            .all(|change| change.kind == "asset_changed")
    );
    assert_eq!(
        page.changes[0].data["metadata"]["CUSTOM.FIELD.REGION"],
        "EU-West"
    );
    assert_eq!(page.cursor, page.changes[1].cursor);

    // Resuming after the first change returns the second only; after the page, nothing.
    let rest = otmm
        .changes(Some(&page.changes[0].cursor), 10)
        .await
        .unwrap();
    assert_eq!(rest.changes.len(), 1);
    assert_eq!(rest.changes[0].id, page.changes[1].id);
    let none = otmm.changes(Some(&page.cursor), 10).await.unwrap();
    assert!(none.changes.is_empty(), "{:?}", none.changes);

    // A page limit of one still moves through every change.
    edit(&registry, 2, "EU-Central", "edit-3").await;
    edit(&registry, 4, "APAC", "edit-4").await;
    let first = otmm.changes(Some(&page.cursor), 1).await.unwrap();
    assert_eq!((first.changes.len(), first.more), (1, true));
    let second = otmm.changes(Some(&first.cursor), 1).await.unwrap();
    assert_eq!(second.changes.len(), 1);
    assert_ne!(first.changes[0].id, second.changes[0].id);
    assert_eq!(second.changes[0].data["asset_id"], seeded_asset_id(4));

    assert!(
        otmm.changes(Some("17"), 10).await.is_err(),
        "a foreign cursor is refused"
    );
    sandbox
        .simulator("otmm")
        .unwrap()
        .faults()
        .push(FaultRule::any(Fault::ServerError));
    let error = otmm.changes(Some(&second.cursor), 10).await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn trading_grid_feed_returns_partner_events_once_after_its_cursor() {
    let (sandbox, registry) = sandbox().await;
    let hub = feed(&registry, "trading_grid");
    let baseline = hub.changes(None, 10).await.unwrap();
    assert!(baseline.changes.is_empty());

    let issue = invoke(
        &registry,
        "trading_grid.open_issue",
        json!({"title": "Label", "description": "Old label", "partner_company_id": "GC00933311CD", "severity": "low"}),
        "open",
    )
    .await
    .unwrap();
    invoke(
        &registry,
        "trading_grid.update_issue",
        json!({"issue_id": issue["issue_id"], "status": "resolved"}),
        "resolve",
    )
    .await
    .unwrap();
    let page = hub.changes(Some(&baseline.cursor), 10).await.unwrap();
    let kinds: Vec<&str> = page
        .changes
        .iter()
        .map(|change| change.kind.as_str())
        .collect();
    assert_eq!(kinds, ["issue_created", "issue_updated"]);
    assert_eq!(page.changes[1].data["status"], "resolved");
    assert_eq!(page.changes[1].data["issue_id"], issue["issue_id"]);
    assert_ne!(page.changes[0].id, page.changes[1].id);
    let rest = hub
        .changes(Some(&page.changes[0].cursor), 10)
        .await
        .unwrap();
    assert_eq!(rest.changes.len(), 1);
    assert!(
        hub.changes(Some(&page.cursor), 10)
            .await
            .unwrap()
            .changes
            .is_empty()
    );
    assert!(hub.changes(Some("not-a-number"), 10).await.is_err());
    sandbox.shutdown().await;
}
