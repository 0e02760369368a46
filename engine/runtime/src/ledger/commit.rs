//! The driver's part of the ledger: the writes a successful unit adds to the batch that
//! records its success, so that they are durable together or not at all.

use gridflow_connectors::Registry;
use gridflow_core::machine::{Input, InputBody};
use gridflow_core::{Definition, Event, EventBody, InstanceId, WorkKey};
use gridflow_store::LedgerWrite;

use super::{declares_ledger, unit_action, writes_for_output};

/// Whether `events` record the success of unit `work` (a stale outcome records none).
fn records_success(events: &[Event], work: &WorkKey) -> bool {
    events.iter().any(|event| match &event.body {
        EventBody::StepSucceeded {
            step,
            attempt,
            item,
            ..
        } => {
            !work.compensation
                && step == &work.step
                && *attempt == work.attempt
                && *item == work.item
        }
        EventBody::StepIterationSucceeded { step, attempt, .. } => {
            !work.compensation && step == &work.step && *attempt == work.attempt
        }
        EventBody::CompensationSucceeded {
            step,
            attempt,
            item,
            ..
        } => {
            work.compensation
                && step == &work.step
                && *attempt == work.attempt
                && *item == work.item
        }
        _ => false,
    })
}

/// The ledger writes of `input` when it is the success of a unit whose action declares
/// ledger changes and `events` (what the core made of it) record that success.
pub(crate) fn writes(
    registry: &Registry,
    instance: &InstanceId,
    input: &Input,
    events: &[Event],
    definition: &Definition,
) -> Vec<LedgerWrite> {
    let InputBody::ActionSucceeded { work, output } = &input.body else {
        return Vec::new();
    };
    let declared =
        unit_action(definition, work).is_some_and(|action| declares_ledger(registry, action));
    if !declared || !records_success(events, work) {
        return Vec::new();
    }
    match writes_for_output(instance, work, output, input.at) {
        Ok(writes) => writes,
        Err(message) => {
            // The executor fails such outputs before they get here; one that arrives
            // anyway is logged rather than allowed to hold the batch up.
            tracing::error!(instance_id = %instance, step_id = %work.step, %message,
                "a successful output's ledger does not read; nothing written to the ledger");
            Vec::new()
        }
    }
}

/// Drops the writes of `instance` from a batch's ledger writes (the instance is
/// quarantined for the cycle: none of its events are written, so neither are these).
pub(crate) fn drop_instance(writes: &mut Vec<LedgerWrite>, instance: &InstanceId) {
    writes.retain(|write| match write {
        LedgerWrite::Open { facts, .. } => facts.instance_id.as_ref() != Some(instance),
        LedgerWrite::Status { origin, .. } => {
            origin.get("instance").and_then(serde_json::Value::as_str) != Some(instance.as_str())
        }
    });
}
