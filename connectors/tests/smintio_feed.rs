//! The Smint.io change feed against its simulator over real HTTP: the first read starts
//! from now, licence and asset edits come as `licence_changed` and `asset_changed` with
//! the asset's licence window (and the same observed rights from `event_effects`), pages
//! follow the continuation, the cursor resumes in a new connector and across a simulator
//! restart, and a 5xx is a retryable error.

// Helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use gridflow_connectors::Connector;
use gridflow_connectors::config::SmintioConfig;
use gridflow_connectors::effects::ObservedRights;
use gridflow_connectors::feed::SharedFeed;
use gridflow_connectors::http::Secret;
use gridflow_connectors::simulator::smintio::{API_ROOT, SANDBOX_REFRESH_TOKEN};
use gridflow_connectors::simulator::{
    self, Fault, FaultRule, RunningSimulator, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SimOptions,
};
use gridflow_connectors::smintio::{SmintioConnector, SmintioCredentials};
use serde_json::{Value, json};

const CURRENT: &str = "5e0c1a2b-3c4d-4e5f-8a6b-7c8d9e0f0001";
const EXPIRED: &str = "5e0c1a2b-3c4d-4e5f-8a6b-7c8d9e0f0002";
const RESTRICTED: &str = "5e0c1a2b-3c4d-4e5f-8a6b-7c8d9e0f0003";

fn connector(base_url: &str) -> Arc<SmintioConnector> {
    let config = SmintioConfig {
        base_url: format!("{base_url}{API_ROOT}"),
        identity_url: base_url.to_owned(),
        client_id_env: "SMINTIO_CLIENT_ID".to_owned(),
        client_secret_env: "SMINTIO_CLIENT_SECRET".to_owned(),
        refresh_token_env: "SMINTIO_REFRESH_TOKEN".to_owned(),
        timeout: Duration::from_secs(10),
        poll_interval: Duration::from_millis(1500),
    };
    let credentials = SmintioCredentials {
        client_id: Secret::new(SANDBOX_CLIENT_ID),
        client_secret: Secret::new(SANDBOX_CLIENT_SECRET),
        refresh_token: Secret::new(SANDBOX_REFRESH_TOKEN),
    };
    Arc::new(SmintioConnector::new(&config, credentials).unwrap())
}

fn feed(connector: &Arc<SmintioConnector>) -> SharedFeed {
    Arc::clone(connector)
        .change_feed()
        .expect("smintio has a change feed")
}

/// Replaces the licence terms of `asset` with one term valid `from` … `until`.
async fn change_licence(simulator: &RunningSimulator, asset: &str, from: &str, until: &str) {
    let terms = json!([{"sequence_number": 1, "name": [{"culture": "en", "value": "Extended licence"}],
                        "restricted_geographies": [], "valid_from": from, "valid_until": until}]);
    let response = reqwest::Client::new()
        .put(format!(
            "{}/_sim/smintio/assets/{asset}/license-terms",
            simulator.base_url()
        ))
        .json(&terms)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// Renames `asset` (an edit of its content, not its licence).
async fn rename(simulator: &RunningSimulator, asset: &str, name: &str) {
    let response = reqwest::Client::new()
        .patch(format!(
            "{}/_sim/smintio/assets/{asset}",
            simulator.base_url()
        ))
        .json(&json!({"name": [{"culture": "en", "value": name}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

fn kinds_and_assets(page: &gridflow_connectors::feed::FeedPage) -> Vec<(String, Value)> {
    page.changes
        .iter()
        .map(|change| (change.kind.clone(), change.data["asset_id"].clone()))
        .collect()
}

#[tokio::test]
async fn a_licence_change_is_a_licence_changed_event_with_the_new_window() {
    let simulator = simulator::smintio::start(SimOptions::in_memory())
        .await
        .unwrap();
    let connector = connector(&simulator.base_url());
    let feed = feed(&connector);
    assert_eq!(feed.source(), "smintio");
    assert_eq!(feed.poll_interval(), Duration::from_millis(1500));
    let baseline = feed.changes(None, 10).await.unwrap();
    assert!(baseline.changes.is_empty(), "the past is not replayed");
    assert!(!baseline.more);
    let nothing = feed.changes(Some(&baseline.cursor), 10).await.unwrap();
    assert!(nothing.changes.is_empty(), "nothing changed since");

    change_licence(
        &simulator,
        CURRENT,
        "2026-02-01T00:00:00Z",
        "2026-06-30T23:59:59Z",
    )
    .await;
    rename(&simulator, EXPIRED, "Winter market, night").await;
    let page = feed.changes(Some(&baseline.cursor), 10).await.unwrap();
    assert_eq!(
        kinds_and_assets(&page),
        [
            ("licence_changed".to_owned(), json!(CURRENT)),
            ("asset_changed".to_owned(), json!(EXPIRED))
        ],
        "one event per edit, in order, of the kind the edit was"
    );
    let licence = &page.changes[0];
    let window = json!({"system": "smintio", "asset_id": CURRENT,
                        "valid_from": "2026-02-01T00:00:00Z", "valid_until": "2026-06-30T23:59:59Z"});
    assert_eq!(licence.data["observed_rights"], json!([window.clone()]));
    assert_eq!(
        licence.data["rights"]["valid_until"],
        "2026-06-30T23:59:59Z"
    );
    assert_eq!(licence.id, format!("{CURRENT}@2/licence_changed"));
    assert_eq!(licence.data["change_id"], licence.id.as_str());
    let effects = connector.event_effects("licence_changed", &licence.data);
    assert_eq!(
        effects.rights,
        vec![serde_json::from_value::<ObservedRights>(window).unwrap()]
    );
    assert!(effects.ledger.is_empty());
    assert_eq!(page.changes[1].data["name"], "Winter market, night");
    assert_eq!(
        connector
            .event_effects("asset_changed", &page.changes[1].data)
            .rights[0]
            .asset_id,
        EXPIRED,
        "an asset change reports the window too"
    );
    assert_eq!(
        page.changes.last().unwrap().cursor,
        page.cursor,
        "the last change resumes after the page"
    );
    assert!(!page.more);

    // Each event's payload fits the schema the catalogue declares.
    for change in &page.changes {
        let spec = connector
            .events()
            .iter()
            .find(|spec| spec.name == change.kind)
            .unwrap();
        assert!(spec.effects.rights, "{} reports observed rights", spec.name);
        let schema = jsonschema::draft202012::options()
            .build(&spec.payload)
            .unwrap();
        assert!(
            schema.is_valid(&change.data),
            "{}: {}",
            change.kind,
            change.data
        );
    }
    let again = feed.changes(Some(&page.cursor), 10).await.unwrap();
    assert!(again.changes.is_empty(), "each change once");
    simulator.shutdown().await;
}

#[tokio::test]
async fn pages_follow_the_continuation_and_a_new_connector_resumes_from_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("smintio.json");
    let simulator = simulator::smintio::start(SimOptions::persisted(&state_file))
        .await
        .unwrap();
    let first = connector(&simulator.base_url());
    let baseline = feed(&first).changes(None, 10).await.unwrap();
    rename(&simulator, CURRENT, "one").await;
    rename(&simulator, EXPIRED, "two").await;
    rename(&simulator, RESTRICTED, "three").await;

    let page = feed(&first)
        .changes(Some(&baseline.cursor), 2)
        .await
        .unwrap();
    assert_eq!(page.changes.len(), 2);
    assert!(page.more, "a full page: more may be waiting");
    assert_eq!(
        page.changes[0].cursor, baseline.cursor,
        "a change inside a page resumes from its start"
    );
    assert_eq!(page.changes[1].cursor, page.cursor);
    simulator.shutdown().await;

    // The connector and the simulator restart; the saved cursor goes on where it was.
    let simulator = simulator::smintio::start(SimOptions::persisted(&state_file))
        .await
        .unwrap();
    let second = connector(&simulator.base_url());
    let rest = feed(&second).changes(Some(&page.cursor), 2).await.unwrap();
    assert_eq!(
        kinds_and_assets(&rest),
        [("asset_changed".to_owned(), json!(RESTRICTED))]
    );
    assert_eq!(rest.changes[0].data["name"], "three");
    assert!(!rest.more);
    rename(&simulator, CURRENT, "four").await;
    let next = feed(&second).changes(Some(&rest.cursor), 2).await.unwrap();
    assert_eq!(
        kinds_and_assets(&next),
        [("asset_changed".to_owned(), json!(CURRENT))]
    );
    assert_eq!(next.changes[0].id, format!("{CURRENT}@3/asset_changed"));

    // get_asset reads the latest state of an asset that changed.
    let asset = second
        .invoke(gridflow_connectors::Invocation::new(
            "get_asset",
            json!({"asset_id": CURRENT}),
            gridflow_core::InstanceId::from("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
            gridflow_core::StepId::from("read"),
            None,
            1,
        ))
        .await
        .unwrap();
    assert_eq!(asset["name"], "four");
    simulator.shutdown().await;
}

#[tokio::test]
async fn a_server_error_on_the_feed_is_retryable_and_the_next_read_goes_on() {
    let simulator = simulator::smintio::start(SimOptions::in_memory())
        .await
        .unwrap();
    let connector = connector(&simulator.base_url());
    let feed = feed(&connector);
    let baseline = feed.changes(None, 10).await.unwrap();
    change_licence(
        &simulator,
        RESTRICTED,
        "2026-03-01T00:00:00Z",
        "2026-04-30T23:59:59Z",
    )
    .await;

    let sync_path = format!("{API_ROOT}/assets/license-purchase-transactions/for-sync");
    simulator
        .faults()
        .push(FaultRule::on(Fault::ServerError, "GET", &sync_path));
    let error = feed.changes(Some(&baseline.cursor), 10).await.unwrap_err();
    assert!(
        error.is_retryable(),
        "a 5xx is retried by the poller: {error}"
    );
    assert_eq!(error.code(), "server_error");
    simulator
        .faults()
        .push(FaultRule::on(Fault::Drop, "GET", &sync_path));
    assert!(
        feed.changes(Some(&baseline.cursor), 10)
            .await
            .unwrap_err()
            .is_retryable()
    );
    assert!(
        simulator.faults().plan().queue.is_empty(),
        "the faults hit the feed"
    );

    let page = feed.changes(Some(&baseline.cursor), 10).await.unwrap();
    assert_eq!(
        kinds_and_assets(&page),
        [("licence_changed".to_owned(), json!(RESTRICTED))]
    );
    simulator.shutdown().await;
}
