//! The hub's library entries (`trading_grid.put_library_entry`, `list_library_entries`)
//! against the Trading Grid simulator over real HTTP, and the partner's view of them.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use gridflow_connectors::Registry;
use gridflow_connectors::config::TradingGridConfig;
use gridflow_connectors::http::Secret;
use gridflow_connectors::simulator::trading_grid::{PARTNER_LOGIN_HEADER, SANDBOX_COMPANY_ID};
use gridflow_connectors::simulator::{self, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SimOptions};
use gridflow_connectors::trading_grid::{TradingGridConnector, TradingGridCredentials};
use serde_json::{Value, json};
use support::{assert_error, invoke};

const COMMUNITY: &str = "cmty-aurora-partners";

fn registry(base_url: &str) -> Registry {
    let config = TradingGridConfig {
        base_url: base_url.to_owned(),
        company_id: SANDBOX_COMPANY_ID.to_owned(),
        client_id_env: "TG_CONSUMER_KEY".to_owned(),
        client_secret_env: "TG_CONSUMER_SECRET".to_owned(),
        timeout: Duration::from_secs(10),
        poll_interval: Duration::from_secs(60),
    };
    let credentials = TradingGridCredentials {
        client_id: Secret::new(SANDBOX_CLIENT_ID),
        client_secret: Secret::new(SANDBOX_CLIENT_SECRET),
    };
    let mut registry = Registry::new();
    registry.register(Arc::new(
        TradingGridConnector::new(&config, credentials).unwrap(),
    ));
    registry
}

fn entry(asset_id: &str, language: &str, partners: &[&str]) -> Value {
    json!({"community_id": COMMUNITY, "entry_id": format!("otmm-{asset_id}"),
           "source": {"system": "otmm", "asset_id": asset_id}, "title": "Citrus Spritz can",
           "status": "approved", "language": language, "market": "US", "region": "US-Northeast",
           "expires_at": null, "partner_company_ids": partners})
}

#[tokio::test]
async fn an_entry_moves_its_revision_only_when_its_metadata_changes() {
    let simulator = simulator::trading_grid::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    let put = "trading_grid.put_library_entry";
    let first = invoke(
        &registry,
        put,
        entry("a1", "en-US", &["GC00912345AB"]),
        "p1",
    )
    .await
    .unwrap();
    assert_eq!(
        (first["revision"].clone(), first["changed"].clone()),
        (json!(1), json!(true))
    );
    let same = invoke(
        &registry,
        put,
        entry("a1", "en-US", &["GC00912345AB"]),
        "p2",
    )
    .await
    .unwrap();
    assert_eq!(
        (same["revision"].clone(), same["changed"].clone()),
        (json!(1), json!(false))
    );
    let changed = invoke(
        &registry,
        put,
        entry("a1", "fr-CA", &["GC00955577EF"]),
        "p3",
    )
    .await
    .unwrap();
    assert_eq!(
        (changed["revision"].clone(), changed["language"].clone()),
        (json!(2), json!("fr-CA"))
    );
    // Only the two puts that changed something took effect.
    let puts = simulator
        .effects()
        .iter()
        .filter(|effect| effect.action == "library.entry_put")
        .count();
    assert_eq!(puts, 2);
    invoke(&registry, put, entry("a2", "en-US", &[]), "p4")
        .await
        .unwrap();

    let list = "trading_grid.list_library_entries";
    let named = invoke(
        &registry,
        list,
        json!({"community_id": COMMUNITY, "entry_ids": ["otmm-a2", "otmm-nope"]}),
        "l1",
    )
    .await
    .unwrap();
    let ids: Vec<&str> = named["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["entry_id"].as_str())
        .collect();
    assert_eq!(ids, ["otmm-a2"]);
    let none = invoke(
        &registry,
        list,
        json!({"community_id": COMMUNITY, "entry_ids": []}),
        "l2",
    )
    .await
    .unwrap();
    assert_eq!(none["entries"], json!([]));
    // Paged in entry id order, the two seeded entries among them.
    let page = invoke(
        &registry,
        list,
        json!({"community_id": COMMUNITY, "limit": 3}),
        "l3",
    )
    .await
    .unwrap();
    let ids: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["entry_id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "otmm-9ed42740029b6e29a4b2cc5caceaf2b5aa27c9c0",
            "otmm-a1",
            "otmm-a2"
        ]
    );
    assert_eq!(page["next_cursor"], "3");
    let last = invoke(
        &registry,
        list,
        json!({"community_id": COMMUNITY, "limit": 3, "cursor": "3"}),
        "l4",
    )
    .await
    .unwrap();
    assert_eq!(last["entries"].as_array().map(Vec::len), Some(1));
    assert_eq!(last["next_cursor"], Value::Null);

    // The partner sees the entries assigned to its company.
    let seen: Value = reqwest::Client::new()
        .get(format!("{}/partner/v1/library", simulator.base_url()))
        .header(PARTNER_LOGIN_HEADER, "buyer@atlanticws.example")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mine: Vec<&str> = seen["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["entry_id"].as_str())
        .collect();
    assert_eq!(
        mine,
        ["otmm-9ed42740029b6e29a4b2cc5caceaf2b5aa27c9c0", "otmm-a1"],
        "{seen}"
    );
    assert_eq!(seen["entries"][1]["language"], "fr-CA");
    simulator.shutdown().await;
}

#[tokio::test]
async fn an_entry_for_an_unknown_company_is_refused() {
    let simulator = simulator::trading_grid::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    assert_error(
        invoke(
            &registry,
            "trading_grid.put_library_entry",
            entry("a1", "en-US", &["GC-NOPE"]),
            "p1",
        )
        .await,
        false,
        "not_found",
        "unknown company",
    );
    assert!(simulator.effects().is_empty());
    simulator.shutdown().await;
}
