//! The distribution ledger on the engine: what a step's output or an event writes to it,
//! and reading it back.
//!
//! - A step whose action declares `effects.ledger` has its output's `ledger` checked by
//!   the executor before the outcome is reported (`invalid_ledger`, permanent, names the
//!   entry), and written by the driver in the same batch as the step's success
//!   ([`writes_for_output`]): each `delivered` change opens a delivery whose id is
//!   `<idempotency key>:<index>`, so a batch committed again opens nothing twice.
//! - An event of a registered connector is asked for its `event_effects`, whose ledger
//!   changes are written in their own transaction before the event starts or signals
//!   anything ([`Engine::apply_event_ledger`]); the origin is the source and the event id,
//!   so a redelivered event writes nothing twice.
//! - `audit` checks the ledger in `audit verify` and writes it in the export;
//!   `recipients` is the built-in `ledger` connector (`deliveries`: its report of a period).

pub(crate) mod audit;
pub(crate) mod commit;
pub(crate) mod deliveries;
pub(crate) mod recipients;
pub(crate) use recipients::list_recipients;

use chrono::{DateTime, Utc};
use serde_json::Value;

use gridflow_connectors::Registry;
use gridflow_connectors::effects::{DeliveryStatus, LedgerChange};
use gridflow_core::audit::ledger::{Delivery, Entry, Facts, Status, event_origin, step_origin};
use gridflow_core::command::WorkKey;
use gridflow_core::history::canonical_json;
use gridflow_core::{Definition, InstanceId};
use gridflow_store::{LedgerFilter, LedgerWrite, Page, StatusMatch};
use sha2::{Digest, Sha256};

use crate::engine::Engine;
use crate::error::Result;

/// The ledger's status of a connector's delivery status (the same names).
pub(crate) fn status_of(status: DeliveryStatus) -> Status {
    match status {
        DeliveryStatus::Delivered => Status::Delivered,
        DeliveryStatus::Downloaded => Status::Downloaded,
        DeliveryStatus::Acknowledged => Status::Acknowledged,
        DeliveryStatus::Failed => Status::Failed,
        DeliveryStatus::Superseded => Status::Superseded,
        DeliveryStatus::Withdrawn => Status::Withdrawn,
    }
}

/// Whether the action `<connector>.<action>` declares ledger changes in its output.
pub(crate) fn declares_ledger(registry: &Registry, action: &str) -> bool {
    registry
        .action(action)
        .is_some_and(|(_, spec)| spec.effects.ledger)
}

/// The action a unit of `definition` runs: the step's, or its compensation's.
pub(crate) fn unit_action<'d>(definition: &'d Definition, work: &WorkKey) -> Option<&'d str> {
    let step = definition.step(&work.step)?;
    if work.compensation {
        return step
            .compensate
            .as_ref()
            .map(|compensate| compensate.action.as_str());
    }
    step.action.as_deref()
}

/// The executor's check of a successful output: when `action` declares ledger changes,
/// its `ledger` must read as them; `Err` is the message of the permanent `invalid_ledger`
/// failure, naming the entry.
pub(crate) fn check_output(
    registry: &Registry,
    action: &str,
    output: &Value,
) -> Result<(), String> {
    if !declares_ledger(registry, action) {
        return Ok(());
    }
    read_changes(output).map(|_| ())
}

/// The changes of an output or payload's `ledger`; `Err` names the first entry that is
/// not a ledger change.
fn read_changes(value: &Value) -> Result<Vec<LedgerChange>, String> {
    match value.get(gridflow_connectors::effects::LEDGER_FIELD) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(entries)) => entries
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                serde_json::from_value(entry.clone())
                    .map_err(|error| format!("ledger[{index}] is not a ledger change: {error}"))
            })
            .collect(),
        Some(_) => Err("ledger is not an array of ledger changes".to_owned()),
    }
}

fn status_write(
    change: gridflow_connectors::effects::StatusChange,
    at: DateTime<Utc>,
    origin: Value,
) -> LedgerWrite {
    LedgerWrite::Status {
        matching: StatusMatch {
            channel: change.channel,
            reference: change.reference,
            partner: change.partner,
            receipt: change.receipt,
        },
        status: status_of(change.status),
        at: change.at.unwrap_or(at),
        detail: change.detail.unwrap_or(Value::Null),
        origin,
    }
}

fn facts_of(delivery: gridflow_connectors::effects::Delivery) -> Facts {
    Facts {
        system: delivery.system,
        asset_id: delivery.asset_id,
        version: delivery.version,
        sha256: delivery.sha256,
        partner: delivery.partner,
        channel: delivery.channel,
        reference: delivery.reference,
        receipt: delivery.receipt,
        instance_id: None,
        step: None,
        item: None,
        attempt: None,
    }
}

/// The ledger writes of a unit's successful output, at `at` (the outcome's instant).
/// `Err` when the output's `ledger` does not read (the executor refused such outputs, so
/// this is an outcome from elsewhere; the caller logs it).
pub(crate) fn writes_for_output(
    instance: &InstanceId,
    work: &WorkKey,
    output: &Value,
    at: DateTime<Utc>,
) -> Result<Vec<LedgerWrite>, String> {
    let key = work.idempotency_key(instance);
    let changes = read_changes(output)?;
    Ok(changes
        .into_iter()
        .enumerate()
        .map(|(index, change)| {
            let origin = step_origin(
                instance,
                &key,
                work.step.as_str(),
                work.item,
                work.attempt,
                index,
            );
            match change {
                LedgerChange::Delivered(delivery) => LedgerWrite::Open {
                    delivery_id: format!("{key}:{index}"),
                    facts: Facts {
                        instance_id: Some(instance.clone()),
                        step: Some(work.step.to_string()),
                        item: work.item,
                        attempt: Some(work.attempt),
                        ..facts_of(delivery)
                    },
                    at,
                    origin,
                },
                LedgerChange::Status(change) => status_write(change, at, origin),
            }
        })
        .collect())
}

/// The ledger writes of event `event_id` of `source` (its changes, in order).
pub(crate) fn writes_for_event(
    source: &str,
    event_id: &str,
    changes: Vec<LedgerChange>,
    at: DateTime<Utc>,
) -> Vec<LedgerWrite> {
    // Event ids are the source's text: hashed into the delivery id, so it stays a path
    // segment whatever they hold.
    let digest = hex::encode(Sha256::digest(event_id.as_bytes()));
    changes
        .into_iter()
        .enumerate()
        .map(|(index, change)| {
            let origin = event_origin(source, event_id, index);
            match change {
                LedgerChange::Delivered(delivery) => LedgerWrite::Open {
                    delivery_id: format!("{source}:{}:{index}", &digest[..24]),
                    facts: facts_of(delivery),
                    at,
                    origin,
                },
                LedgerChange::Status(change) => status_write(change, at, origin),
            }
        })
        .collect()
}

/// A delivery with its entries, as `GET /ledger/{id}` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeliveryDetail {
    /// The row.
    #[serde(flatten)]
    pub delivery: Delivery,
    /// Its chain, in seq order.
    pub entries: Vec<Entry>,
}

impl Engine {
    /// Writes the ledger changes that event `name` (`<source>.<type>`) reports, when its
    /// source is a registered connector, in their own transaction. `event_id` (the webhook's
    /// or the change's id; else the payload's digest) makes a redelivery write nothing.
    pub(crate) async fn apply_event_ledger(
        &self,
        name: &str,
        event: &Value,
        event_id: Option<&str>,
    ) -> Result<u64> {
        let shared = self.shared();
        let Some((source, kind)) = name.split_once('.') else {
            return Ok(0);
        };
        let Some(connector) = shared
            .registry
            .connectors()
            .find(|connector| connector.name() == source)
        else {
            return Ok(0);
        };
        let changes = connector.event_effects(kind, event).ledger;
        if changes.is_empty() {
            return Ok(0);
        }
        let digest;
        let event_id = match event_id {
            Some(id) => id,
            None => {
                digest = hex::encode(Sha256::digest(canonical_json(event).as_bytes()));
                &digest
            }
        };
        let writes = writes_for_event(source, event_id, changes, shared.clock.now());
        let written = shared.store.apply_ledger(&writes).await?;
        tracing::debug!(event = name, written, "ledger entries of an event written");
        Ok(written)
    }

    /// The deliveries matching `filter`, newest first, one page at a time.
    pub async fn ledger(
        &self,
        filter: &LedgerFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Delivery>> {
        Ok(self
            .shared()
            .store
            .list_deliveries(filter, cursor, limit)
            .await?)
    }

    /// One delivery with its entries.
    pub async fn delivery(&self, delivery_id: &str) -> Result<DeliveryDetail> {
        let (delivery, entries) = self.shared().store.delivery(delivery_id).await?;
        Ok(DeliveryDetail { delivery, entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_bad_ledger_entry_is_named() {
        let output = json!({"ledger": [
            {"change": "delivered", "system": "otmm", "asset_id": "a", "version": "1",
             "sha256": "ab", "partner": "GC1", "channel": "vip", "reference": "p"},
            {"change": "delivered", "system": "otmm"}
        ]});
        let error = read_changes(&output).unwrap_err();
        assert!(error.starts_with("ledger[1] "), "{error}");
        assert!(read_changes(&json!({"ledger": {}})).is_err());
        assert!(read_changes(&json!({"other": 1})).unwrap().is_empty());
    }

    #[test]
    fn delivery_ids_follow_the_attempt_and_index() {
        let instance = InstanceId::from("i-1".to_owned());
        let work = WorkKey {
            step: "deliver".into(),
            item: Some(2),
            attempt: 1,
            compensation: false,
            iteration: None,
        };
        let output = json!({"ledger": [
            {"change": "delivered", "system": "otmm", "asset_id": "a", "version": "1",
             "sha256": "ab", "partner": "GC1", "channel": "vip", "reference": "p"},
            {"change": "status", "status": "superseded", "channel": "vip", "reference": "p0"}
        ]});
        let at = chrono::Utc::now();
        let writes = writes_for_output(&instance, &work, &output, at).unwrap();
        assert!(
            matches!(&writes[0], LedgerWrite::Open { delivery_id, facts, .. }
                if delivery_id == "i-1:deliver:2:1:0" && facts.item == Some(2))
        );
        assert!(matches!(
            &writes[1],
            LedgerWrite::Status {
                status: Status::Superseded,
                ..
            }
        ));
        assert_eq!(
            writes,
            writes_for_output(&instance, &work, &output, at).unwrap()
        );
    }
}
