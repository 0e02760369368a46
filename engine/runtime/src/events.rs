//! Event triggers: an inbound event (a webhook, already authenticated by the caller)
//! starts an instance of every definition whose latest version has a trigger with that
//! event name, and is offered as a signal to waiting instances whose `correlate`
//! expression matches it.
//!
//! An event is named `<source>.<type>` (`trading_grid.issue_created`) and is a JSON
//! value, in scope as `event` when a trigger's `when` filter is evaluated (false or failed:
//! that trigger starts nothing, see `trigger_filter`) and its `input` template rendered.

use serde::Serialize;
use serde_json::Value;

use gridflow_core::{DefinitionId, InstanceId, RecordedEvent};
use sha2::{Digest, Sha256};

use crate::engine::Engine;
use crate::error::{Detail, Error, Result};
use crate::scheduler::render_trigger_input;
use crate::trigger_filter::{self, Verdict};

/// What an inbound event did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EventOutcome {
    /// Instances started by event triggers, ordered by definition id.
    pub started: Vec<InstanceId>,
    /// Instances the event was delivered to as a signal.
    pub signalled: Vec<InstanceId>,
}

impl Engine {
    /// Starts an instance of every definition whose latest version has a trigger with
    /// `event: <name>`, with the trigger's `input` rendered with `event` in scope, then
    /// delivers the event to correlated waiting instances ([`Engine::signal_matching`]).
    ///
    /// Every input is rendered and validated before anything starts: if one is invalid,
    /// the call fails with `Invalid` listing each problem and starts nothing.
    pub async fn deliver_event(
        &self,
        name: &str,
        event: &Value,
        actor: &str,
    ) -> Result<EventOutcome> {
        self.deliver(name, event, actor, Delivery::default()).await
    }

    /// Delivers a change read by a poller: as [`Engine::deliver_event`], but at most once
    /// per `change_id`, however often it is delivered (a poller that crashed after
    /// delivering a change and before saving its cursor delivers it again), and a trigger
    /// whose input is invalid for the change is logged and left out instead of failing the
    /// whole delivery.
    ///
    /// An instance started by the change gets an id derived from the change id, the
    /// definition and the trigger, so a repeated start finds it and starts nothing; an
    /// instance whose history already holds the signal with this very payload is not
    /// signalled again (the payload carries the change id).
    pub async fn deliver_change(
        &self,
        name: &str,
        event: &Value,
        change_id: &str,
        actor: &str,
    ) -> Result<EventOutcome> {
        let delivery = Delivery {
            id: Some(change_id),
            again: true,
            lenient: true,
        };
        self.deliver(name, event, actor, delivery).await
    }

    pub(crate) async fn deliver(
        &self,
        name: &str,
        event: &Value,
        actor: &str,
        delivery: Delivery<'_>,
    ) -> Result<EventOutcome> {
        let change_id = delivery.id;
        let shared = self.shared();
        // The event is also a signal: one too large for that is refused before anything
        // starts, so an event is delivered whole or not at all.
        shared
            .limits
            .check_signal(name, event)
            .map_err(Error::LimitExceeded)?;
        crate::rights::observe_event(shared, name, event).await?;
        // What the event reports to the ledger is written first, once per event id.
        self.apply_event_ledger(name, event, change_id).await?;
        let mut starts = Vec::new();
        let mut problems = Vec::new();
        for record in shared.store.list_definitions().await? {
            let loaded = shared
                .definitions
                .get(&record.id, Some(record.version))
                .await?;
            for (index, trigger) in loaded.definition.triggers.iter().enumerate() {
                if trigger.event.as_deref() != Some(name) {
                    continue;
                }
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                let verdict = trigger_filter::verdict(trigger, event, shared.limits.budget());
                shared.stats.trigger_filters.record(&record.id, &verdict);
                match verdict {
                    Verdict::Start => {}
                    Verdict::Filtered => {
                        tracing::debug!(event = name, definition = %record.id, trigger = index,
                            "trigger filter is false for this event; nothing started");
                        continue;
                    }
                    Verdict::Failed(message) => {
                        tracing::warn!(event = name, definition = %record.id, trigger = index,
                            error = %message, "trigger filter failed on this event; nothing started");
                        continue;
                    }
                }
                let path = format!("{}.triggers[{index}].input", record.id);
                let input = match render_trigger_input(
                    &record.id,
                    index,
                    trigger,
                    event.clone(),
                    shared.limits.budget(),
                ) {
                    Ok(input) => input,
                    Err(error) => {
                        problems.push(Detail {
                            path,
                            message: error.to_string(),
                        });
                        continue;
                    }
                };
                if let Err(errors) = loaded.input_validator.validate(&input) {
                    problems.extend(errors.into_iter().map(|error| Detail {
                        path: format!("{path}: {}", error.path),
                        message: error.message,
                    }));
                    continue;
                }
                let instance = match change_id {
                    Some(change_id) => start_id(name, change_id, &record.id, index),
                    None => InstanceId::from(uuid::Uuid::now_v7().to_string()),
                };
                starts.push((loaded.clone(), input, instance));
            }
        }
        if !problems.is_empty() && delivery.lenient {
            // A change has no caller to answer 422 to, and retrying cannot fix a trigger:
            // the valid triggers still start and the waiting instances are still signalled.
            for problem in &problems {
                tracing::error!(event = name, change = change_id, path = %problem.path,
                    problem = %problem.message, "trigger not started for this change: its input is invalid");
            }
        } else if !problems.is_empty() {
            return Err(Error::Invalid {
                message: format!(
                    "event {name}: the input of {} trigger{} is invalid",
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" }
                ),
                details: problems,
            });
        }
        let mut outcome = EventOutcome::default();
        for (loaded, input, instance) in starts {
            if delivery.again {
                match shared.store.instance(&instance).await {
                    Ok(_) => {
                        tracing::info!(event = name, %instance, "change already started its instance");
                        continue;
                    }
                    Err(gridflow_store::Error::NotFound(_)) => {}
                    Err(error) => return Err(error.into()),
                }
            }
            self.start_instance_as(
                instance.clone(),
                &loaded.definition.id,
                Some(loaded.version),
                input,
                actor,
            )
            .await?;
            tracing::info!(event = name, definition = %loaded.definition.id, %instance, "event started an instance");
            outcome.started.push(instance);
        }
        // The event is also the signal of the same name (`<source>.<type>`) for the
        // instances waiting on it whose `correlate` holds with `event` bound to it.
        outcome.signalled = match delivery.again {
            false => self.signal_matching(name, event, actor).await?,
            true => {
                let received = |history: &[RecordedEvent]| {
                    history.iter().any(|recorded| {
                        recorded.event_type == "signal_received"
                            && recorded.data["name"] == name
                            && recorded.data["payload"] == *event
                    })
                };
                self.signal_matching_unless(name, event, actor, Some(&received))
                    .await?
            }
        };
        Ok(outcome)
    }
}

/// How [`Engine::deliver`] treats an event.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Delivery<'a> {
    /// The event's own id (a change id, a webhook's event id): instances it starts get ids
    /// derived from it ([`start_id`]). `None`: fresh ids.
    pub(crate) id: Option<&'a str>,
    /// The event may have been delivered before (a poller's change after a crash, a
    /// reclaimed webhook): starts whose derived instance exists and signals the instance's
    /// history already holds are left out.
    pub(crate) again: bool,
    /// A trigger whose input is invalid is logged and left out instead of failing the
    /// whole delivery (no caller to answer to).
    pub(crate) lenient: bool,
}

/// The id of the instance a change starts through a definition's trigger: a UUID (version
/// 8, custom) from the SHA-256 of the event name, change id, definition and trigger index,
/// so the same change always names the same instance.
pub(crate) fn start_id(
    name: &str,
    change_id: &str,
    definition: &DefinitionId,
    trigger: u32,
) -> InstanceId {
    let mut hasher = Sha256::new();
    for part in [name, change_id, definition.as_str(), &trigger.to_string()] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    InstanceId::from(
        uuid::Builder::from_custom_bytes(bytes)
            .into_uuid()
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_id_depends_on_every_part() {
        let definition = DefinitionId::from("notify");
        let id = start_id("otmm.asset_changed", "a@1", &definition, 0);
        assert_eq!(id, start_id("otmm.asset_changed", "a@1", &definition, 0));
        assert_ne!(id, start_id("otmm.asset_changed", "a@2", &definition, 0));
        assert_ne!(id, start_id("otmm.asset_changed", "a@1", &definition, 1));
        assert_ne!(
            id,
            start_id("otmm.asset_changed", "a@1", &DefinitionId::from("other"), 0)
        );
        assert!(uuid::Uuid::parse_str(id.as_str()).is_ok());
    }
}
