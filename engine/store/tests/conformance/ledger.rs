//! The conformance cases of [`gridflow_store::LedgerStore`]: deliveries opened once, status
//! entries once per origin with the precedence of `gridflow_core::audit::ledger`, chains
//! that verify, filters and pages, and writes inside a batch that land with it or not at
//! all.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use serde_json::json;

use gridflow_core::audit::ledger::{Delivery, Facts, Status, check_delivery};
use gridflow_core::{InstanceId, InstanceStatus};
use gridflow_store::{Batch, Error, LedgerFilter, LedgerWrite, StatusMatch, Store};

fn facts(partner: &str, channel: &str, reference: &str, version: &str) -> Facts {
    Facts {
        system: "otmm".into(),
        asset_id: "asset-1".into(),
        version: version.into(),
        sha256: format!("sha-{version}"),
        partner: partner.into(),
        channel: channel.into(),
        reference: reference.into(),
        receipt: Some(format!("{reference}-{partner}")),
        instance_id: Some(InstanceId::from("i-1".to_owned())),
        step: Some("deliver".into()),
        item: Some(0),
        attempt: Some(1),
    }
}

fn open(id: &str, facts: Facts, second: i64) -> LedgerWrite {
    LedgerWrite::Open {
        delivery_id: id.into(),
        facts,
        at: Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap() + Duration::seconds(second),
        origin: json!({"index": id}),
    }
}

fn status(reference: &str, partner: Option<&str>, status: Status, origin: &str) -> LedgerWrite {
    LedgerWrite::Status {
        matching: StatusMatch {
            channel: "vip".into(),
            reference: reference.into(),
            partner: partner.map(str::to_owned),
            receipt: None,
        },
        status,
        at: Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap(),
        detail: json!({"by": "login-1"}),
        origin: json!({"source": "vip", "event_id": origin, "index": 0}),
    }
}

async fn assert_chain(store: &Arc<dyn Store>, id: &str) -> Delivery {
    let (row, entries) = store.delivery(id).await.unwrap();
    assert_eq!(check_delivery(Some(&row), id, &entries), None, "{id}");
    row
}

/// A delivery is opened once whatever the retries; a status change lands on the deliveries
/// it matches once per origin, by precedence, and each chain verifies.
pub(crate) async fn ledger_writes_are_idempotent_and_chained(store: Arc<dyn Store>) {
    let writes = vec![
        open("d1", facts("GC1", "vip", "pkg-1", "2"), 0),
        open("d2", facts("GC2", "vip", "pkg-1", "2"), 1),
        open("d3", facts("GC1", "trading_grid", "post-1", "2"), 2),
    ];
    assert_eq!(store.apply_ledger(&writes).await.unwrap(), 3);
    assert_eq!(store.apply_ledger(&writes).await.unwrap(), 0);

    let downloaded = status("pkg-1", Some("GC1"), Status::Downloaded, "e1");
    assert_eq!(
        store
            .apply_ledger(std::slice::from_ref(&downloaded))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.apply_ledger(&[downloaded]).await.unwrap(), 0);
    let row = assert_chain(&store, "d1").await;
    assert_eq!(row.status, Status::Downloaded);
    assert!(row.downloaded_at.is_some());
    assert_eq!(row.head_seq, 2);
    // Both deliveries of the package are withdrawn; a late download is an entry only.
    let withdrawn = status("pkg-1", None, Status::Withdrawn, "e2");
    let late = status("pkg-1", Some("GC2"), Status::Downloaded, "e3");
    assert_eq!(store.apply_ledger(&[withdrawn, late]).await.unwrap(), 3);
    let first = assert_chain(&store, "d1").await;
    let second = assert_chain(&store, "d2").await;
    assert_eq!((first.status, first.head_seq), (Status::Withdrawn, 3));
    assert_eq!((second.status, second.head_seq), (Status::Withdrawn, 3));
    assert!(second.downloaded_at.is_some());
    let (_, entries) = store.delivery("d2").await.unwrap();
    assert_eq!(entries[1].detail, json!({"by": "login-1"}));
    let untouched = assert_chain(&store, "d3").await;
    assert_eq!(untouched.status, Status::Delivered);
    assert!(matches!(
        store.delivery("nope").await,
        Err(Error::NotFound(_))
    ));
}

/// Filters narrow, pages go newest first and follow each other, and the audit readers
/// return everything by id.
pub(crate) async fn ledger_is_listed_by_filter_and_page(store: Arc<dyn Store>) {
    let mut writes = Vec::new();
    for index in 0..5 {
        let channel = if index % 2 == 0 {
            "vip"
        } else {
            "trading_grid"
        };
        writes.push(open(
            &format!("d{index}"),
            facts(&format!("GC{index}"), channel, &format!("ref-{index}"), "3"),
            index,
        ));
    }
    store.apply_ledger(&writes).await.unwrap();
    store
        .apply_ledger(&[status("ref-0", None, Status::Acknowledged, "e1")])
        .await
        .unwrap();
    let all = LedgerFilter::default();
    let first = store.list_deliveries(&all, None, 2).await.unwrap();
    let ids = |page: &gridflow_store::Page<Delivery>| -> Vec<String> {
        page.items.iter().map(|d| d.delivery_id.clone()).collect()
    };
    assert_eq!(ids(&first), ["d4", "d3"]);
    let second = store
        .list_deliveries(&all, first.next_cursor.as_deref(), 2)
        .await
        .unwrap();
    assert_eq!(ids(&second), ["d2", "d1"]);
    let third = store
        .list_deliveries(&all, second.next_cursor.as_deref(), 2)
        .await
        .unwrap();
    assert_eq!(
        (ids(&third), third.next_cursor),
        (vec!["d0".to_owned()], None)
    );
    let vip = LedgerFilter {
        channel: Some("vip".into()),
        ..LedgerFilter::default()
    };
    assert_eq!(
        ids(&store.list_deliveries(&vip, None, 10).await.unwrap()),
        ["d4", "d2", "d0"]
    );
    let acknowledged = LedgerFilter {
        statuses: vec![Status::Acknowledged],
        asset_id: Some("asset-1".into()),
        version: Some("3".into()),
        system: Some("otmm".into()),
        ..LedgerFilter::default()
    };
    assert_eq!(
        ids(&store
            .list_deliveries(&acknowledged, None, 10)
            .await
            .unwrap()),
        ["d0"]
    );
    let partner = LedgerFilter {
        partner: Some("GC3".into()),
        ..LedgerFilter::default()
    };
    assert_eq!(
        ids(&store.list_deliveries(&partner, None, 10).await.unwrap()),
        ["d3"]
    );
    assert!(matches!(
        store.list_deliveries(&all, Some("garbage"), 10).await,
        Err(Error::Invalid(_))
    ));
    let by_id = store.deliveries_after(Some("d1"), 2).await.unwrap();
    assert_eq!(by_id.len(), 2);
    assert_eq!(by_id[0].delivery_id, "d2");
    let entries = store.entries_after(Some(("d0", 1)), 100).await.unwrap();
    assert_eq!(entries.len(), 5);
    assert_eq!((entries[0].delivery_id.as_str(), entries[0].seq), ("d0", 2));
}

/// Ledger writes in a batch land with it; a batch that fails leaves no ledger row.
pub(crate) async fn ledger_writes_land_with_their_batch(store: Arc<dyn Store>) {
    let batch = Batch {
        ledger: vec![open("d1", facts("GC1", "vip", "pkg-1", "2"), 0)],
        ..Batch::default()
    };
    assert!(!batch.is_empty());
    store.commit(&batch).await.unwrap();
    store.commit(&batch).await.unwrap();
    let row = assert_chain(&store, "d1").await;
    assert_eq!(row.head_seq, 1);
    // A stale update fails the batch: its ledger write is not kept.
    let mut stale = crate::started(90, "partner-media-request", InstanceStatus::Running);
    stale.expected_row_version = Some(4);
    stale.record.row_version = 5;
    let failing = Batch {
        instances: vec![stale],
        ledger: vec![open("d2", facts("GC2", "vip", "pkg-1", "2"), 0)],
        ..Batch::default()
    };
    assert!(matches!(
        store.commit(&failing).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        store.delivery("d2").await,
        Err(Error::NotFound(_))
    ));
}

/// Concurrent status changes of one delivery each extend its chain from the head the one
/// before left (row locks on PostgreSQL, one writer on SQLite): none is lost, the chain
/// verifies.
pub(crate) async fn concurrent_status_changes_chain_in_turn(store: Arc<dyn Store>) {
    store
        .apply_ledger(&[open("d1", facts("GC1", "vip", "pkg-1", "2"), 0)])
        .await
        .unwrap();
    let writers = (0..8).map(|index| {
        let store = store.clone();
        tokio::spawn(async move {
            let origin = format!("e{index}");
            store
                .apply_ledger(&[status("pkg-1", None, Status::Downloaded, &origin)])
                .await
        })
    });
    for writer in writers.collect::<Vec<_>>() {
        assert_eq!(writer.await.unwrap().unwrap(), 1);
    }
    let row = assert_chain(&store, "d1").await;
    assert_eq!((row.head_seq, row.status), (9, Status::Downloaded));
}
