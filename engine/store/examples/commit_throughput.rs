//! Measures the group-commit path: `cargo run --release -p gridflow-store --example
//! commit_throughput -- [URL] [BATCHES] [INSTANCES_PER_BATCH] [normal]`.
//!
//! Without a URL it uses a new SQLite file in a temporary directory (synchronous=FULL, or
//! NORMAL with the last argument). Each batch writes `INSTANCES_PER_BATCH` instances with
//! three history events each, queues one work item per instance and removes the work
//! queued by the previous batch; the first half of the batches insert new instances, the
//! second half update them. This is a tool for a person, not a test.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;

use gridflow_core::history::{GENESIS_HASH, record_chain};
use gridflow_core::{Event, EventBody, InstanceId, InstanceStatus, RecordedEvent};
use gridflow_store::sql::SqliteSynchronous;
use gridflow_store::{
    Batch, BatchCommitter, InstanceRecord, InstanceWrite, SqlOptions, SqlStore, WorkItem,
};

fn events(id: &InstanceId, after: u64, prev_hash: &str, at: DateTime<Utc>) -> Vec<RecordedEvent> {
    let bodies = [
        EventBody::StepSucceeded {
            step: "fetch".into(),
            attempt: 1,
            item: None,
            output: json!({"assets": ["a1", "a2", "a3"], "total": 3}),
        },
        EventBody::StepScheduled {
            step: "deliver".into(),
            attempt: 1,
            item: None,
            arguments: Some(json!({"partner_id": "acme", "asset": "a1"})),
            items: None,
            wake_at: None,
            timeout_at: None,
        },
        EventBody::StepStarted {
            step: "deliver".into(),
            attempt: 1,
            item: None,
        },
    ];
    let events: Vec<Event> = bodies
        .into_iter()
        .map(|body| Event::system(at, body))
        .collect();
    record_chain(id, after, prev_hash, &events)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (_directory, default_url) = gridflow_store::test_util::sqlite_file();
    let url = args
        .first()
        .filter(|url| !url.is_empty() && *url != "-")
        .cloned()
        .unwrap_or(default_url);
    let batches: usize = args.get(1).map_or(200, |n| n.parse().unwrap());
    let per_batch: usize = args.get(2).map_or(100, |n| n.parse().unwrap());
    let synchronous = if args.get(3).map(String::as_str) == Some("normal") {
        SqliteSynchronous::Normal
    } else {
        SqliteSynchronous::Full
    };
    let store = SqlStore::connect(
        &url,
        SqlOptions {
            sqlite_synchronous: synchronous,
            ..SqlOptions::default()
        },
    )
    .await
    .unwrap();

    let origin = Utc.timestamp_opt(1_763_800_000, 0).unwrap();
    let groups = batches.div_ceil(2).max(1);
    let mut records: Vec<Vec<Option<InstanceRecord>>> = vec![vec![None; per_batch]; groups];
    let mut previous_work: Vec<String> = Vec::new();
    let mut prepared: Vec<Batch> = Vec::with_capacity(batches);
    for batch_number in 0..batches {
        let group = batch_number % groups;
        let at = origin + Duration::milliseconds(batch_number as i64);
        let mut batch = Batch::default();
        for (slot, stored) in records[group].iter_mut().enumerate() {
            let id = InstanceId(format!("019aa000-{group:04x}-7000-8000-{slot:012x}"));
            let previous = stored.take();
            let (after, prev_hash, expected) = match &previous {
                Some(record) => (
                    record.last_seq,
                    record.last_hash.clone(),
                    Some(record.row_version),
                ),
                None => (0, GENESIS_HASH.to_owned(), None),
            };
            let new_events = events(&id, after, &prev_hash, at);
            let last = new_events.last().unwrap();
            let record = InstanceRecord {
                id: id.clone(),
                definition_id: "partner-media-request".into(),
                definition_version: 1,
                status: InstanceStatus::Running,
                state: json!({"steps": {"fetch": {"status": "succeeded", "attempts": 1,
                    "output": {"assets": ["a1", "a2", "a3"]}},
                    "deliver": {"status": "running", "attempts": 1}}}),
                input: json!({"partner_id": "acme", "query": "new arrivals"}),
                output: None,
                error: None,
                created_at: at,
                updated_at: at,
                last_seq: last.seq,
                snapshot_seq: last.seq,
                last_hash: last.hash.clone(),
                row_version: expected.map_or(1, |version| version + 1),
            };
            *stored = Some(record.clone());
            batch.work_added.push(WorkItem {
                id: format!("{id}:deliver:{batch_number}"),
                instance_id: id,
                payload: json!({"dispatch_step": {"step": "deliver", "attempt": 1}}),
                created_at: at,
            });
            batch.instances.push(InstanceWrite {
                record,
                expected_row_version: expected,
                events: new_events,
                snapshot: true,
            });
        }
        batch.work_done = std::mem::take(&mut previous_work);
        previous_work = batch
            .work_added
            .iter()
            .map(|item| item.id.clone())
            .collect();
        prepared.push(batch);
    }

    eprintln!("prepared {batches} batches");
    let started = Instant::now();
    let mut inserts_done = started.elapsed();
    for (index, batch) in prepared.iter().enumerate() {
        if index == groups {
            inserts_done = started.elapsed();
        }
        store.commit(batch).await.unwrap();
    }
    let elapsed = started.elapsed();
    println!(
        "inserting batches: {:.2} ms/batch, updating batches: {:.2} ms/batch",
        inserts_done.as_secs_f64() * 1000.0 / groups as f64,
        (elapsed - inserts_done).as_secs_f64() * 1000.0 / (batches - groups).max(1) as f64
    );
    let steps = batches * per_batch;
    println!(
        "{batches} batches x {per_batch} instances ({} events) on {}: {:.3} s, {:.2} ms/batch, {:.0} instance writes/s",
        steps * 3,
        if url.starts_with("sqlite") {
            format!("SQLite synchronous={synchronous:?}")
        } else {
            "PostgreSQL".to_owned()
        },
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / batches as f64,
        steps as f64 / elapsed.as_secs_f64()
    );
    store.close().await.unwrap();
}
