//! The catalogue entry of the built-in `ledger` connector: its actions
//! `ledger.recipients` (who holds an asset) and `ledger.deliveries` (every delivery of a
//! period), which read the distribution ledger.
//!
//! The connector that runs it lives in the runtime (it reads the engine's store) and is
//! registered when the engine starts; this module holds its name, description and action
//! spec, so that the offline catalogue (`gridflow validate`, the workflows' test) checks
//! definitions that call it exactly as a server does. [`LedgerCatalogue`] is that spec
//! alone: it refuses to run.

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::connector::{ActionSpec, Connector, Error, Invocation, Result};
use crate::effects::DeliveryStatus;

/// The connector's name.
pub const NAME: &str = "ledger";

/// The connector's description, as `GET /connectors` lists it.
pub const DESCRIPTION: &str = "The distribution ledger: who received which version of which asset.";

/// The actions of the `ledger` connector: `recipients`, `deliveries`.
pub fn actions() -> Vec<ActionSpec> {
    let statuses: Vec<&str> = DeliveryStatus::ALL
        .iter()
        .map(|status| status.as_str())
        .collect();
    let recipient = json!({"type": "object",
        "required": ["partner", "channel", "reference", "version", "sha256", "status", "delivered_at"],
        "properties": {
            "delivery_id": {"type": "string"}, "partner": {"type": "string"},
            "channel": {"type": "string"}, "reference": {"type": "string"},
            "receipt": {"type": ["string", "null"]}, "version": {"type": "string"},
            "sha256": {"type": "string"}, "status": {"enum": statuses},
            "delivered_at": {"type": "string", "format": "date-time"}}});
    vec![
        ActionSpec {
            name: "recipients".to_owned(),
            description: "The partners an asset (a version of it) was delivered to, from the \
                      distribution ledger, oldest delivery first: by default those still \
                      holding it (delivered, downloaded, acknowledged)."
                .to_owned(),
            arguments: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["system", "asset_id"],
                "properties": {
                    "system": {"type": "string", "minLength": 1},
                    "asset_id": {"type": "string", "minLength": 1},
                    "version": {"type": "string"},
                    "status": {"type": "array", "items": {"enum": statuses}, "minItems": 1}
                }
            }),
            output: json!({"type": "object", "required": ["recipients"],
            "properties": {"recipients": {"type": "array", "items": recipient}}}),
            effects: crate::effects::Effects::default(),
        },
        deliveries_spec(&statuses),
    ]
}

/// `ledger.deliveries`: every delivery of a period, for a delivery audit report.
fn deliveries_spec(statuses: &[&str]) -> ActionSpec {
    let instant = json!({"type": "string", "format": "date-time"});
    let nullable_instant = json!({"type": ["string", "null"], "format": "date-time"});
    let nullable = json!({"type": ["string", "null"]});
    let delivery = json!({"type": "object",
        "required": ["delivery_id", "system", "asset_id", "version", "sha256", "partner", "channel",
                     "reference", "status", "delivered_at", "status_at"],
        "properties": {
            "delivery_id": {"type": "string"}, "system": {"type": "string"},
            "asset_id": {"type": "string"}, "version": {"type": "string"},
            "sha256": {"type": "string"}, "partner": {"type": "string"},
            "channel": {"type": "string"}, "reference": {"type": "string"},
            "receipt": nullable.clone(), "instance_id": nullable.clone(), "step": nullable,
            "status": {"enum": statuses}, "delivered_at": instant.clone(),
            "status_at": instant.clone(), "downloaded_at": nullable_instant.clone(),
            "acknowledged_at": nullable_instant}});
    ActionSpec {
        name: "deliveries".to_owned(),
        description: "Every delivery of a period (delivered at or after from, before until), \
                      oldest first, with its current status, first download and first \
                      acknowledgement; optionally of one system, partner or channel, or in \
                      some statuses. At most 5000: truncated says when the period held more."
            .to_owned(),
        arguments: json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["from", "until"],
            "properties": {
                "from": instant.clone(),
                "until": instant,
                "system": {"type": "string", "minLength": 1},
                "partner": {"type": "string", "minLength": 1},
                "channel": {"type": "string", "minLength": 1},
                "status": {"type": "array", "items": {"enum": statuses}, "minItems": 1}
            }
        }),
        output: json!({"type": "object", "required": ["deliveries", "truncated"],
            "properties": {"deliveries": {"type": "array", "items": delivery},
                           "truncated": {"type": "boolean"}}}),
        effects: crate::effects::Effects::default(),
    }
}

/// The `ledger` connector's catalogue entry without the engine: it validates, and
/// refuses to run.
#[derive(Debug)]
pub struct LedgerCatalogue {
    actions: Vec<ActionSpec>,
}

impl Default for LedgerCatalogue {
    fn default() -> Self {
        Self { actions: actions() }
    }
}

#[async_trait]
impl Connector for LedgerCatalogue {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        DESCRIPTION
    }

    fn actions(&self) -> &[ActionSpec] {
        &self.actions
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Value> {
        Err(Error::permanent(
            "unavailable",
            format!(
                "ledger.{} runs inside the engine, which registers the ledger connector",
                invocation.action
            ),
        ))
    }
}
