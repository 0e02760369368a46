//! The conformance cases of [`gridflow_store::WebhookStore`].

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};

use gridflow_store::{EventClaim, Store};

/// An event id is claimed once; a recent claim is in flight, a stale or released one is
/// taken over once, a delivered one stays delivered, and pruning forgets old ids.
pub(crate) async fn webhook_event_is_claimed_once(store: Arc<dyn Store>) {
    let at = Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap();
    let stale = |now: chrono::DateTime<Utc>| now - Duration::seconds(30);
    let claim = |source: &'static str, id: &'static str, now| {
        let store = store.clone();
        async move {
            store
                .claim_webhook_event(source, id, now, stale(now))
                .await
                .unwrap()
        }
    };
    assert_eq!(claim("iconik", "e1", at).await, EventClaim::New);
    // The same id of another source is another event.
    assert_eq!(claim("canto", "e1", at).await, EventClaim::New);
    assert_eq!(
        claim("iconik", "e1", at + Duration::seconds(1)).await,
        EventClaim::InFlight
    );
    // Two copies after the claim went stale: exactly one takes it over.
    let later = at + Duration::seconds(60);
    let (first, second) = tokio::join!(claim("iconik", "e1", later), claim("iconik", "e1", later));
    let mut outcomes = [first, second];
    outcomes.sort_by_key(|claim| format!("{claim:?}"));
    assert_eq!(outcomes, [EventClaim::InFlight, EventClaim::Reclaimed]);
    store
        .complete_webhook_event("iconik", "e1", later)
        .await
        .unwrap();
    assert_eq!(
        claim("iconik", "e1", later + Duration::days(1)).await,
        EventClaim::Delivered
    );
    // Releasing a delivered event changes nothing; a released claim is taken at once.
    store.release_webhook_event("iconik", "e1").await.unwrap();
    assert_eq!(claim("iconik", "e1", later).await, EventClaim::Delivered);
    store.release_webhook_event("canto", "e1").await.unwrap();
    assert_eq!(claim("canto", "e1", at).await, EventClaim::Reclaimed);

    assert_eq!(claim("iconik", "e2", later).await, EventClaim::New);
    // Pruned by first receipt: e1 of both sources, not e2.
    assert_eq!(
        store
            .prune_webhook_events(at + Duration::seconds(1))
            .await
            .unwrap(),
        2
    );
    assert_eq!(claim("iconik", "e1", later).await, EventClaim::New);
    assert_eq!(
        claim("iconik", "e2", later + Duration::seconds(1)).await,
        EventClaim::InFlight
    );
}
