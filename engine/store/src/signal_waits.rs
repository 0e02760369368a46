//! [`SignalWaitStore`]: the signal index, the active wait steps of every instance by the
//! signal they wait for and, for a correlated wait, the key a matching signal carries.
//!
//! The runtime derives an instance's rows from its state (`gridflow_core::machine::
//! current_waits`) and writes them in the batch that commits that state
//! ([`crate::Batch::signal_waits`]: all the rows of an instance are replaced at once), so
//! the index is never behind the instances. A signal then reads the few rows for its name
//! and key instead of every unfinished instance.

use async_trait::async_trait;

use gridflow_core::{InstanceId, StepId};

use crate::Result;

/// The key a correlated wait's signal carries: `value` at `path` in its payload.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignalKey {
    /// Payload path, `partner_id` or `partner.id`; never empty.
    pub path: String,
    /// The key of the value there (the core's `correlation_key`).
    pub value: String,
}

/// One active wait step of an instance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SignalWaitRecord {
    /// The instance.
    pub instance_id: InstanceId,
    /// The wait step.
    pub step: StepId,
    /// The signal it waits for.
    pub signal: String,
    /// The key a matching signal carries; `None`: every signal of the name is a candidate.
    pub key: Option<SignalKey>,
}

/// Part of a batch: the rows of `instance_id` become `waits` (none once it waits no more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalWaitsWrite {
    /// The instance.
    pub instance_id: InstanceId,
    /// All its active waits now.
    pub waits: Vec<SignalWaitRecord>,
}

/// Reading the signal index.
#[async_trait]
pub trait SignalWaitStore: Send + Sync {
    /// The payload paths that keyed waits for `signal` have used (kept after their waits
    /// end), so that a signal knows which keys it carries.
    async fn signal_key_paths(&self, signal: &str) -> Result<Vec<String>>;

    /// The waits for `signal` that a signal carrying `keys` may match: every unkeyed one,
    /// and the keyed ones whose key is among `keys`; ordered by instance, then step.
    async fn signal_waits(&self, signal: &str, keys: &[SignalKey])
    -> Result<Vec<SignalWaitRecord>>;
}

/// The writes of `writes` with only the last one of each instance kept, in their order
/// otherwise: both stores apply the same rows when a batch names an instance twice.
pub(crate) fn last_per_instance(writes: &[SignalWaitsWrite]) -> Vec<&SignalWaitsWrite> {
    let mut last = std::collections::HashMap::with_capacity(writes.len());
    for (index, write) in writes.iter().enumerate() {
        last.insert(write.instance_id.as_str(), index);
    }
    writes
        .iter()
        .enumerate()
        .filter(|(index, write)| last.get(write.instance_id.as_str()) == Some(index))
        .map(|(_, write)| write)
        .collect()
}

/// Refuses rows that no store can keep: a row filed under another instance, a key with an
/// empty path.
pub(crate) fn validate(writes: &[SignalWaitsWrite]) -> Result<()> {
    for write in writes {
        for wait in &write.waits {
            if wait.instance_id != write.instance_id {
                return Err(crate::Error::Invalid(format!(
                    "signal waits of instance {}: a row belongs to instance {}",
                    write.instance_id, wait.instance_id
                )));
            }
            if wait.key.as_ref().is_some_and(|key| key.path.is_empty()) {
                return Err(crate::Error::Invalid(format!(
                    "signal waits of instance {}: step {} has a key with an empty path",
                    write.instance_id, wait.step
                )));
            }
        }
    }
    Ok(())
}
