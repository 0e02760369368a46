//! The signal index on every backend (issue 12, item 8): a signal finds the instances
//! waiting for it through `signal_wait` rows written with their state, not by reading
//! every unfinished instance.
//!
//! - Among many instances waiting with `correlate: event.partner_id == input.partner_id`,
//!   a signal reaches exactly the one of its partner; a wait without `correlate` gets it
//!   by name; a `correlate` of another shape is found by name and decided by the machine.
//! - The rows follow the waits: gone once a wait ends (taken, or the instance cancelled),
//!   and still there for a new engine on the same database.

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::ensure;
use serde_json::{Value, json};

use gridflow_core::{DefinitionId, InstanceId, InstanceStatus};
use gridflow_runtime::{Engine, EngineOptions, SystemClock};
use gridflow_store::SignalWaitStore;
use gridflow_store::sql::{SqlOptions, SqlStore};
use gridflow_tests::{assert_replay_matches, engine_on, on_every_database, wait_for_status};

const CORRELATED: &str = "id: partner-ack\nsteps:\n  - id: ack\n    wait: {signal: partner.ack, correlate: \"${event.partner_id == input.partner_id}\"}\n  - id: done\n    needs: [ack]\n    action: core.noop\n";
const PLAIN: &str = "id: any-ack\nsteps:\n  - id: ack\n    wait: {signal: partner.ack}\n";
const OTHER_SHAPE: &str = "id: urgent-ack\nsteps:\n  - id: ack\n    wait: {signal: partner.ack, correlate: \"${event.partner_id == input.partner_id && event.urgent}\"}\n";

async fn start(engine: &Engine, definition: &str, input: Value) -> anyhow::Result<InstanceId> {
    Ok(engine
        .start_instance(&DefinitionId::from(definition), None, input, "tester")
        .await?)
}

async fn deliver(engine: &Engine, payload: Value) -> anyhow::Result<BTreeSet<InstanceId>> {
    Ok(engine
        .signal_matching("partner.ack", &payload, "webhook")
        .await?
        .into_iter()
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correlated_signal_reaches_only_its_instance_and_a_plain_wait_gets_it_by_name()
-> anyhow::Result<()> {
    on_every_database(async |url: String| {
        let engine = engine_on(&url, Arc::new(SystemClock), EngineOptions::default()).await?;
        for yaml in [CORRELATED, PLAIN, OTHER_SHAPE] {
            engine.deploy(yaml).await?;
        }
        let mut partners = Vec::new();
        for n in 0..30 {
            partners.push(
                start(
                    &engine,
                    "partner-ack",
                    json!({"partner_id": format!("p-{n}")}),
                )
                .await?,
            );
        }
        let plain = start(&engine, "any-ack", json!({})).await?;
        let urgent = start(&engine, "urgent-ack", json!({"partner_id": "p-7"})).await?;
        for id in partners.iter().chain([&plain, &urgent]) {
            wait_for_status(&engine, id, InstanceStatus::Waiting).await?;
        }

        // p-7's instance and the plain wait take it; the other shape is asked and refuses
        // (not urgent); no other partner's instance is touched.
        let delivered = deliver(&engine, json!({"partner_id": "p-7", "urgent": false})).await?;
        ensure!(
            delivered == BTreeSet::from([partners[7].clone(), plain.clone()]),
            "delivered to {delivered:?}"
        );
        wait_for_status(&engine, &partners[7], InstanceStatus::Completed).await?;
        wait_for_status(&engine, &plain, InstanceStatus::Completed).await?;
        for (n, id) in partners.iter().enumerate().filter(|(n, _)| *n != 7) {
            let status = engine.instance(id).await?.status;
            ensure!(status == InstanceStatus::Waiting, "p-{n} is {status}");
        }
        ensure!(engine.instance(&urgent).await?.status == InstanceStatus::Waiting);

        // The other shape is decided by its whole condition.
        let delivered = deliver(&engine, json!({"partner_id": "p-7", "urgent": true})).await?;
        ensure!(
            delivered == BTreeSet::from([urgent.clone()]),
            "{delivered:?}"
        );
        // A payload without the key reaches only unkeyed waits (none are left).
        ensure!(deliver(&engine, json!({"other": 1})).await?.is_empty());
        // A number where a string is waited for is another key.
        ensure!(
            deliver(&engine, json!({"partner_id": 12}))
                .await?
                .is_empty()
        );

        // A cancelled instance's wait leaves the index.
        engine.cancel(&partners[3], None, "tester").await?;
        ensure!(
            deliver(&engine, json!({"partner_id": "p-3"}))
                .await?
                .is_empty()
        );
        let store = SqlStore::connect(&url, SqlOptions::default()).await?;
        let rows = store.signal_waits("partner.ack", &[]).await?;
        ensure!(rows.is_empty(), "no unkeyed waits left: {rows:?}");
        let keyed = gridflow_store::SignalKey {
            path: "partner_id".to_owned(),
            value: "\"p-3\"".to_owned(),
        };
        ensure!(
            store
                .signal_waits("partner.ack", &[keyed])
                .await?
                .is_empty()
        );

        // A new engine on the same database (as after a restart) finds the waits.
        drop(engine);
        let engine = engine_on(&url, Arc::new(SystemClock), EngineOptions::default()).await?;
        let delivered = deliver(&engine, json!({"partner_id": "p-21"})).await?;
        ensure!(
            delivered == BTreeSet::from([partners[21].clone()]),
            "{delivered:?}"
        );
        wait_for_status(&engine, &partners[21], InstanceStatus::Completed).await?;

        for id in partners.iter().chain([&plain, &urgent]) {
            assert_replay_matches(&engine, id).await?;
        }
        Ok(())
    })
    .await
}
