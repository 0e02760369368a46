//! The events OTMM emits: OTMM has no webhooks, so its one event comes from the change
//! feed ([`super::feed`]) that the poller reads: `otmm.asset_changed`, an asset summary
//! with the instant of the change and the change's id.

use std::sync::LazyLock;

use serde_json::json;

use super::feed::ASSET_CHANGED;
use super::summary_properties;
use crate::EventSpec;
use crate::schema::{event, open_object, string};

/// Every event of OTMM, as the catalogue lists it.
pub(super) static EVENTS: LazyLock<Vec<EventSpec>> = LazyLock::new(|| {
    let mut properties = summary_properties();
    properties["date_last_updated"] = json!({"type": "string", "format": "date-time"});
    properties["change_id"] = string();
    vec![event(
        ASSET_CHANGED,
        "An asset (its latest version) changed: metadata, approval or rights; polled from the search by its last update.",
        open_object(
            &[
                "asset_id",
                "approval",
                "rights",
                "metadata",
                "date_last_updated",
                "change_id",
            ],
            properties,
        ),
    )]
});
