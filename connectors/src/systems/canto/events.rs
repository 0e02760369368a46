//! The events Canto emits: its webhooks (configured in Canto's admin UI, one URL per
//! Canto event, naming the gridflow event in `?type=`) for `Add New Version` and `Update
//! Metadata`, delivered as `canto.version_added` and `canto.metadata_updated` (as `serve
//! --sandbox` subscribes). Canto's body names the content; its `secure_token` is removed
//! before the event reaches triggers or history.

use std::sync::LazyLock;

use serde_json::{Value, json};

use crate::EventSpec;
use crate::schema::{event, open_object, string};

/// The body of a Canto webhook: which content changed.
fn content() -> Value {
    open_object(
        &["scheme", "id"],
        json!({
            "scheme": string(), "id": string(), "album": {"type": ["string", "null"]},
            "displayname": {"type": ["string", "null"]},
        }),
    )
}

/// Every event of Canto, as the catalogue lists it.
pub(super) static EVENTS: LazyLock<Vec<EventSpec>> = LazyLock::new(|| {
    vec![
        event(
            "version_added",
            "A new version of a content was uploaded and processed (Canto's `Add New Version`); `scheme` and `id` name the content.",
            content(),
        ),
        event(
            "metadata_updated",
            "A content's metadata was edited (Canto's `Update Metadata`); `scheme` and `id` name the content.",
            content(),
        ),
    ]
});
