//! The events Smint.io emits through its change feed ([`super::feed`]): a licensed asset
//! changed (`smintio.asset_changed`) or its licence terms did (`smintio.licence_changed`).
//! Both carry the asset's summary, its licence terms and its normalised licence window
//! as `observed_rights` (`effects.rights`), which become rights timers.

use std::sync::LazyLock;

use serde_json::{Value, json};

use crate::EventSpec;
use crate::asset::{ApprovalState, RightsWindow};
use crate::effects::{Effects, ObservedRights};
use crate::schema::{array_of, event, open_object, string};

/// The payload of both events: the LPT as the feed read it.
fn change() -> Value {
    let nullable = json!({"type": ["string", "null"]});
    open_object(
        &[
            "asset_id",
            "cart_uuid",
            "approval",
            "rights",
            "observed_rights",
            "change_id",
        ],
        json!({
            "asset_id": string(), "cart_uuid": nullable.clone(), "name": nullable.clone(),
            "provider": nullable.clone(), "approval": ApprovalState::schema(),
            "rights": RightsWindow::schema(), "observed_rights": ObservedRights::array_schema(),
            "change_id": string(), "version": {"type": ["integer", "string", "null"]},
            "last_updated_at": nullable, "license_terms": array_of(json!({"type": "object"})),
        }),
    )
}

/// Every event of Smint.io, as the catalogue lists it.
pub(super) static EVENTS: LazyLock<Vec<EventSpec>> = LazyLock::new(|| {
    let rights = Effects {
        rights: true,
        ..Effects::default()
    };
    vec![
        event(
            "asset_changed",
            "A licensed asset (licence purchase transaction) changed in Smint.io; the payload is the asset with its licence window.",
            change(),
        )
        .with_effects(rights.clone()),
        event(
            "licence_changed",
            "The licence terms of a licensed asset changed in Smint.io; the payload is the asset with its new licence window.",
            change(),
        )
        .with_effects(rights),
    ]
});
