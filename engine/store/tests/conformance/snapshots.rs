//! Conformance of amortized state snapshots: a write without its snapshot changes the row
//! but keeps the stored `state` and `snapshot_seq`, on the multi-row update and on the
//! one-instance path alike; `history_after` returns exactly the tail after a seq.

use std::sync::Arc;

use serde_json::json;

use gridflow_core::InstanceStatus;
use gridflow_store::{Batch, Error, Store};

use crate::{completed, inserting, instant, started};

pub(crate) async fn a_write_without_its_snapshot_keeps_the_stored_one(store: Arc<dyn Store>) {
    // The multi-row update: one update of one instance in the batch.
    let start = started(1, "partner-media-request", InstanceStatus::Running);
    store.commit(&inserting(vec![start.clone()])).await.unwrap();
    let mut finish = completed(&start.record, instant(50));
    finish.snapshot = false;
    finish.record.state = json!("not written");
    store
        .commit(&inserting(vec![finish.clone()]))
        .await
        .unwrap();
    let stored = store.instance(&start.record.id).await.unwrap();
    assert_eq!(stored.state, start.record.state, "the snapshot stays");
    assert_eq!(stored.snapshot_seq, start.record.snapshot_seq);
    assert_eq!(
        stored.status,
        InstanceStatus::Completed,
        "the rest is written"
    );
    assert_eq!(stored.last_seq, finish.record.last_seq);
    assert_eq!(stored.row_version, 2);
    let tail = store
        .history_after(&start.record.id, stored.snapshot_seq)
        .await
        .unwrap();
    assert_eq!(
        tail, finish.events,
        "the tail is the events after the snapshot"
    );
    assert!(
        store
            .history_after(&start.record.id, stored.last_seq)
            .await
            .unwrap()
            .is_empty()
    );

    // The one-instance path: an insert and an update of the same instance in one batch.
    let start = started(2, "partner-media-request", InstanceStatus::Running);
    let mut finish = completed(&start.record, instant(60));
    finish.snapshot = false;
    finish.record.state = json!("not written");
    store
        .commit(&inserting(vec![start.clone(), finish.clone()]))
        .await
        .unwrap();
    let stored = store.instance(&start.record.id).await.unwrap();
    assert_eq!(stored.state, start.record.state);
    assert_eq!(stored.snapshot_seq, start.record.snapshot_seq);
    assert_eq!(stored.last_seq, finish.record.last_seq);

    // A later write with its snapshot replaces both.
    let stored_before = store.instance(&start.record.id).await.unwrap();
    let mut again = completed(&stored_before, instant(70));
    again.record.state = json!({"snapshot": "new"});
    store.commit(&inserting(vec![again.clone()])).await.unwrap();
    let stored = store.instance(&start.record.id).await.unwrap();
    assert_eq!(stored, again.record);
}

pub(crate) async fn a_new_instance_needs_its_snapshot(store: Arc<dyn Store>) {
    let mut start = started(1, "partner-media-request", InstanceStatus::Running);
    start.snapshot = false;
    match store.commit(&inserting(vec![start.clone()])).await {
        Err(Error::Invalid(message)) => assert!(message.contains("snapshot"), "{message}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    let mut ahead = started(2, "partner-media-request", InstanceStatus::Running);
    ahead.record.snapshot_seq = ahead.record.last_seq + 1;
    assert!(matches!(
        store
            .commit(&Batch {
                instances: vec![ahead],
                ..Batch::default()
            })
            .await,
        Err(Error::Invalid(_))
    ));
}
