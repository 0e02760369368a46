//! Signals on the engine handle: delivered to one instance by name, or to every waiting
//! instance whose wait step's `correlate` holds for the payload (event triggers and
//! pollers deliver their events this way, see `events`).

use serde_json::Value;

use gridflow_core::machine::InputBody;
use gridflow_core::{InstanceId, InstanceState, RecordedEvent};
use gridflow_store::InstanceFilter;

use crate::engine::Engine;
use crate::error::{Error, Result};

impl Engine {
    /// Delivers signal `name` to one instance; it is kept until a wait step for it is
    /// reached if none waits now. A finished instance refuses it ([`Error::Conflict`]).
    pub async fn signal(
        &self,
        instance: &InstanceId,
        name: &str,
        payload: Value,
        actor: &str,
    ) -> Result<()> {
        self.shared
            .limits
            .check_signal(name, &payload)
            .map_err(Error::LimitExceeded)?;
        // The instance's existence is checked first so that an unknown id is a 404.
        self.shared.store.instance(instance).await?;
        self.operate(
            instance,
            actor,
            InputBody::Signal {
                name: name.to_owned(),
                payload,
                correlated: false,
            },
        )
        .await
    }

    /// Delivers signal `name` to every instance that waits on a wait step (or a wait
    /// fan-out's item) for it now and whose `correlate` holds with `event` bound to
    /// `payload`; returns those instances.
    ///
    /// It reads every running or waiting instance's state to find the candidates, so its
    /// cost grows with the number of unfinished instances.
    pub async fn signal_matching(
        &self,
        name: &str,
        payload: &Value,
        actor: &str,
    ) -> Result<Vec<InstanceId>> {
        self.signal_matching_unless(name, payload, actor, None)
            .await
    }

    /// [`Engine::signal_matching`], leaving out the waiting instances whose history
    /// `already` says has had this signal (a change delivered again after a crash).
    pub(crate) async fn signal_matching_unless(
        &self,
        name: &str,
        payload: &Value,
        actor: &str,
        already: Option<&AlreadyReceived<'_>>,
    ) -> Result<Vec<InstanceId>> {
        self.shared
            .limits
            .check_signal(name, payload)
            .map_err(Error::LimitExceeded)?;
        let mut candidates = Vec::new();
        for status in [
            gridflow_core::InstanceStatus::Waiting,
            gridflow_core::InstanceStatus::Running,
        ] {
            let filter = InstanceFilter {
                status: Some(status),
                definition: None,
            };
            let mut cursor: Option<String> = None;
            loop {
                let page = self
                    .shared
                    .store
                    .list_instances(&filter, cursor.as_deref(), 500)
                    .await?;
                for record in &page.items {
                    let state = self.current_state(record).await?;
                    if waits_on(&state, name) {
                        candidates.push(record.id.clone());
                    }
                }
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        let mut delivered = Vec::new();
        for instance in candidates {
            if let Some(already) = already
                && already(&self.shared.store.history(&instance).await?)
            {
                tracing::info!(signal = name, %instance, "signal already delivered; not again");
                continue;
            }
            let body = InputBody::Signal {
                name: name.to_owned(),
                payload: payload.clone(),
                correlated: true,
            };
            match self.operate(&instance, actor, body).await {
                Ok(()) => delivered.push(instance),
                // Not waiting any more, or `correlate` does not hold: not for this one.
                Err(Error::Conflict(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(delivered)
    }
}

/// Says from an instance's history whether it has had a signal already.
pub(crate) type AlreadyReceived<'a> = dyn Fn(&[RecordedEvent]) -> bool + Sync + 'a;

/// Whether a wait step of `state` (or a waiting item of a wait fan-out) waits for signal
/// `name` now.
fn waits_on(state: &InstanceState, name: &str) -> bool {
    use gridflow_core::{StepState, Unit, Work};
    state.steps.values().any(|step| match step {
        StepState::Active {
            work: Work::Wait { signal, .. },
        } => signal == name,
        StepState::Active {
            work: Work::FanOut { units, .. },
        } => units
            .iter()
            .any(|unit| matches!(unit, Unit::Wait { signal, .. } if signal == name)),
        StepState::Active { .. }
        | StepState::Pending { .. }
        | StepState::Succeeded { .. }
        | StepState::Failed { .. }
        | StepState::Skipped { .. }
        | StepState::Cancelled { .. } => false,
    })
}
