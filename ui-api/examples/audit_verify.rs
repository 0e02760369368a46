//! Benchmark: how fast `verify` checks 100,000 events (10,000 instances of 10 events) in a
//! SQLite file, and how fast an export of them verifies offline.
//!
//! `cargo run --release -p gridflow --example audit_verify [-- INSTANCES EVENTS_PER_INSTANCE]`

// A benchmark prints its results.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::mpsc;

use gridflow_connectors::Registry;
use gridflow_core::audit::ExportVerifier;
use gridflow_core::history::{GENESIS_HASH, chain_hash};
use gridflow_core::{DefinitionId, InstanceId, InstanceStatus, RecordedEvent};
use gridflow_runtime::{Engine, EngineOptions, SystemClock};
use gridflow_store::{
    AuditFilter, Batch, BatchCommitter, InstanceRecord, InstanceWrite, SqlOptions, SqlStore,
};

fn history(instance: &InstanceId, length: u64, at: DateTime<Utc>) -> Vec<RecordedEvent> {
    let mut prev = GENESIS_HASH.to_owned();
    (1..=length)
        .map(|seq| {
            let data = json!({"step": format!("step-{}", seq % 4), "attempt": 1,
                "output": {"asset": "urn:asset:0001", "partner": "trading-grid"}});
            let hash = chain_hash(&prev, seq, "step_succeeded", at, "system", &data);
            RecordedEvent {
                instance_id: instance.clone(),
                seq,
                event_type: "step_succeeded".to_owned(),
                at,
                actor: "system".to_owned(),
                data,
                prev_hash: std::mem::replace(&mut prev, hash.clone()),
                hash,
            }
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let instances: usize = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(10_000);
    let per_instance: u64 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(10);
    let folder = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        folder.path().join("bench.db").display()
    );
    let store = SqlStore::connect(&url, SqlOptions::default()).await?;
    let at = DateTime::from_timestamp_micros(1_800_000_000_000_000).context("instant")?;

    let writing = Instant::now();
    let ids: Vec<InstanceId> = (0..instances)
        .map(|index| InstanceId::from(format!("instance-{index:08}")))
        .collect();
    for chunk in ids.chunks(500) {
        let mut batch = Batch::default();
        for id in chunk {
            let events = history(id, per_instance, at);
            let last = events.last().context("events")?;
            batch.instances.push(InstanceWrite {
                record: InstanceRecord {
                    id: id.clone(),
                    definition_id: DefinitionId::from("bench"),
                    definition_version: 1,
                    status: InstanceStatus::Completed,
                    state: json!({}),
                    input: json!({}),
                    output: None,
                    error: None,
                    created_at: at,
                    updated_at: at,
                    last_seq: last.seq,
                    snapshot_seq: last.seq,
                    last_hash: last.hash.clone(),
                    row_version: 1,
                },
                expected_row_version: None,
                events,
                snapshot: true,
            });
        }
        store.commit(&batch).await?;
    }
    let events = instances as u64 * per_instance;
    println!(
        "wrote {events} events of {instances} instances in {:.2?}",
        writing.elapsed()
    );

    let engine = Engine::start(
        Arc::new(store),
        Arc::new(Registry::with_builtin()),
        Arc::new(SystemClock),
        EngineOptions::default(),
    )
    .await?;
    engine.checkpoint().await?;

    let verifying = Instant::now();
    let report = engine.verify().await?;
    let elapsed = verifying.elapsed();
    anyhow::ensure!(report.ok && report.events == events, "{report:?}");
    println!(
        "verify: {events} events in {elapsed:.2?}: {:.0} events/s",
        events as f64 / elapsed.as_secs_f64()
    );

    let exporting = Instant::now();
    let (lines, mut receiver) = mpsc::channel(256);
    let exporter = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.export(&AuditFilter::default(), lines).await })
    };
    let mut verifier = ExportVerifier::new(Some(engine.audit_public_key()));
    let mut bytes = 0;
    while let Some(line) = receiver.recv().await {
        bytes += line.len();
        verifier.line(line.trim_end_matches('\n').as_bytes());
    }
    exporter.await??;
    let report = verifier.finish();
    let elapsed = exporting.elapsed();
    anyhow::ensure!(report.ok, "{:?}", report.problems.first());
    println!(
        "export + offline verify: {events} events ({} MB) in {elapsed:.2?}: {:.0} events/s",
        bytes / 1_000_000,
        events as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
