//! [`SignalWaitStore`] in memory, with the SQL store's semantics.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;

use super::MemoryStore;
use crate::Result;
use crate::signal_waits::{
    SignalKey, SignalWaitRecord, SignalWaitStore, SignalWaitsWrite, last_per_instance,
};

/// The signal index: each instance's waits, and the key paths ever used per signal.
#[derive(Debug, Default)]
pub(super) struct SignalIndex {
    by_instance: BTreeMap<String, Vec<SignalWaitRecord>>,
    key_paths: BTreeSet<(String, String)>,
}

impl SignalIndex {
    /// Applies a batch's `signal_waits`.
    pub(super) fn apply(&mut self, writes: &[SignalWaitsWrite]) {
        for write in last_per_instance(writes) {
            for wait in &write.waits {
                if let Some(key) = &wait.key {
                    self.key_paths
                        .insert((wait.signal.clone(), key.path.clone()));
                }
            }
            if write.waits.is_empty() {
                self.by_instance.remove(write.instance_id.as_str());
            } else {
                let mut waits = write.waits.clone();
                waits.sort();
                waits.dedup();
                self.by_instance.insert(write.instance_id.0.clone(), waits);
            }
        }
    }
}

#[async_trait]
impl SignalWaitStore for MemoryStore {
    async fn signal_key_paths(&self, signal: &str) -> Result<Vec<String>> {
        let inner = self.lock();
        Ok(inner
            .signal_index
            .key_paths
            .iter()
            .filter(|(name, _)| name == signal)
            .map(|(_, path)| path.clone())
            .collect())
    }

    async fn signal_waits(
        &self,
        signal: &str,
        keys: &[SignalKey],
    ) -> Result<Vec<SignalWaitRecord>> {
        let inner = self.lock();
        Ok(inner
            .signal_index
            .by_instance
            .values()
            .flatten()
            .filter(|wait| {
                wait.signal == signal && wait.key.as_ref().is_none_or(|key| keys.contains(key))
            })
            .cloned()
            .collect())
    }
}
