//! Conformance of [`gridflow_store::RightsStore`]: windows are upserted per asset (the
//! latest observation wins, `updated_at` moves only when a bound changed), written with
//! their batch or not at all; a window is due for a trigger until a firing is recorded at
//! its end, and due again once its end moves; a firing is recorded once.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};

use gridflow_core::{DefinitionId, InstanceId, InstanceStatus};
use gridflow_store::{Batch, FiringState, ObservedWindow, RightsFiring, Store};

use crate::started;

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, day, 9, 0, 0).unwrap()
}

fn seen(
    system: &str,
    asset: &str,
    until: Option<DateTime<Utc>>,
    seen_at: DateTime<Utc>,
) -> ObservedWindow {
    ObservedWindow {
        system: system.to_owned(),
        asset_id: asset.to_owned(),
        valid_from: Some(at(1)),
        valid_until: until,
        seen_at,
    }
}

fn fired(definition: &str, trigger: u32, asset: &str, until: DateTime<Utc>) -> RightsFiring {
    RightsFiring {
        definition_id: DefinitionId::from(definition),
        trigger_index: trigger,
        system: "otmm".to_owned(),
        asset_id: asset.to_owned(),
        valid_until: until,
        state: FiringState::Started,
        instance_id: Some(InstanceId::from("i-1")),
        fired_at: at(2),
        fired_by: "node-a".to_owned(),
    }
}

/// Windows are kept per asset: the latest observation wins, `updated_at` moves only with
/// a bound, an unknown end is kept as unknown and never due.
pub(crate) async fn rights_windows_are_upserted_per_asset(store: Arc<dyn Store>) {
    let until = at(20) + Duration::microseconds(7);
    // In a batch, the last window of an asset wins.
    let batch = Batch {
        rights: vec![
            seen("otmm", "a-1", Some(at(25)), at(2)),
            seen("otmm", "a-1", Some(until), at(2)),
            seen("canto", "a-1", None, at(2)),
        ],
        ..Batch::default()
    };
    store.commit(&batch).await.unwrap();
    let row = store.rights_window("otmm", "a-1").await.unwrap().unwrap();
    assert_eq!(row.valid_until, Some(until));
    assert_eq!(row.valid_from, Some(at(1)));
    assert_eq!(
        (row.first_seen_at, row.seen_at, row.updated_at),
        (at(2), at(2), at(2))
    );
    assert!(store.rights_window("otmm", "a-2").await.unwrap().is_none());

    // Seen again unchanged: only `seen_at` moves.
    store
        .observe_rights(&[seen("otmm", "a-1", Some(until), at(3))])
        .await
        .unwrap();
    let row = store.rights_window("otmm", "a-1").await.unwrap().unwrap();
    assert_eq!(
        (row.first_seen_at, row.seen_at, row.updated_at),
        (at(2), at(3), at(2))
    );

    // A new end: both move.
    store
        .observe_rights(&[seen("otmm", "a-1", Some(at(22)), at(4))])
        .await
        .unwrap();
    let row = store.rights_window("otmm", "a-1").await.unwrap().unwrap();
    assert_eq!(row.valid_until, Some(at(22)));
    assert_eq!(
        (row.first_seen_at, row.seen_at, row.updated_at),
        (at(2), at(4), at(4))
    );

    // The unknown end of the canto asset is kept unknown; an unknown start too.
    let canto = store.rights_window("canto", "a-1").await.unwrap().unwrap();
    assert_eq!(canto.valid_until, None);
    let definition = DefinitionId::from("recall");
    let due = store
        .due_rights_windows(&definition, 0, None, at(31), 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0].system, "otmm");
    assert_eq!(
        store.next_rights_end_after(None, at(1)).await.unwrap(),
        Some(at(22))
    );
    assert_eq!(
        store.next_rights_end_after(None, at(22)).await.unwrap(),
        None
    );

    // An empty asset id is refused, and nothing of its batch is written.
    let invalid = Batch {
        rights: vec![
            seen("otmm", "a-9", Some(at(9)), at(5)),
            seen("otmm", "", None, at(5)),
        ],
        ..Batch::default()
    };
    assert!(store.commit(&invalid).await.is_err());
    assert!(store.observe_rights(&invalid.rights).await.is_err());
    assert!(store.rights_window("otmm", "a-9").await.unwrap().is_none());
}

/// Windows are written with their batch or not at all.
pub(crate) async fn rights_windows_are_written_with_their_batch_or_not_at_all(
    store: Arc<dyn Store>,
) {
    let first = started(1, "kit", InstanceStatus::Running);
    store
        .commit(&Batch {
            instances: vec![first.clone()],
            ..Batch::default()
        })
        .await
        .unwrap();
    // The batch fails (the instance exists): its window is not written either.
    let failing = Batch {
        instances: vec![first],
        rights: vec![seen("otmm", "a-1", Some(at(20)), at(2))],
        ..Batch::default()
    };
    assert!(store.commit(&failing).await.is_err());
    assert!(store.rights_window("otmm", "a-1").await.unwrap().is_none());
}

/// A window is due for each trigger until that trigger's firing at its end is recorded
/// (once), narrowed to a system when asked, earliest end first; a moved end is due again.
pub(crate) async fn rights_windows_are_due_until_fired_at_their_end(store: Arc<dyn Store>) {
    store
        .observe_rights(&[
            seen("otmm", "b", Some(at(12)), at(2)),
            seen("otmm", "a", Some(at(12)), at(2)),
            seen("otmm", "c", Some(at(10)), at(2)),
            seen("smintio", "d", Some(at(11)), at(2)),
            seen("otmm", "late", Some(at(28)), at(2)),
        ])
        .await
        .unwrap();
    let recall = DefinitionId::from("recall");
    let names = |windows: Vec<gridflow_store::RightsWindowRecord>| {
        windows
            .into_iter()
            .map(|window| format!("{}/{}", window.system, window.asset_id))
            .collect::<Vec<_>>()
    };
    let due = store
        .due_rights_windows(&recall, 0, None, at(12), 10)
        .await
        .unwrap();
    assert_eq!(names(due), ["otmm/c", "smintio/d", "otmm/a", "otmm/b"]);
    let due = store
        .due_rights_windows(&recall, 0, Some("otmm"), at(12), 2)
        .await
        .unwrap();
    assert_eq!(names(due), ["otmm/c", "otmm/a"]);

    assert!(
        store
            .record_rights_firing(&fired("recall", 0, "c", at(10)))
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_rights_firing(&fired("recall", 0, "c", at(10)))
            .await
            .unwrap()
    );
    let due = store
        .due_rights_windows(&recall, 0, Some("otmm"), at(12), 10)
        .await
        .unwrap();
    assert_eq!(names(due), ["otmm/a", "otmm/b"]);
    // Another trigger of the definition, and another definition, still have it due.
    let due = store
        .due_rights_windows(&recall, 1, Some("otmm"), at(12), 10)
        .await
        .unwrap();
    assert_eq!(names(due), ["otmm/c", "otmm/a", "otmm/b"]);
    let notice = DefinitionId::from("notice");
    assert_eq!(
        store
            .due_rights_windows(&notice, 0, Some("otmm"), at(10), 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // The window of c moves: due again at its new end, not before.
    store
        .observe_rights(&[seen("otmm", "c", Some(at(15)), at(3))])
        .await
        .unwrap();
    let due = store
        .due_rights_windows(&recall, 0, Some("otmm"), at(12), 10)
        .await
        .unwrap();
    assert_eq!(names(due), ["otmm/a", "otmm/b"]);
    let due = store
        .due_rights_windows(&recall, 0, Some("otmm"), at(15), 10)
        .await
        .unwrap();
    assert_eq!(names(due), ["otmm/a", "otmm/b", "otmm/c"]);
    assert_eq!(
        store
            .next_rights_end_after(Some("otmm"), at(12))
            .await
            .unwrap(),
        Some(at(15))
    );
    assert_eq!(
        store
            .next_rights_end_after(Some("smintio"), at(12))
            .await
            .unwrap(),
        None
    );

    let mut failed = fired("recall", 0, "a", at(12));
    failed.state = FiringState::Filtered;
    failed.instance_id = None;
    assert!(store.record_rights_firing(&failed).await.unwrap());
    assert_eq!(
        store.rights_firings(&recall).await.unwrap(),
        [fired("recall", 0, "c", at(10)), failed]
    );
    assert!(store.rights_firings(&notice).await.unwrap().is_empty());
}
