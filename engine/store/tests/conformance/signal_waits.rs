//! Conformance of the signal index: a batch replaces all the rows of each instance it
//! names (the last write of an instance wins, an empty one removes them), in the same
//! transaction as the rest; a lookup returns the unkeyed waits for the name and the keyed
//! ones whose key it is given, ordered by instance and step; key paths are kept per
//! signal.

use std::sync::Arc;

use gridflow_core::{InstanceStatus, StepId};
use gridflow_store::{Batch, SignalKey, SignalWaitRecord, SignalWaitsWrite, Store};

use crate::{instance_id, started};

fn wait(n: u32, step: &str, signal: &str, key: Option<(&str, &str)>) -> SignalWaitRecord {
    SignalWaitRecord {
        instance_id: instance_id(n),
        step: StepId::from(step),
        signal: signal.to_owned(),
        key: key.map(|(path, value)| SignalKey {
            path: path.to_owned(),
            value: value.to_owned(),
        }),
    }
}

fn replacing(n: u32, waits: Vec<SignalWaitRecord>) -> SignalWaitsWrite {
    SignalWaitsWrite {
        instance_id: instance_id(n),
        waits,
    }
}

fn key(path: &str, value: &str) -> SignalKey {
    SignalKey {
        path: path.to_owned(),
        value: value.to_owned(),
    }
}

pub(crate) async fn signal_waits_are_found_by_name_and_key(store: Arc<dyn Store>) {
    let ack = "partner.ack";
    let batch = Batch {
        instances: vec![
            started(1, "kit", InstanceStatus::Waiting),
            started(2, "kit", InstanceStatus::Waiting),
            started(3, "kit", InstanceStatus::Waiting),
        ],
        signal_waits: vec![
            replacing(
                1,
                vec![wait(1, "ack", ack, Some(("partner_id", "\"p-1\"")))],
            ),
            replacing(
                2,
                vec![
                    wait(2, "ack", ack, Some(("partner_id", "\"p-2\""))),
                    wait(2, "other", "done", None),
                ],
            ),
            replacing(3, vec![wait(3, "any", ack, None)]),
        ],
        ..Batch::default()
    };
    store.commit(&batch).await.unwrap();

    assert_eq!(store.signal_key_paths(ack).await.unwrap(), ["partner_id"]);
    assert!(store.signal_key_paths("done").await.unwrap().is_empty());
    let found = store
        .signal_waits(ack, &[key("partner_id", "\"p-2\"")])
        .await
        .unwrap();
    assert_eq!(
        found,
        [
            wait(2, "ack", ack, Some(("partner_id", "\"p-2\""))),
            wait(3, "any", ack, None),
        ],
        "the keyed wait with this key and the unkeyed one, by instance"
    );
    assert_eq!(
        store.signal_waits(ack, &[]).await.unwrap(),
        [wait(3, "any", ack, None)],
        "without a key: the unkeyed waits only"
    );
    assert_eq!(
        store
            .signal_waits(ack, &[key("other_path", "\"p-2\"")])
            .await
            .unwrap(),
        [wait(3, "any", ack, None)]
    );
    assert_eq!(
        store.signal_waits("done", &[]).await.unwrap(),
        [wait(2, "other", "done", None)]
    );

    // A later batch replaces an instance's rows: the last write of an instance wins, and
    // an empty one removes them; the others stay.
    let batch = Batch {
        signal_waits: vec![
            replacing(
                2,
                vec![wait(2, "ack", ack, Some(("partner_id", "\"p-9\"")))],
            ),
            replacing(3, vec![]),
            replacing(
                2,
                vec![wait(2, "ack", ack, Some(("partner.id", "\"p-3\"")))],
            ),
        ],
        ..Batch::default()
    };
    store.commit(&batch).await.unwrap();
    assert_eq!(
        store.signal_key_paths(ack).await.unwrap(),
        ["partner.id", "partner_id"],
        "key paths are kept"
    );
    assert_eq!(
        store
            .signal_waits(
                ack,
                &[key("partner_id", "\"p-1\""), key("partner.id", "\"p-3\"")]
            )
            .await
            .unwrap(),
        [
            wait(1, "ack", ack, Some(("partner_id", "\"p-1\""))),
            wait(2, "ack", ack, Some(("partner.id", "\"p-3\""))),
        ]
    );
    assert!(
        store
            .signal_waits(ack, &[key("partner_id", "\"p-9\"")])
            .await
            .unwrap()
            .is_empty(),
        "replaced by the later write"
    );
    assert!(store.signal_waits("done", &[]).await.unwrap().is_empty());
}

pub(crate) async fn signal_waits_are_written_with_their_batch_or_not_at_all(store: Arc<dyn Store>) {
    let first = started(1, "kit", InstanceStatus::Waiting);
    store
        .commit(&Batch {
            instances: vec![first.clone()],
            ..Batch::default()
        })
        .await
        .unwrap();
    // The batch fails (the instance exists): its rows are not written either.
    let failing = Batch {
        instances: vec![first],
        signal_waits: vec![replacing(1, vec![wait(1, "ack", "x", None)])],
        ..Batch::default()
    };
    assert!(store.commit(&failing).await.is_err());
    assert!(store.signal_waits("x", &[]).await.unwrap().is_empty());
    // A row filed under another instance is refused.
    let misfiled = Batch {
        signal_waits: vec![replacing(1, vec![wait(2, "ack", "x", None)])],
        ..Batch::default()
    };
    assert!(store.commit(&misfiled).await.is_err());
    assert!(store.signal_waits("x", &[]).await.unwrap().is_empty());
}
