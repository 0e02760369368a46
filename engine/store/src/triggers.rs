//! [`TriggerStore`]: the claimed ticks of cron triggers and named leases.
//!
//! Inserting a tick is its claim: the key `(definition, trigger index, tick instant)` is
//! unique, so when two nodes try to fire the same tick only one insert succeeds, and only
//! that node starts an instance. The lease says which node fires ticks at all (one at a
//! time, until its lease expires), so the claim is the second line of defence for the
//! moment a lease changes hands.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use gridflow_core::{DefinitionId, InstanceId};

use crate::{Error, Result};

/// What became of a claimed tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TickState {
    /// An instance was started for it (its id is recorded once the start is durable).
    Started,
    /// It was not fired: overlap policy `skip`, or a missed tick that catch-up dropped.
    Skipped,
    /// Remembered by overlap policy `buffer_one`: it starts when the running instance
    /// finishes.
    Buffered,
}

impl TickState {
    /// The stored name: `started`, `skipped` or `buffered`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Skipped => "skipped",
            Self::Buffered => "buffered",
        }
    }

    /// The state of a stored name.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "started" => Ok(Self::Started),
            "skipped" => Ok(Self::Skipped),
            "buffered" => Ok(Self::Buffered),
            other => Err(Error::Corrupt(format!("unknown tick state {other:?}"))),
        }
    }
}

/// One claimed tick of a cron trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickRecord {
    /// The definition whose trigger ticked.
    pub definition_id: DefinitionId,
    /// The trigger's index in the definition's `triggers`.
    pub trigger_index: u32,
    /// The scheduled instant of the tick (not when it was fired).
    pub tick_at: DateTime<Utc>,
    /// What became of it.
    pub state: TickState,
    /// The instance started for it, once known.
    pub instance_id: Option<InstanceId>,
    /// The node that claimed it.
    pub claimed_by: String,
    /// When it was claimed.
    pub claimed_at: DateTime<Utc>,
}

/// Claimed cron ticks and leases. Every operation is one atomic statement, on every
/// backend.
#[async_trait]
pub trait TriggerStore: Send + Sync {
    /// Inserts the tick unless a tick with the same definition, trigger index and instant
    /// exists. Returns whether this call inserted it: only then may the caller fire it.
    async fn claim_tick(&self, tick: &TickRecord) -> Result<bool>;

    /// Moves a tick from state `from` to `to` and sets its instance. Returns false (and
    /// changes nothing) when the tick is not in state `from`; `NotFound` if there is none.
    async fn update_tick(
        &self,
        definition_id: &DefinitionId,
        trigger_index: u32,
        tick_at: DateTime<Utc>,
        from: TickState,
        to: TickState,
        instance_id: Option<&InstanceId>,
    ) -> Result<bool>;

    /// The latest tick of a trigger (by tick instant), only among ticks in `state` when
    /// one is given.
    async fn last_tick(
        &self,
        definition_id: &DefinitionId,
        trigger_index: u32,
        state: Option<TickState>,
    ) -> Result<Option<TickRecord>>;

    /// Takes the lease `name` for `holder` until `expires_at`, if it is free, expired at
    /// `now`, or held by `holder` already (then it is renewed). Returns whether `holder`
    /// holds it now. Atomic: of several holders asking at once, at most one gets it.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool>;

    /// Gives the lease up if `holder` holds it; does nothing otherwise.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;

    /// Who holds the lease at `now`, if anyone.
    async fn lease_holder(&self, name: &str, now: DateTime<Utc>) -> Result<Option<String>>;
}
