//! Signals on the engine handle: delivered to one instance by name, or to every waiting
//! instance whose wait step's `correlate` holds for the payload (event triggers and
//! pollers deliver their events this way, see `events`).
//!
//! The waiting instances are found through the signal index (`gridflow_store::
//! SignalWaitStore`, written by the driver in the commit that makes a wait active): the
//! waits for the signal's name that carry no key, and those whose key is the payload's
//! value at their path. Each candidate's `correlate` is then evaluated by the machine as
//! before, so the index only narrows who is asked, never who matches.

use serde_json::Value;

use gridflow_core::expr::{at_path, correlation_key};
use gridflow_core::machine::InputBody;
use gridflow_core::{InstanceId, RecordedEvent};
use gridflow_store::SignalKey;

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
    /// It reads the signal index for the candidates, so its cost grows with the instances
    /// that may match (those waiting for the name without a key, and those whose key the
    /// payload carries), not with the unfinished instances.
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
        let candidates = self.waiting_for(name, payload).await?;
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

impl Engine {
    /// The instances that the signal index says may take signal `name` with `payload`,
    /// each once, in id order.
    async fn waiting_for(&self, name: &str, payload: &Value) -> Result<Vec<InstanceId>> {
        let store = &self.shared.store;
        let keys: Vec<SignalKey> = store
            .signal_key_paths(name)
            .await?
            .into_iter()
            .filter_map(|path| {
                let value = correlation_key(at_path(payload, &path)?)?;
                Some(SignalKey { path, value })
            })
            .collect();
        let mut candidates: Vec<InstanceId> = store
            .signal_waits(name, &keys)
            .await?
            .into_iter()
            .map(|wait| wait.instance_id)
            .collect();
        candidates.dedup();
        Ok(candidates)
    }
}

/// Says from an instance's history whether it has had a signal already.
pub(crate) type AlreadyReceived<'a> = dyn Fn(&[RecordedEvent]) -> bool + Sync + 'a;
