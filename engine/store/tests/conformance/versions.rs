//! Conformance of a migrated instance's row: an update that moves the instance to another
//! definition version records it, on the multi-row update and on the one-instance path.

use std::sync::Arc;

use gridflow_core::InstanceStatus;
use gridflow_store::Store;

use crate::{completed, inserting, instant, started};

pub(crate) async fn an_update_records_a_new_definition_version(store: Arc<dyn Store>) {
    // The multi-row update.
    let start = started(1, "partner-media-request", InstanceStatus::Running);
    store.commit(&inserting(vec![start.clone()])).await.unwrap();
    let mut moved = completed(&start.record, instant(50));
    moved.record.definition_version = 2;
    store.commit(&inserting(vec![moved.clone()])).await.unwrap();
    let stored = store.instance(&start.record.id).await.unwrap();
    assert_eq!(stored.definition_version, 2);
    assert_eq!(stored, moved.record);

    // The one-instance path: an insert and an update of the same instance in one batch.
    let start = started(2, "partner-media-request", InstanceStatus::Running);
    let mut moved = completed(&start.record, instant(60));
    moved.record.definition_version = 3;
    store
        .commit(&inserting(vec![start.clone(), moved.clone()]))
        .await
        .unwrap();
    let stored = store.instance(&start.record.id).await.unwrap();
    assert_eq!(stored.definition_version, 3);
}
