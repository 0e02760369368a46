//! Store conformance: one suite over the store traits, run against every implementation.
//!
//! Each behaviour is one `async fn(Arc<dyn Store>)` below; `conformance!` turns it into a
//! test per backend: `memory::…`, `sqlite_memory::…`, `sqlite_file::…` and `postgres::…`.
//! The PostgreSQL tests each get a fresh database under `DATABASE_URL` and are skipped,
//! with a notice on stderr, when it is unset. A backend difference is a failing test.

// The helpers below are test code too; `allow-unwrap-in-tests` covers only `#[test]` items.
#![allow(clippy::unwrap_used)]

#[path = "conformance/webhooks.rs"]
mod webhooks;

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use gridflow_core::history::{GENESIS_HASH, record_chain};
use gridflow_core::{DefinitionId, Event, EventBody, InstanceId, InstanceStatus, RecordedEvent};
use gridflow_store::test_util::{postgres_database, sqlite_file};
use gridflow_store::{
    ApprovalFilter, ApprovalRecord, Batch, Deployed, Error, InstanceFilter, InstanceRecord,
    InstanceWrite, MemoryStore, SqlOptions, SqlStore, Store, TickRecord, TickState, TimerRecord,
    TokenRecord, WorkItem,
};
use webhooks::webhook_event_is_claimed_once;

// ---------------------------------------------------------------------------------------
// Backends

async fn on_memory<Test, Run>(test: Test)
where
    Test: FnOnce(Arc<dyn Store>) -> Run,
    Run: Future<Output = ()>,
{
    test(Arc::new(MemoryStore::new())).await;
}

async fn on_sqlite_memory<Test, Run>(test: Test)
where
    Test: FnOnce(Arc<dyn Store>) -> Run,
    Run: Future<Output = ()>,
{
    let store = SqlStore::connect("sqlite::memory:", SqlOptions::default())
        .await
        .unwrap();
    test(Arc::new(store)).await;
}

async fn on_sqlite_file<Test, Run>(test: Test)
where
    Test: FnOnce(Arc<dyn Store>) -> Run,
    Run: Future<Output = ()>,
{
    let (directory, url) = sqlite_file();
    let store = SqlStore::connect(&url, SqlOptions::default())
        .await
        .unwrap();
    test(Arc::new(store.clone())).await;
    store.close().await.unwrap();
    drop(directory);
}

async fn on_postgres<Test, Run>(test: Test)
where
    Test: FnOnce(Arc<dyn Store>) -> Run,
    Run: Future<Output = ()> + Send + 'static,
{
    let Some(database) = postgres_database().await else {
        return;
    };
    let store = SqlStore::connect(&database.url, SqlOptions::default())
        .await
        .unwrap();
    // The test runs as a task so that its database is dropped even when it panics.
    let outcome = tokio::spawn(test(Arc::new(store.clone()))).await;
    store.close().await.unwrap();
    database.drop().await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $test() {
                crate::on_memory(crate::$test).await;
            })*
        }
        mod sqlite_memory {
            $(#[tokio::test]
            async fn $test() {
                crate::on_sqlite_memory(crate::$test).await;
            })*
        }
        mod sqlite_file {
            $(#[tokio::test]
            async fn $test() {
                crate::on_sqlite_file(crate::$test).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $test() {
                crate::on_postgres(crate::$test).await;
            })*
        }
    };
}

conformance!(
    webhook_event_is_claimed_once,
    poll_cursor_is_saved_per_source_and_replaced,
    deploy_of_new_content_creates_next_version,
    concurrent_deploys_get_distinct_versions,
    missing_definition_and_instance_are_not_found,
    committed_batch_reads_back_equal,
    update_advances_row_and_appends_history,
    instance_inserted_and_updated_in_one_batch,
    instance_updated_twice_in_one_batch,
    large_batch_is_written_whole,
    stale_row_version_conflicts_and_writes_nothing,
    duplicate_instance_insert_conflicts_and_writes_nothing,
    duplicate_history_event_conflicts_and_writes_nothing,
    invalid_batch_is_rejected_before_writing,
    work_done_and_timers_removed_delete_only_named_rows,
    work_added_with_queued_id_is_ignored,
    timers_added_replace_same_key,
    due_timers_are_earliest_first_and_limited,
    queued_work_is_oldest_first,
    list_instances_pages_newest_first_with_filters,
    list_instances_rejects_empty_page_requests,
    list_instance_heads_leave_out_the_state,
    unfinished_instances_are_the_non_terminal_ones,
    instants_keep_whole_microseconds,
    empty_batch_and_health_succeed,
    tokens_are_found_by_their_hash_only,
    duplicate_token_hash_conflicts_and_keeps_the_first,
    tokens_are_listed_oldest_first_with_their_lifecycle,
    revoking_a_token_keeps_its_first_instant,
    duplicate_token_id_conflicts,
    instances_are_counted_by_status_and_work_by_queue,
    approvals_are_upserted_and_read_back,
    approvals_are_listed_for_their_users_and_groups,
    tick_is_claimed_once,
    concurrent_tick_claims_have_one_winner,
    tick_updates_move_from_the_expected_state_only,
    lease_is_held_by_one_holder_until_it_expires,
    concurrent_lease_acquisitions_have_one_winner,
    a_write_without_its_snapshot_keeps_the_stored_one,
    a_new_instance_needs_its_snapshot,
    children_are_listed_under_their_parent,
    an_update_records_a_new_definition_version,
    signal_waits_are_found_by_name_and_key,
    signal_waits_are_written_with_their_batch_or_not_at_all,
    rights_windows_are_upserted_per_asset,
    rights_windows_are_written_with_their_batch_or_not_at_all,
    rights_windows_are_due_until_fired_at_their_end,
    ledger_writes_are_idempotent_and_chained,
    ledger_is_listed_by_filter_and_page,
    ledger_writes_land_with_their_batch,
    concurrent_status_changes_chain_in_turn,
);

#[path = "conformance/rights.rs"]
mod rights;
use rights::{
    rights_windows_are_due_until_fired_at_their_end, rights_windows_are_upserted_per_asset,
    rights_windows_are_written_with_their_batch_or_not_at_all,
};

#[path = "conformance/ledger.rs"]
mod ledger;
use ledger::{
    concurrent_status_changes_chain_in_turn, ledger_is_listed_by_filter_and_page,
    ledger_writes_are_idempotent_and_chained, ledger_writes_land_with_their_batch,
};

#[path = "conformance/children.rs"]
mod children;
use children::children_are_listed_under_their_parent;

#[path = "conformance/signal_waits.rs"]
mod signal_waits;
use signal_waits::{
    signal_waits_are_found_by_name_and_key, signal_waits_are_written_with_their_batch_or_not_at_all,
};

#[path = "conformance/snapshots.rs"]
mod snapshots;
use snapshots::{
    a_new_instance_needs_its_snapshot, a_write_without_its_snapshot_keeps_the_stored_one,
};

#[path = "conformance/versions.rs"]
mod versions;
use versions::an_update_records_a_new_definition_version;

#[path = "conformance/tokens.rs"]
mod tokens;
use tokens::{
    duplicate_token_id_conflicts, revoking_a_token_keeps_its_first_instant,
    tokens_are_listed_oldest_first_with_their_lifecycle,
};

// ---------------------------------------------------------------------------------------
// Builders

/// An instant `seconds` after a fixed origin.
fn instant(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_763_800_000 + seconds, 0).unwrap()
}

/// A UUIDv7-shaped id; a larger `n` sorts later, as a later UUIDv7 does.
fn instance_id(n: u32) -> InstanceId {
    InstanceId(format!("019aa000-{n:04x}-7000-8000-000000000000"))
}

fn step_scheduled(at: DateTime<Utc>) -> Event {
    Event::system(
        at,
        EventBody::StepScheduled {
            step: "fetch".into(),
            attempt: 1,
            item: None,
            arguments: Some(json!({"query": "new arrivals"})),
            items: None,
            wake_at: None,
            timeout_at: None,
        },
    )
}

/// Records `events` after the event numbered `after_seq` whose hash is `prev_hash`.
fn record(
    id: &InstanceId,
    after_seq: u64,
    prev_hash: &str,
    events: &[Event],
) -> Vec<RecordedEvent> {
    record_chain(id, after_seq, prev_hash, events)
}

/// The insert of instance `n` of `definition` with status `status`, with three events.
fn started(n: u32, definition: &str, status: InstanceStatus) -> InstanceWrite {
    let id = instance_id(n);
    let at = instant(i64::from(n));
    let input = json!({"partner_id": format!("p{n}"), "query": "new arrivals"});
    let events = record(
        &id,
        0,
        GENESIS_HASH,
        &[
            Event::system(
                at,
                EventBody::InstanceStarted {
                    definition: definition.into(),
                    version: 1,
                    input: input.clone(),
                    history_version: gridflow_core::HISTORY_VERSION,
                    parent: None,
                },
            ),
            step_scheduled(at),
            Event::system(
                at,
                EventBody::StepStarted {
                    step: "fetch".into(),
                    attempt: 1,
                    item: None,
                },
            ),
        ],
    );
    let last = events.last().unwrap();
    InstanceWrite {
        record: InstanceRecord {
            id: id.clone(),
            definition_id: definition.into(),
            definition_version: 1,
            status,
            state: json!({"steps": {"fetch": {"status": "running", "attempts": 1}}}),
            input,
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
    }
}

/// The update that completes `previous`, with two events.
fn completed(previous: &InstanceRecord, at: DateTime<Utc>) -> InstanceWrite {
    let events = record(
        &previous.id,
        previous.last_seq,
        &previous.last_hash,
        &[
            Event::system(
                at,
                EventBody::StepSucceeded {
                    step: "fetch".into(),
                    attempt: 1,
                    item: None,
                    output: json!({"assets": ["a1", "a2"]}),
                },
            ),
            Event::system(
                at,
                EventBody::InstanceCompleted {
                    output: json!({"delivered": 2}),
                },
            ),
        ],
    );
    let last = events.last().unwrap();
    InstanceWrite {
        record: InstanceRecord {
            status: InstanceStatus::Completed,
            state: json!({"steps": {"fetch": {"status": "succeeded", "attempts": 1}}}),
            output: Some(json!({"delivered": 2})),
            updated_at: at,
            last_seq: last.seq,
            snapshot_seq: last.seq,
            last_hash: last.hash.clone(),
            row_version: previous.row_version + 1,
            ..previous.clone()
        },
        expected_row_version: Some(previous.row_version),
        events,
        snapshot: true,
    }
}

fn work(id: &str, instance: &InstanceId, created_at: DateTime<Utc>) -> WorkItem {
    WorkItem {
        id: id.to_owned(),
        instance_id: instance.clone(),
        payload: json!({"dispatch_step": {"step": "fetch", "attempt": 1}}),
        created_at,
    }
}

fn timer(instance: &InstanceId, key: &str, fire_at: DateTime<Utc>) -> TimerRecord {
    TimerRecord {
        instance_id: instance.clone(),
        key: key.to_owned(),
        fire_at,
        payload: json!({"timer_fired": {"step": "cooldown", "attempt": 1}}),
    }
}

fn inserting(writes: Vec<InstanceWrite>) -> Batch {
    Batch {
        instances: writes,
        ..Batch::default()
    }
}

#[track_caller]
fn assert_conflict_naming(result: gridflow_store::Result<()>, id: &InstanceId) {
    match result {
        Err(Error::Conflict(message)) => {
            assert!(message.contains(id.as_str()), "{message:?} names no {id}")
        }
        other => panic!("expected a conflict naming {id}, got {other:?}"),
    }
}

fn ids(records: &[InstanceRecord]) -> Vec<InstanceId> {
    records.iter().map(|record| record.id.clone()).collect()
}

// ---------------------------------------------------------------------------------------
// Definitions

async fn deploy_of_new_content_creates_next_version(store: Arc<dyn Store>) {
    let id = DefinitionId::from("partner-media-request");
    let first = json!({"id": "partner-media-request", "steps": [{"id": "fetch"}]});
    let second = json!({"id": "partner-media-request", "steps": [{"id": "fetch"}, {"id": "send"}]});

    let deployed = store
        .deploy(&id, "hash-a", "id: a", &first, instant(0))
        .await;
    assert_eq!(deployed.unwrap(), Deployed::Created(1));
    let deployed = store
        .deploy(&id, "hash-a", "id: a", &first, instant(1))
        .await;
    assert_eq!(deployed.unwrap(), Deployed::Unchanged(1));
    let deployed = store
        .deploy(&id, "hash-b", "id: b", &second, instant(2))
        .await;
    assert_eq!(deployed.unwrap(), Deployed::Created(2));
    // Only the latest version counts: going back to the first content is a new version.
    let deployed = store
        .deploy(&id, "hash-a", "id: a", &first, instant(3))
        .await;
    assert_eq!(deployed.unwrap(), Deployed::Created(3));

    let latest = store.definition(&id, None).await.unwrap();
    assert_eq!(latest.version, 3);
    assert_eq!(latest.created_at, instant(3));
    let second_version = store.definition(&id, Some(2)).await.unwrap();
    assert_eq!(second_version.id, id);
    assert_eq!(second_version.content_hash, "hash-b");
    assert_eq!(second_version.source, "id: b");
    assert_eq!(second_version.definition, second);
    assert_eq!(second_version.created_at, instant(2));

    let versions = store.definition_versions(&id).await.unwrap();
    let numbers: Vec<u32> = versions.iter().map(|record| record.version).collect();
    assert_eq!(numbers, vec![1, 2, 3]);
    assert_eq!(versions[1], second_version);

    let other = DefinitionId::from("asset-expiry");
    store
        .deploy(&other, "hash-c", "id: c", &json!({}), instant(4))
        .await
        .unwrap();
    let listed = store.list_definitions().await.unwrap();
    let listed: Vec<(String, u32)> = listed
        .iter()
        .map(|record| (record.id.to_string(), record.version))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("asset-expiry".to_owned(), 1),
            ("partner-media-request".to_owned(), 3)
        ]
    );
}

async fn concurrent_deploys_get_distinct_versions(store: Arc<dyn Store>) {
    let id = DefinitionId::from("raced");
    let deploys = (0..4).map(|n| {
        let store = store.clone();
        let id = id.clone();
        async move {
            store
                .deploy(
                    &id,
                    &format!("hash-{n}"),
                    "source",
                    &json!({"n": n}),
                    instant(n),
                )
                .await
                .unwrap()
        }
    });
    let handles: Vec<_> = deploys.map(tokio::spawn).collect();
    let mut versions = Vec::new();
    for handle in handles {
        match handle.await.unwrap() {
            Deployed::Created(version) => versions.push(version),
            Deployed::Unchanged(version) => {
                panic!("distinct content reported unchanged at {version}")
            }
        }
    }
    versions.sort_unstable();
    assert_eq!(versions, vec![1, 2, 3, 4]);
}

async fn missing_definition_and_instance_are_not_found(store: Arc<dyn Store>) {
    let id = DefinitionId::from("nothing-here");
    assert!(matches!(
        store.definition(&id, None).await,
        Err(Error::NotFound(_))
    ));
    store
        .deploy(&id, "hash", "source", &json!({}), instant(0))
        .await
        .unwrap();
    assert!(matches!(
        store.definition(&id, Some(2)).await,
        Err(Error::NotFound(message)) if message.contains("nothing-here")
    ));
    assert!(matches!(
        store
            .definition_versions(&DefinitionId::from("other"))
            .await,
        Err(Error::NotFound(_))
    ));
    let missing = instance_id(99);
    assert!(matches!(
        store.instance(&missing).await,
        Err(Error::NotFound(message)) if message.contains(missing.as_str())
    ));
    assert!(matches!(
        store.history(&missing).await,
        Err(Error::NotFound(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Commit

async fn committed_batch_reads_back_equal(store: Arc<dyn Store>) {
    let first = started(1, "partner-media-request", InstanceStatus::Running);
    let mut second = started(2, "asset-expiry", InstanceStatus::Waiting);
    second.record.error = Some(json!({"code": "timeout", "message": "partner did not answer"}));
    let work_items = vec![
        work("w1", &first.record.id, instant(10)),
        work("w2", &second.record.id, instant(11)),
    ];
    let timers = vec![timer(&second.record.id, "sleep:cooldown:1", instant(100))];
    let batch = Batch {
        instances: vec![first.clone(), second.clone()],
        work_added: work_items.clone(),
        timers_added: timers.clone(),
        ..Batch::default()
    };
    store.commit(&batch).await.unwrap();

    for write in [&first, &second] {
        let stored = store.instance(&write.record.id).await.unwrap();
        assert_eq!(stored, write.record);
        let history = store.history(&write.record.id).await.unwrap();
        assert_eq!(history, write.events);
        assert!(gridflow_core::history::verify_chain(&history).is_ok());
    }
    assert_eq!(store.queued_work().await.unwrap(), work_items);
    assert_eq!(store.due_timers(instant(100), 10).await.unwrap(), timers);
    assert_eq!(store.next_timer_at().await.unwrap(), Some(instant(100)));
}

async fn update_advances_row_and_appends_history(store: Arc<dyn Store>) {
    let start = started(1, "partner-media-request", InstanceStatus::Running);
    store.commit(&inserting(vec![start.clone()])).await.unwrap();

    let finish = completed(&start.record, instant(50));
    let batch = Batch {
        instances: vec![finish.clone()],
        work_done: vec!["never-queued".to_owned()],
        ..Batch::default()
    };
    store.commit(&batch).await.unwrap();

    let stored = store.instance(&start.record.id).await.unwrap();
    assert_eq!(stored, finish.record);
    assert_eq!(stored.row_version, 2);
    assert_eq!(stored.created_at, start.record.created_at);
    let history = store.history(&start.record.id).await.unwrap();
    let expected: Vec<RecordedEvent> = start.events.iter().chain(&finish.events).cloned().collect();
    assert_eq!(history, expected);
    assert!(gridflow_core::history::verify_chain(&history).is_ok());

    // The same update again is stale now.
    assert_conflict_naming(
        store.commit(&inserting(vec![finish])).await,
        &start.record.id,
    );
}

async fn instance_inserted_and_updated_in_one_batch(store: Arc<dyn Store>) {
    let start = started(1, "partner-media-request", InstanceStatus::Running);
    let finish = completed(&start.record, instant(5));
    store
        .commit(&inserting(vec![start.clone(), finish.clone()]))
        .await
        .unwrap();
    assert_eq!(
        store.instance(&start.record.id).await.unwrap(),
        finish.record
    );
    assert_eq!(store.history(&start.record.id).await.unwrap().len(), 5);
}

async fn instance_updated_twice_in_one_batch(store: Arc<dyn Store>) {
    let start = started(1, "partner-media-request", InstanceStatus::Running);
    store.commit(&inserting(vec![start.clone()])).await.unwrap();
    let mut waiting = completed(&start.record, instant(5));
    waiting.record.status = InstanceStatus::Waiting;
    waiting.record.output = None;
    let finish = completed(&waiting.record, instant(6));
    store
        .commit(&inserting(vec![waiting.clone(), finish.clone()]))
        .await
        .unwrap();
    assert_eq!(
        store.instance(&start.record.id).await.unwrap(),
        finish.record
    );
    assert_eq!(store.history(&start.record.id).await.unwrap().len(), 7);

    // The second update is stale when the first one is missing: nothing is written.
    let again = completed(&finish.record, instant(7));
    let mut stale = completed(&again.record, instant(8));
    stale.expected_row_version = Some(9);
    stale.record.row_version = 10;
    assert_conflict_naming(
        store.commit(&inserting(vec![again, stale])).await,
        &start.record.id,
    );
    assert_eq!(
        store.instance(&start.record.id).await.unwrap(),
        finish.record
    );
}

/// More rows than one statement carries on any backend, with large snapshots.
async fn large_batch_is_written_whole(store: Arc<dyn Store>) {
    let count = 700;
    let big_state = json!({"log": "x".repeat(3000)});
    let writes: Vec<InstanceWrite> = (1..=count)
        .map(|n| {
            let mut write = started(n, "bulk", InstanceStatus::Running);
            write.record.state = big_state.clone();
            write
        })
        .collect();
    let work_items: Vec<WorkItem> = writes
        .iter()
        .map(|write| {
            work(
                &format!("{}:fetch:1", write.record.id),
                &write.record.id,
                instant(1),
            )
        })
        .collect();
    let timers: Vec<TimerRecord> = writes
        .iter()
        .map(|write| timer(&write.record.id, "retry:fetch:2", instant(2)))
        .collect();
    store
        .commit(&Batch {
            instances: writes.clone(),
            work_added: work_items.clone(),
            timers_added: timers.clone(),
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(store.queued_work().await.unwrap().len(), work_items.len());
    assert_eq!(
        store.due_timers(instant(2), 10_000).await.unwrap().len(),
        timers.len()
    );

    let finishes: Vec<InstanceWrite> = writes
        .iter()
        .map(|write| completed(&write.record, instant(3)))
        .collect();
    store
        .commit(&Batch {
            instances: finishes.clone(),
            work_done: work_items.iter().map(|item| item.id.clone()).collect(),
            timers_removed: timers
                .iter()
                .map(|timer| (timer.instance_id.clone(), timer.key.clone()))
                .collect(),
            ..Batch::default()
        })
        .await
        .unwrap();
    for finish in [&finishes[0], &finishes[350], &finishes[699]] {
        assert_eq!(
            store.instance(&finish.record.id).await.unwrap(),
            finish.record
        );
        assert_eq!(store.history(&finish.record.id).await.unwrap().len(), 5);
    }
    assert!(store.queued_work().await.unwrap().is_empty());
    assert_eq!(store.next_timer_at().await.unwrap(), None);
    let completed_page = store
        .list_instances(
            &InstanceFilter {
                status: Some(InstanceStatus::Completed),
                definition: Some(DefinitionId::from("bulk")),
            },
            None,
            1000,
        )
        .await
        .unwrap();
    assert_eq!(completed_page.items.len(), count as usize);

    // A stale instance deep inside a large batch is still named.
    let mut again: Vec<InstanceWrite> = finishes
        .iter()
        .map(|finish| completed(&finish.record, instant(4)))
        .collect();
    again[500].expected_row_version = Some(1);
    again[500].record.row_version = 2;
    assert_conflict_naming(
        store.commit(&inserting(again)).await,
        &finishes[500].record.id,
    );
    assert_eq!(
        store.instance(&finishes[10].record.id).await.unwrap(),
        finishes[10].record
    );
}

async fn stale_row_version_conflicts_and_writes_nothing(store: Arc<dyn Store>) {
    let a = started(1, "partner-media-request", InstanceStatus::Running);
    let b = started(2, "partner-media-request", InstanceStatus::Running);
    let queued = work("queued", &a.record.id, instant(3));
    let sleeping = timer(&a.record.id, "sleep:cooldown:1", instant(30));
    store
        .commit(&Batch {
            instances: vec![a.clone(), b.clone()],
            work_added: vec![queued.clone()],
            timers_added: vec![sleeping.clone()],
            ..Batch::default()
        })
        .await
        .unwrap();

    // b's update believes it is at row_version 4; it is at 1.
    let mut stale_b = completed(&b.record, instant(20));
    stale_b.expected_row_version = Some(4);
    stale_b.record.row_version = 5;
    let c = started(3, "partner-media-request", InstanceStatus::Running);
    let batch = Batch {
        instances: vec![completed(&a.record, instant(20)), c.clone(), stale_b],
        work_added: vec![work("new", &c.record.id, instant(20))],
        work_done: vec![queued.id.clone()],
        timers_added: vec![timer(&c.record.id, "sleep:cooldown:1", instant(40))],
        timers_removed: vec![(sleeping.instance_id.clone(), sleeping.key.clone())],
        approvals: vec![approval(3, &["ann"], &[])],
        children: Vec::new(),
        ledger: Vec::new(),
        signal_waits: vec![gridflow_store::SignalWaitsWrite {
            instance_id: c.record.id.clone(),
            waits: vec![gridflow_store::SignalWaitRecord {
                instance_id: c.record.id.clone(),
                step: "ack".into(),
                signal: "partner.ack".to_owned(),
                key: None,
            }],
        }],
        rights: Vec::new(),
    };
    assert_conflict_naming(store.commit(&batch).await, &b.record.id);
    assert!(store.approval(&batch.approvals[0].id).await.is_err());
    assert!(
        store
            .signal_waits("partner.ack", &[])
            .await
            .unwrap()
            .is_empty()
    );

    // Nothing of the batch was written.
    assert_eq!(store.instance(&a.record.id).await.unwrap(), a.record);
    assert_eq!(store.history(&a.record.id).await.unwrap(), a.events);
    assert_eq!(store.instance(&b.record.id).await.unwrap(), b.record);
    assert_eq!(store.history(&b.record.id).await.unwrap(), b.events);
    assert!(matches!(
        store.instance(&c.record.id).await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(store.queued_work().await.unwrap(), vec![queued]);
    assert_eq!(
        store.due_timers(instant(1000), 10).await.unwrap(),
        vec![sleeping]
    );

    // An update of an instance that does not exist conflicts too.
    let ghost = completed(&started(7, "x", InstanceStatus::Running).record, instant(9));
    assert_conflict_naming(store.commit(&inserting(vec![ghost])).await, &instance_id(7));
}

async fn duplicate_instance_insert_conflicts_and_writes_nothing(store: Arc<dyn Store>) {
    let a = started(1, "partner-media-request", InstanceStatus::Running);
    store.commit(&inserting(vec![a.clone()])).await.unwrap();

    let d = started(4, "partner-media-request", InstanceStatus::Running);
    let mut again = started(1, "other", InstanceStatus::Waiting);
    again.events.clear();
    let batch = Batch {
        instances: vec![d.clone(), again],
        work_added: vec![work("w", &d.record.id, instant(4))],
        ..Batch::default()
    };
    assert_conflict_naming(store.commit(&batch).await, &a.record.id);
    assert_eq!(store.instance(&a.record.id).await.unwrap(), a.record);
    assert!(matches!(
        store.instance(&d.record.id).await,
        Err(Error::NotFound(_))
    ));
    assert!(store.queued_work().await.unwrap().is_empty());

    // The same new instance twice in one batch conflicts as well.
    let e = started(5, "partner-media-request", InstanceStatus::Running);
    let mut e_again = e.clone();
    e_again.events.clear();
    assert_conflict_naming(
        store.commit(&inserting(vec![e.clone(), e_again])).await,
        &e.record.id,
    );
    assert!(matches!(
        store.instance(&e.record.id).await,
        Err(Error::NotFound(_))
    ));
}

async fn duplicate_history_event_conflicts_and_writes_nothing(store: Arc<dyn Store>) {
    let a = started(1, "partner-media-request", InstanceStatus::Running);
    store.commit(&inserting(vec![a.clone()])).await.unwrap();

    // A correct row_version, but events that restart at seq 3, which is stored.
    let mut finish = completed(&a.record, instant(10));
    finish.events = record(
        &a.record.id,
        2,
        &a.events[1].hash,
        &[step_scheduled(instant(10))],
    );
    assert_conflict_naming(store.commit(&inserting(vec![finish])).await, &a.record.id);
    assert_eq!(store.instance(&a.record.id).await.unwrap(), a.record);
    assert_eq!(store.history(&a.record.id).await.unwrap(), a.events);
}

async fn invalid_batch_is_rejected_before_writing(store: Arc<dyn Store>) {
    let a = started(1, "partner-media-request", InstanceStatus::Running);
    let b = started(2, "partner-media-request", InstanceStatus::Running);

    // An event filed under another instance.
    let mut misfiled = a.clone();
    misfiled.events.push(b.events[0].clone());
    assert!(matches!(
        store.commit(&inserting(vec![misfiled])).await,
        Err(Error::Invalid(_))
    ));

    // A new instance must start at row_version 1, an update must add exactly 1.
    let mut skipped = b.clone();
    skipped.record.row_version = 3;
    assert!(matches!(
        store.commit(&inserting(vec![skipped])).await,
        Err(Error::Invalid(_))
    ));
    let mut jump = completed(&a.record, instant(5));
    jump.record.row_version = 7;
    assert!(matches!(
        store.commit(&inserting(vec![a.clone(), jump])).await,
        Err(Error::Invalid(_))
    ));

    // A counter beyond what the database holds.
    let mut huge = b.clone();
    huge.record.last_seq = u64::MAX;
    assert!(matches!(
        store.commit(&inserting(vec![huge])).await,
        Err(Error::Invalid(_))
    ));

    assert!(matches!(
        store.instance(&a.record.id).await,
        Err(Error::NotFound(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Work and timers

async fn work_done_and_timers_removed_delete_only_named_rows(store: Arc<dyn Store>) {
    let a = started(1, "partner-media-request", InstanceStatus::Running);
    let id = a.record.id.clone();
    let work_items: Vec<WorkItem> = (1..=3)
        .map(|n| work(&format!("{id}:step{n}:1"), &id, instant(n)))
        .collect();
    let timers: Vec<TimerRecord> = (1..=3)
        .map(|n| timer(&id, &format!("retry:step{n}:1"), instant(100 + n)))
        .collect();
    store
        .commit(&Batch {
            instances: vec![a],
            work_added: work_items.clone(),
            timers_added: timers.clone(),
            ..Batch::default()
        })
        .await
        .unwrap();

    store
        .commit(&Batch {
            work_done: vec![
                work_items[0].id.clone(),
                "missing".to_owned(),
                work_items[2].id.clone(),
            ],
            timers_removed: vec![
                (id.clone(), timers[1].key.clone()),
                (id.clone(), "missing".to_owned()),
                (instance_id(42), timers[0].key.clone()),
            ],
            ..Batch::default()
        })
        .await
        .unwrap();

    assert_eq!(
        store.queued_work().await.unwrap(),
        vec![work_items[1].clone()]
    );
    assert_eq!(
        store.due_timers(instant(1000), 10).await.unwrap(),
        vec![timers[0].clone(), timers[2].clone()]
    );

    // Work added and done in the same batch ends up done.
    let passing = work("passing", &id, instant(9));
    store
        .commit(&Batch {
            work_added: vec![passing.clone()],
            work_done: vec![passing.id.clone()],
            timers_added: vec![timer(&id, "passing", instant(9))],
            timers_removed: vec![(id.clone(), "passing".to_owned())],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(
        store.queued_work().await.unwrap(),
        vec![work_items[1].clone()]
    );
    assert_eq!(store.due_timers(instant(1000), 10).await.unwrap().len(), 2);
}

async fn work_added_with_queued_id_is_ignored(store: Arc<dyn Store>) {
    let id = instance_id(1);
    let first = work("w", &id, instant(1));
    store
        .commit(&Batch {
            work_added: vec![first.clone()],
            ..Batch::default()
        })
        .await
        .unwrap();
    let mut second = work("w", &id, instant(2));
    second.payload = json!({"other": true});
    let mut third = second.clone();
    third.id = "w2".to_owned();
    store
        .commit(&Batch {
            work_added: vec![second.clone(), third.clone(), second],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(store.queued_work().await.unwrap(), vec![first, third]);
}

async fn timers_added_replace_same_key(store: Arc<dyn Store>) {
    let id = instance_id(1);
    store
        .commit(&Batch {
            timers_added: vec![timer(&id, "retry:fetch:2", instant(10))],
            ..Batch::default()
        })
        .await
        .unwrap();
    let mut moved = timer(&id, "retry:fetch:2", instant(20));
    moved.payload = json!({"moved": true});
    store
        .commit(&Batch {
            timers_added: vec![moved.clone()],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(
        store.due_timers(instant(1000), 10).await.unwrap(),
        vec![moved]
    );

    // The same key twice in one batch: the later one wins.
    let earlier = timer(&id, "sleep:cooldown:1", instant(30));
    let later = timer(&id, "sleep:cooldown:1", instant(40));
    store
        .commit(&Batch {
            timers_added: vec![earlier, later.clone()],
            ..Batch::default()
        })
        .await
        .unwrap();
    let due = store.due_timers(instant(1000), 10).await.unwrap();
    assert_eq!(due.last(), Some(&later));
    assert_eq!(due.len(), 2);
}

async fn due_timers_are_earliest_first_and_limited(store: Arc<dyn Store>) {
    assert_eq!(store.next_timer_at().await.unwrap(), None);
    assert!(store.due_timers(instant(0), 10).await.unwrap().is_empty());

    let a = instance_id(1);
    let b = instance_id(2);
    let timers = vec![
        timer(&a, "t3", instant(3)),
        timer(&b, "t1", instant(1)),
        timer(&a, "t5", instant(5)),
        timer(&b, "t2b", instant(2)),
        timer(&a, "t2a", instant(2)),
    ];
    store
        .commit(&Batch {
            timers_added: timers.clone(),
            ..Batch::default()
        })
        .await
        .unwrap();

    assert_eq!(store.next_timer_at().await.unwrap(), Some(instant(1)));
    let keys = |timers: Vec<TimerRecord>| -> Vec<String> {
        timers.into_iter().map(|timer| timer.key).collect()
    };
    // Ties on fire_at are broken by instance, then key.
    assert_eq!(
        keys(store.due_timers(instant(3), 10).await.unwrap()),
        vec!["t1", "t2a", "t2b", "t3"]
    );
    assert_eq!(
        keys(store.due_timers(instant(4), 2).await.unwrap()),
        vec!["t1", "t2a"]
    );
    assert!(store.due_timers(instant(0), 10).await.unwrap().is_empty());
    assert!(store.due_timers(instant(10), 0).await.unwrap().is_empty());
}

async fn queued_work_is_oldest_first(store: Arc<dyn Store>) {
    let id = instance_id(1);
    let items = vec![
        work("c", &id, instant(3)),
        work("b", &id, instant(1)),
        work("a", &id, instant(2)),
        work("a0", &id, instant(1)),
    ];
    store
        .commit(&Batch {
            work_added: items,
            ..Batch::default()
        })
        .await
        .unwrap();
    let order: Vec<String> = store
        .queued_work()
        .await
        .unwrap()
        .into_iter()
        .map(|item| item.id)
        .collect();
    assert_eq!(order, vec!["a0", "b", "a", "c"]);
}

// ---------------------------------------------------------------------------------------
// Listing

async fn list_instances_pages_newest_first_with_filters(store: Arc<dyn Store>) {
    use InstanceStatus::{Completed, Running, Waiting};
    let plan = [
        (1, "media", Running),
        (2, "expiry", Running),
        (3, "media", Completed),
        (4, "media", Running),
        (5, "expiry", Waiting),
        (6, "media", Running),
        (7, "media", Running),
    ];
    let writes: Vec<InstanceWrite> = plan
        .iter()
        .map(|&(n, definition, status)| started(n, definition, status))
        .collect();
    // Inserted out of order: the list is ordered by id, not by insertion.
    let mut shuffled = writes.clone();
    shuffled.swap(0, 6);
    shuffled.swap(2, 4);
    store.commit(&inserting(shuffled)).await.unwrap();

    async fn all_pages(store: &dyn Store, filter: &InstanceFilter, limit: u32) -> Vec<Vec<u32>> {
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = store
                .list_instances(filter, cursor.as_deref(), limit)
                .await
                .unwrap();
            let numbers = ids(&page.items)
                .iter()
                .map(|id| u32::from_str_radix(&id.as_str()[9..13], 16).unwrap())
                .collect();
            pages.push(numbers);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return pages,
            }
        }
    }

    let everything = InstanceFilter::default();
    assert_eq!(
        all_pages(&*store, &everything, 3).await,
        vec![vec![7, 6, 5], vec![4, 3, 2], vec![1]]
    );
    assert_eq!(
        all_pages(&*store, &everything, 7).await,
        vec![vec![7, 6, 5, 4, 3, 2, 1]]
    );
    assert_eq!(
        all_pages(&*store, &everything, 100).await,
        vec![vec![7, 6, 5, 4, 3, 2, 1]]
    );

    let running = InstanceFilter {
        status: Some(Running),
        definition: None,
    };
    assert_eq!(
        all_pages(&*store, &running, 2).await,
        vec![vec![7, 6], vec![4, 2], vec![1]]
    );

    let media = InstanceFilter {
        status: None,
        definition: Some(DefinitionId::from("media")),
    };
    assert_eq!(
        all_pages(&*store, &media, 2).await,
        vec![vec![7, 6], vec![4, 3], vec![1]]
    );

    let running_media = InstanceFilter {
        status: Some(Running),
        definition: Some(DefinitionId::from("media")),
    };
    assert_eq!(
        all_pages(&*store, &running_media, 3).await,
        vec![vec![7, 6, 4], vec![1]]
    );

    let none = InstanceFilter {
        status: Some(InstanceStatus::Cancelled),
        definition: None,
    };
    assert_eq!(all_pages(&*store, &none, 3).await, vec![Vec::<u32>::new()]);

    // Records come back whole.
    let page = store.list_instances(&everything, None, 1).await.unwrap();
    assert_eq!(page.items, vec![writes[6].record.clone()]);
}

async fn list_instance_heads_leave_out_the_state(store: Arc<dyn Store>) {
    use InstanceStatus::{Running, Waiting};
    let writes = vec![started(1, "media", Running), started(2, "media", Waiting)];
    store.commit(&inserting(writes)).await.unwrap();
    let filter = InstanceFilter::default();
    let full = store.list_instances(&filter, None, 1).await.unwrap();
    let heads = store.list_instance_heads(&filter, None, 1).await.unwrap();
    assert_eq!(heads.next_cursor, full.next_cursor);
    assert_eq!(heads.items.len(), 1);
    let (head, record) = (&heads.items[0], &full.items[0]);
    assert_eq!(head.state, serde_json::Value::Null);
    assert_eq!((&head.input, &head.output), (&record.input, &record.output));
    assert_ne!(record.state, serde_json::Value::Null);
    assert_eq!(
        (
            &head.id,
            &head.status,
            head.created_at,
            head.last_seq,
            &head.error
        ),
        (
            &record.id,
            &record.status,
            record.created_at,
            record.last_seq,
            &record.error
        )
    );
    let waiting = InstanceFilter {
        status: Some(Waiting),
        definition: None,
    };
    let page = store.list_instance_heads(&waiting, None, 10).await.unwrap();
    assert_eq!(ids(&page.items), vec![instance_id(2)]);
}

async fn list_instances_rejects_empty_page_requests(store: Arc<dyn Store>) {
    let everything = InstanceFilter::default();
    assert!(matches!(
        store.list_instances(&everything, None, 0).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        store.list_instances(&everything, Some(""), 10).await,
        Err(Error::Invalid(_))
    ));
}

async fn unfinished_instances_are_the_non_terminal_ones(store: Arc<dyn Store>) {
    use InstanceStatus::{Cancelled, Completed, Failed, Running, Waiting};
    let writes = vec![
        started(5, "media", Waiting),
        started(1, "media", Completed),
        started(4, "media", Running),
        started(2, "media", Failed),
        started(3, "media", Cancelled),
    ];
    store.commit(&inserting(writes)).await.unwrap();
    assert_eq!(
        store.unfinished_instances().await.unwrap(),
        vec![instance_id(4), instance_id(5)]
    );
}

// ---------------------------------------------------------------------------------------
// Representation

async fn instants_keep_whole_microseconds(store: Arc<dyn Store>) {
    let precise = Utc.timestamp_opt(1_763_800_000, 123_456_789).unwrap();
    let micros = Utc.timestamp_opt(1_763_800_000, 123_456_000).unwrap();
    let mut write = started(1, "media", InstanceStatus::Running);
    write.record.created_at = precise;
    write.record.updated_at = precise;
    store
        .commit(&Batch {
            instances: vec![write.clone()],
            work_added: vec![work("w", &write.record.id, precise)],
            timers_added: vec![timer(&write.record.id, "t", precise)],
            ..Batch::default()
        })
        .await
        .unwrap();
    let stored = store.instance(&write.record.id).await.unwrap();
    assert_eq!(stored.created_at, micros);
    assert_eq!(stored.updated_at, micros);
    assert_eq!(store.queued_work().await.unwrap()[0].created_at, micros);
    assert_eq!(store.next_timer_at().await.unwrap(), Some(micros));
    // A timer is due at its own (truncated) instant.
    assert_eq!(store.due_timers(precise, 10).await.unwrap().len(), 1);
    let mut odd = json!({"text": "quotes \" and \\ and ünïcode ✓", "float": 1.5, "big": 9_007_199_254_740_993_u64, "null": null});
    odd["nested"] = json!([{"a": []}, {}]);
    let id = DefinitionId::from("json");
    store
        .deploy(&id, "h", "source: ✓", &odd, precise)
        .await
        .unwrap();
    let definition = store.definition(&id, None).await.unwrap();
    assert_eq!(definition.definition, odd);
    assert_eq!(definition.created_at, micros);
}

async fn empty_batch_and_health_succeed(store: Arc<dyn Store>) {
    store.health().await.unwrap();
    store.commit(&Batch::default()).await.unwrap();
    assert!(store.unfinished_instances().await.unwrap().is_empty());
    assert!(store.queued_work().await.unwrap().is_empty());
    let page = store
        .list_instances(&InstanceFilter::default(), None, 10)
        .await
        .unwrap();
    assert!(page.items.is_empty());
    assert_eq!(page.next_cursor, None);
}

// ---------------------------------------------------------------------------------------
// Tokens and counts

fn token(hash_digit: char, user: &str, role: &str, groups: &[&str]) -> TokenRecord {
    TokenRecord {
        id: format!("id-{hash_digit}"),
        hash: hash_digit.to_string().repeat(64),
        user: user.to_owned(),
        role: role.to_owned(),
        groups: groups.iter().map(|group| (*group).to_owned()).collect(),
        created_at: instant(7) + chrono::Duration::microseconds(123_456),
        created_by: "admin".to_owned(),
        expires_at: Some(instant(3600) + chrono::Duration::microseconds(7)),
        revoked_at: None,
        server_run: None,
    }
}

async fn tokens_are_found_by_their_hash_only(store: Arc<dyn Store>) {
    let approver = token('a', "bob", "approver", &["brand-managers", "legal"]);
    let auditor = token('b', "carol", "auditor", &[]);
    store.create_token(&approver).await.unwrap();
    store.create_token(&auditor).await.unwrap();

    assert_eq!(
        store.token_by_hash(&approver.hash).await.unwrap(),
        Some(approver.clone())
    );
    assert_eq!(
        store.token_by_hash(&auditor.hash).await.unwrap(),
        Some(auditor)
    );
    assert_eq!(store.token_by_hash(&"c".repeat(64)).await.unwrap(), None);
    // Lookup is exact: neither a prefix nor another case of the hash matches.
    assert_eq!(store.token_by_hash(&"a".repeat(63)).await.unwrap(), None);
    assert_eq!(store.token_by_hash(&"A".repeat(64)).await.unwrap(), None);
}

async fn duplicate_token_hash_conflicts_and_keeps_the_first(store: Arc<dyn Store>) {
    let first = token('d', "dave", "analyst", &[]);
    store.create_token(&first).await.unwrap();
    let second = token('d', "mallory", "admin", &["everyone"]);
    match store.create_token(&second).await {
        Err(Error::Conflict(message)) => {
            assert!(message.contains("mallory"), "{message:?}");
            assert!(
                !message.contains(&second.hash),
                "{message:?} shows the hash"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.token_by_hash(&first.hash).await.unwrap(), Some(first));
}

async fn instances_are_counted_by_status_and_work_by_queue(store: Arc<dyn Store>) {
    assert!(store.instance_counts().await.unwrap().is_empty());
    assert_eq!(store.queued_work_count().await.unwrap(), 0);

    use InstanceStatus::{Completed, Running, Waiting};
    let writes = vec![
        started(1, "media", Running),
        started(2, "media", Waiting),
        started(3, "expiry", Running),
        started(4, "media", Completed),
        started(5, "media", Running),
    ];
    let first = instance_id(1);
    store
        .commit(&Batch {
            instances: writes,
            work_added: vec![
                work("w1", &first, instant(1)),
                work("w2", &first, instant(2)),
                work("w3", &instance_id(3), instant(3)),
            ],
            ..Batch::default()
        })
        .await
        .unwrap();

    assert_eq!(
        store.instance_counts().await.unwrap(),
        vec![(Completed, 1), (Running, 3), (Waiting, 1)]
    );
    assert_eq!(store.queued_work_count().await.unwrap(), 3);

    store
        .commit(&Batch {
            work_done: vec!["w1".to_owned(), "w3".to_owned()],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(store.queued_work_count().await.unwrap(), 1);
}

// Approvals read model

fn approval(n: u32, users: &[&str], groups: &[&str]) -> ApprovalRecord {
    let instance = instance_id(n);
    ApprovalRecord {
        id: format!("{instance}:review:1"),
        instance_id: instance,
        step: gridflow_core::StepId::from("review"),
        attempt: 1,
        title: format!("review {n}"),
        status: gridflow_core::ApprovalStatus::Pending,
        users: users.iter().map(|user| user.to_string()).collect(),
        groups: groups.iter().map(|group| group.to_string()).collect(),
        quorum: 2,
        level: 0,
        decisions: json!([]),
        due_at: Some(instant(3600)),
        created_at: instant(n.into()),
        updated_at: instant(n.into()),
        item: None,
        artifacts: None,
    }
}

fn filter(user: &str, groups: &[&str]) -> ApprovalFilter {
    ApprovalFilter {
        status: Some(gridflow_core::ApprovalStatus::Pending),
        user: user.to_owned(),
        groups: groups.iter().map(|group| group.to_string()).collect(),
    }
}

async fn approvals_are_upserted_and_read_back(store: Arc<dyn Store>) {
    let first = approval(1, &["ann"], &["brand"]);
    store
        .commit(&Batch {
            approvals: vec![first.clone()],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(store.approval(&first.id).await.unwrap(), first);

    let mut decided = first.clone();
    decided.status = gridflow_core::ApprovalStatus::Approved;
    decided.users = vec!["dan".to_owned()];
    decided.groups = Vec::new();
    decided.decisions =
        json!([{"user": "ann", "decision": "approve", "at": "2026-11-22T09:00:00.000000Z"}]);
    decided.due_at = None;
    decided.updated_at = instant(99);
    // Two rows of one id in a batch: the last one wins.
    store
        .commit(&Batch {
            approvals: vec![first.clone(), decided.clone()],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(store.approval(&first.id).await.unwrap(), decided);
    let mut all = filter("dan", &[]);
    all.status = None;
    assert_eq!(
        store.list_approvals(&all, None, 10).await.unwrap().items,
        vec![decided]
    );
    // The assignees were replaced: ann and the group no longer see it.
    all.user = "ann".to_owned();
    all.groups = vec!["brand".to_owned()];
    assert!(
        store
            .list_approvals(&all, None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // A fan-out item's approval keeps its item, and the artifacts it binds.
    let mut item = approval(2, &["ann"], &[]);
    item.id = format!("{}:review:1:7", item.instance_id);
    item.item = Some(7);
    item.artifacts = Some(json!([{"system": "otmm", "asset_id": "a-1", "version": "2",
        "sha256": "ab".repeat(32), "size": 5, "content_type": "image/jpeg", "file_name": "a.jpg"}]));
    store
        .commit(&Batch {
            approvals: vec![item.clone()],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(store.approval(&item.id).await.unwrap(), item);
    assert!(matches!(
        store.approval("missing:review:1").await,
        Err(Error::NotFound(message)) if message.contains("missing:review:1")
    ));
}

async fn approvals_are_listed_for_their_users_and_groups(store: Arc<dyn Store>) {
    let by_user = approval(1, &["ann"], &[]);
    let by_group = approval(2, &["bob"], &["brand"]);
    let other = approval(3, &["cid"], &["legal"]);
    let mut closed = approval(4, &["ann"], &[]);
    closed.status = gridflow_core::ApprovalStatus::Rejected;
    store
        .commit(&Batch {
            approvals: vec![by_user.clone(), by_group.clone(), other, closed.clone()],
            ..Batch::default()
        })
        .await
        .unwrap();
    let ids = |page: gridflow_store::Page<ApprovalRecord>| {
        page.items
            .into_iter()
            .map(|record| record.id)
            .collect::<Vec<_>>()
    };
    let page = store
        .list_approvals(&filter("ann", &["brand", "ops"]), None, 1)
        .await
        .unwrap();
    let cursor = page.next_cursor.clone().unwrap();
    assert_eq!(ids(page), vec![by_group.id.clone()]);
    let page = store
        .list_approvals(&filter("ann", &["brand", "ops"]), Some(&cursor), 1)
        .await
        .unwrap();
    assert_eq!(page.next_cursor, None);
    assert_eq!(ids(page), vec![by_user.id.clone()]);
    assert_eq!(
        ids(store
            .list_approvals(&filter("zed", &[]), None, 10)
            .await
            .unwrap()),
        Vec::<String>::new()
    );
    let mut any_status = filter("ann", &[]);
    any_status.status = None;
    assert_eq!(
        ids(store.list_approvals(&any_status, None, 10).await.unwrap()),
        vec![closed.id, by_user.id]
    );
}

// ---------------------------------------------------------------------------------------
// Trigger ticks and leases

fn tick(definition: &str, index: u32, at: DateTime<Utc>, holder: &str) -> TickRecord {
    TickRecord {
        definition_id: DefinitionId::from(definition),
        trigger_index: index,
        tick_at: at,
        state: TickState::Started,
        instance_id: None,
        claimed_by: holder.to_owned(),
        claimed_at: at,
    }
}

async fn tick_is_claimed_once(store: Arc<dyn Store>) {
    let first = tick("nightly", 0, instant(0), "node-a");
    assert!(store.claim_tick(&first).await.unwrap());
    // The same tick claimed by another node is refused and leaves the first claim alone.
    assert!(
        !store
            .claim_tick(&tick("nightly", 0, instant(0), "node-b"))
            .await
            .unwrap()
    );
    // Other instants, triggers and definitions are other ticks.
    assert!(
        store
            .claim_tick(&tick("nightly", 0, instant(60), "node-b"))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_tick(&tick("nightly", 1, instant(0), "node-b"))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_tick(&tick("weekly", 0, instant(0), "node-b"))
            .await
            .unwrap()
    );
    let mut skipped = tick("nightly", 0, instant(30), "node-a");
    skipped.state = TickState::Skipped;
    assert!(store.claim_tick(&skipped).await.unwrap());

    let id = DefinitionId::from("nightly");
    let last = store.last_tick(&id, 0, None).await.unwrap().unwrap();
    assert_eq!(last.tick_at, instant(60));
    assert_eq!(last.claimed_by, "node-b");
    let last_skipped = store
        .last_tick(&id, 0, Some(TickState::Skipped))
        .await
        .unwrap();
    assert_eq!(last_skipped, Some(skipped));
    let first_read = store
        .last_tick(&DefinitionId::from("nightly"), 0, Some(TickState::Started))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first_read.tick_at, instant(60));
    assert_eq!(
        store
            .last_tick(&id, 0, Some(TickState::Buffered))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.last_tick(&id, 7, None).await.unwrap(), None);
}

async fn concurrent_tick_claims_have_one_winner(store: Arc<dyn Store>) {
    let claims: Vec<_> = (0..8)
        .map(|node| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .claim_tick(&tick("race", 0, instant(0), &format!("node-{node}")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for claim in claims {
        if claim.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

async fn tick_updates_move_from_the_expected_state_only(store: Arc<dyn Store>) {
    let id = DefinitionId::from("buffered");
    let mut buffered = tick("buffered", 2, instant(5), "node-a");
    buffered.state = TickState::Buffered;
    assert!(store.claim_tick(&buffered).await.unwrap());
    let instance = InstanceId::from("instance-1");
    assert!(
        store
            .update_tick(
                &id,
                2,
                instant(5),
                TickState::Buffered,
                TickState::Started,
                Some(&instance)
            )
            .await
            .unwrap()
    );
    // A second node starting the same buffered tick finds it started already.
    assert!(
        !store
            .update_tick(
                &id,
                2,
                instant(5),
                TickState::Buffered,
                TickState::Started,
                None
            )
            .await
            .unwrap()
    );
    let stored = store.last_tick(&id, 2, None).await.unwrap().unwrap();
    assert_eq!(stored.state, TickState::Started);
    assert_eq!(stored.instance_id, Some(instance));
    assert!(matches!(
        store
            .update_tick(
                &id,
                2,
                instant(6),
                TickState::Buffered,
                TickState::Started,
                None
            )
            .await,
        Err(Error::NotFound(_))
    ));
}

async fn lease_is_held_by_one_holder_until_it_expires(store: Arc<dyn Store>) {
    let name = "cron";
    assert_eq!(store.lease_holder(name, instant(0)).await.unwrap(), None);
    assert!(
        store
            .acquire_lease(name, "node-a", instant(0), instant(10))
            .await
            .unwrap()
    );
    assert!(
        !store
            .acquire_lease(name, "node-b", instant(5), instant(15))
            .await
            .unwrap()
    );
    // Renewing extends it.
    assert!(
        store
            .acquire_lease(name, "node-a", instant(8), instant(18))
            .await
            .unwrap()
    );
    assert!(
        !store
            .acquire_lease(name, "node-b", instant(12), instant(22))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .lease_holder(name, instant(12))
            .await
            .unwrap()
            .as_deref(),
        Some("node-a")
    );
    // Once it expires, another node takes it, and the old holder cannot renew.
    assert_eq!(store.lease_holder(name, instant(18)).await.unwrap(), None);
    assert!(
        store
            .acquire_lease(name, "node-b", instant(18), instant(28))
            .await
            .unwrap()
    );
    assert!(
        !store
            .acquire_lease(name, "node-a", instant(19), instant(29))
            .await
            .unwrap()
    );
    // Releasing someone else's lease does nothing; releasing one's own frees it.
    store.release_lease(name, "node-a").await.unwrap();
    assert_eq!(
        store
            .lease_holder(name, instant(20))
            .await
            .unwrap()
            .as_deref(),
        Some("node-b")
    );
    store.release_lease(name, "node-b").await.unwrap();
    assert_eq!(store.lease_holder(name, instant(20)).await.unwrap(), None);
    assert!(
        store
            .acquire_lease(name, "node-a", instant(20), instant(30))
            .await
            .unwrap()
    );
    // Leases are independent by name.
    assert!(
        store
            .acquire_lease("other", "node-b", instant(20), instant(30))
            .await
            .unwrap()
    );
}

async fn concurrent_lease_acquisitions_have_one_winner(store: Arc<dyn Store>) {
    let attempts: Vec<_> = (0..8)
        .map(|node| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .acquire_lease("cron", &format!("node-{node}"), instant(0), instant(10))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for attempt in attempts {
        if attempt.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

async fn poll_cursor_is_saved_per_source_and_replaced(store: Arc<dyn Store>) {
    let at = Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap();
    assert_eq!(store.load_cursor("otmm").await.unwrap(), None);
    store
        .save_cursor("otmm", r#"{"since":"a"}"#, at)
        .await
        .unwrap();
    store.save_cursor("trading_grid", "17", at).await.unwrap();
    store
        .save_cursor("otmm", r#"{"since":"b"}"#, at)
        .await
        .unwrap();
    assert_eq!(
        store.load_cursor("otmm").await.unwrap().as_deref(),
        Some(r#"{"since":"b"}"#)
    );
    assert_eq!(
        store.load_cursor("trading_grid").await.unwrap().as_deref(),
        Some("17")
    );
}
