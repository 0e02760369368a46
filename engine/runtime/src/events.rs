//! Event triggers: an inbound event (a webhook, already authenticated by the caller)
//! starts an instance of every definition whose latest version has a trigger with that
//! event name, and is offered as a signal to waiting instances whose `correlate`
//! expression matches it.
//!
//! An event is named `<source>.<type>` (`trading_grid.request_created`) and is a JSON
//! value, in scope as `event` when a trigger's `input` template is rendered.

use serde::Serialize;
use serde_json::Value;

use gridflow_core::InstanceId;

use crate::engine::Engine;
use crate::error::{Detail, Error, Result};
use crate::scheduler::render_trigger_input;

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
        let shared = self.shared();
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
                let path = format!("{}.triggers[{index}].input", record.id);
                let input = match render_trigger_input(&record.id, index, trigger, event.clone()) {
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
                starts.push((loaded.clone(), input));
            }
        }
        if !problems.is_empty() {
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
        for (loaded, input) in starts {
            let instance = self
                .start_instance(&loaded.definition.id, Some(loaded.version), input, actor)
                .await?;
            tracing::info!(event = name, definition = %loaded.definition.id, %instance, "event started an instance");
            outcome.started.push(instance);
        }
        // The event is also the signal of the same name (`<source>.<type>`) for the
        // instances waiting on it whose `correlate` holds with `event` bound to it.
        outcome.signalled = self.signal_matching(name, event, actor).await?;
        Ok(outcome)
    }
}
