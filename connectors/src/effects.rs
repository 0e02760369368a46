//! What an action or an event means beyond its output, declared in its spec
//! ([`Effects`]) so that the engine acts on it without knowing the system:
//!
//! - `delivers`: the action gives partners the [`Artifact`](crate::content::Artifact)s
//!   found at this JSON pointer of its arguments (one artifact or an array). Before it
//!   runs, the engine checks them against the instance's approved bindings
//!   (`artifact_not_approved`).
//! - `ledger`: the output (or payload) has a `ledger` array of [`LedgerChange`]s: the
//!   deliveries it made and the status changes it reports. The engine writes them to the
//!   distribution ledger, in the same transaction as the step's success for an action.
//! - `rights`: the output (or payload) has an `observed_rights` array of
//!   [`ObservedRights`]: licence or embargo windows seen, which become durable timers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::asset::RightsWindow;

/// The field of an output or payload holding its [`LedgerChange`]s.
pub const LEDGER_FIELD: &str = "ledger";

/// The field of an output or payload holding its [`ObservedRights`].
pub const RIGHTS_FIELD: &str = "observed_rights";

/// What an action or event declares beyond its schemas; all off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effects {
    /// JSON pointer into the arguments to the artifacts the action delivers to partners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivers: Option<String>,
    /// The output or payload carries `ledger`: [`LedgerChange`]s.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ledger: bool,
    /// The output or payload carries `observed_rights`: [`ObservedRights`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rights: bool,
}

impl Effects {
    /// No effects: what most actions and events declare.
    pub fn is_none(&self) -> bool {
        self == &Self::default()
    }
}

/// Where a delivery stands, as the ledger keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Made available to the partner.
    Delivered,
    /// The partner downloaded it.
    Downloaded,
    /// The partner acknowledged it.
    Acknowledged,
    /// The channel could not deliver it.
    Failed,
    /// A newer version replaced it.
    Superseded,
    /// Withdrawn: the partner lost access.
    Withdrawn,
}

impl DeliveryStatus {
    /// Every status, in order.
    pub const ALL: [Self; 6] = [
        Self::Delivered,
        Self::Downloaded,
        Self::Acknowledged,
        Self::Failed,
        Self::Superseded,
        Self::Withdrawn,
    ];

    /// The name used in JSON, the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Downloaded => "downloaded",
            Self::Acknowledged => "acknowledged",
            Self::Failed => "failed",
            Self::Superseded => "superseded",
            Self::Withdrawn => "withdrawn",
        }
    }

    /// Whether the partner still holds the delivery (it was neither withdrawn, superseded
    /// nor failed): the recipients a notice or recall reaches.
    pub fn is_held(self) -> bool {
        matches!(
            self,
            Self::Delivered | Self::Downloaded | Self::Acknowledged
        )
    }
}

/// One delivery of one artifact to one partner through one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The asset system (`otmm`, `iconik`, `canto`, `smintio`).
    pub system: String,
    /// The asset id there.
    pub asset_id: String,
    /// The version delivered.
    pub version: String,
    /// The SHA-256 of the bytes delivered.
    pub sha256: String,
    /// The partner company (the hub's company id, VIP's recipient id).
    pub partner: String,
    /// The channel (`trading_grid`, `vip`).
    pub channel: String,
    /// The channel's reference of the share: the hub's post id, VIP's package id.
    pub reference: String,
    /// The channel's id of this partner's copy where it has one (VIP's delivery id, the
    /// hub's document id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
}

/// A change of status of the deliveries it matches: those of `channel` and `reference`,
/// narrowed to `partner` and `receipt` when given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// The new status.
    pub status: DeliveryStatus,
    /// The channel.
    pub channel: String,
    /// The channel's reference of the share.
    pub reference: String,
    /// Only this partner's delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<String>,
    /// Only the delivery with this receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
    /// When it happened, as the channel says; the commit's time when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    /// Who (a partner's login), why (a withdrawal's reason), by what (the superseding
    /// version): kept with the change. Never credentials or links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

/// One entry of a `ledger` array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum LedgerChange {
    /// A new delivery.
    Delivered(Delivery),
    /// A status change of earlier deliveries.
    Status(StatusChange),
}

impl LedgerChange {
    /// The JSON Schema of a `ledger` array.
    pub fn array_schema() -> Value {
        let string = json!({"type": "string"});
        let optional = json!({"type": ["string", "null"]});
        let statuses: Vec<&str> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
        json!({"type": "array", "items": {"oneOf": [
            {"type": "object",
             "required": ["change", "system", "asset_id", "version", "sha256", "partner", "channel", "reference"],
             "properties": {"change": {"const": "delivered"}, "system": string, "asset_id": string,
                            "version": string, "sha256": string, "partner": string, "channel": string,
                            "reference": string, "receipt": optional}},
            {"type": "object",
             "required": ["change", "status", "channel", "reference"],
             "properties": {"change": {"const": "status"}, "status": {"enum": statuses},
                            "channel": string, "reference": string, "partner": optional,
                            "receipt": optional, "at": {"type": ["string", "null"], "format": "date-time"},
                            "detail": {}}}
        ]}})
    }

    /// The changes in `value`'s `ledger` field; `Err` names the first entry that is not a
    /// ledger change.
    pub fn read_all(value: &Value) -> Result<Vec<LedgerChange>, String> {
        let Some(entries) = value.get(LEDGER_FIELD) else {
            return Ok(Vec::new());
        };
        serde_json::from_value(entries.clone()).map_err(|error| format!("{LEDGER_FIELD}: {error}"))
    }
}

/// A rights window seen for an asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedRights {
    /// The asset system.
    pub system: String,
    /// The asset id there.
    pub asset_id: String,
    /// The window, unknown bounds as `null`.
    #[serde(flatten)]
    pub window: RightsWindow,
}

impl ObservedRights {
    /// The JSON Schema of an `observed_rights` array.
    pub fn array_schema() -> Value {
        json!({"type": "array", "items": {"type": "object",
            "required": ["system", "asset_id", "valid_from", "valid_until"],
            "properties": {"system": {"type": "string"}, "asset_id": {"type": "string"},
                           "valid_from": {"type": ["string", "null"], "format": "date-time"},
                           "valid_until": {"type": ["string", "null"], "format": "date-time"}}}})
    }

    /// The windows in `value`'s `observed_rights` field.
    pub fn read_all(value: &Value) -> Result<Vec<ObservedRights>, String> {
        let Some(entries) = value.get(RIGHTS_FIELD) else {
            return Ok(Vec::new());
        };
        serde_json::from_value(entries.clone()).map_err(|error| format!("{RIGHTS_FIELD}: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_changes_read_from_an_output() {
        let output = json!({"post_id": "p-1", "ledger": [
            {"change": "delivered", "system": "otmm", "asset_id": "a", "version": "2", "sha256": "ab",
             "partner": "GC1", "channel": "trading_grid", "reference": "p-1"},
            {"change": "status", "status": "withdrawn", "channel": "vip", "reference": "pkg-1",
             "detail": {"reason": "licence ended"}}
        ]});
        let changes = LedgerChange::read_all(&output).unwrap();
        assert_eq!(changes.len(), 2);
        assert!(matches!(&changes[0], LedgerChange::Delivered(d) if d.partner == "GC1"));
        assert!(
            matches!(&changes[1], LedgerChange::Status(s) if s.status == DeliveryStatus::Withdrawn)
        );
        let validator = jsonschema::validator_for(&LedgerChange::array_schema()).unwrap();
        assert!(validator.is_valid(&output["ledger"]));
        assert!(LedgerChange::read_all(&json!({"ledger": [{"change": "lost"}]})).is_err());
        assert!(LedgerChange::read_all(&json!({})).unwrap().is_empty());
    }

    #[test]
    fn effects_default_to_none_and_serialise_sparsely() {
        assert!(Effects::default().is_none());
        let effects = Effects {
            ledger: true,
            ..Effects::default()
        };
        assert_eq!(
            serde_json::to_value(&effects).unwrap(),
            json!({"ledger": true})
        );
    }
}
