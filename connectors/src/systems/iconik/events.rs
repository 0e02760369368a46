//! The events iconik emits: its webhooks POST the change envelope of `iconik.md` for every
//! change to an asset (realms `metadata`, `versions`, `approvals` \[I\]). gridflow's
//! subscription names the event in its URL (`/api/v1/events/iconik?type=asset_changed`,
//! as `serve --sandbox` subscribes), so every asset change is `iconik.asset_changed`; the
//! payload is the envelope as iconik sends it.

use std::sync::LazyLock;

use serde_json::json;

use crate::EventSpec;
use crate::schema::{event, open_object, string};

/// Every event of iconik, as the catalogue lists it.
pub(super) static EVENTS: LazyLock<Vec<EventSpec>> = LazyLock::new(|| {
    vec![event(
        "asset_changed",
        "An asset changed in iconik: its metadata, a new version or an approval (`realm`), created or updated (`operation`); `object_id` is the asset.",
        open_object(
            &["event_type", "realm", "operation", "object_id"],
            json!({
                "system_domain_id": string(), "event_type": string(), "realm": string(),
                "operation": string(), "object_id": string(), "user_id": {"type": ["string", "null"]},
                "request_id": string(), "data": {"description": "The changed object as iconik returned it."},
            }),
        ),
    )]
});
