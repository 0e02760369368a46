//! [`TriggerStore`] in memory, with the SQL store's semantics.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use gridflow_core::{DefinitionId, InstanceId};

use super::MemoryStore;
use crate::rules::stored_instant;
use crate::triggers::{TickRecord, TickState, TriggerStore};
use crate::{Error, Result};

/// The key of a tick: definition, trigger index, tick instant.
pub(super) type TickKey = (String, u32, DateTime<Utc>);

/// A held lease: holder and expiry.
pub(super) type LeaseRow = (String, DateTime<Utc>);

#[async_trait]
impl TriggerStore for MemoryStore {
    async fn claim_tick(&self, tick: &TickRecord) -> Result<bool> {
        let mut inner = self.lock();
        let tick_at = stored_instant(tick.tick_at);
        let key = (tick.definition_id.to_string(), tick.trigger_index, tick_at);
        if inner.ticks.contains_key(&key) {
            return Ok(false);
        }
        let stored = TickRecord {
            tick_at,
            claimed_at: stored_instant(tick.claimed_at),
            ..tick.clone()
        };
        inner.ticks.insert(key, stored);
        Ok(true)
    }

    async fn update_tick(
        &self,
        definition_id: &DefinitionId,
        trigger_index: u32,
        tick_at: DateTime<Utc>,
        from: TickState,
        to: TickState,
        instance_id: Option<&InstanceId>,
    ) -> Result<bool> {
        let mut inner = self.lock();
        let tick_at = stored_instant(tick_at);
        let key = (definition_id.to_string(), trigger_index, tick_at);
        let Some(tick) = inner.ticks.get_mut(&key) else {
            return Err(Error::NotFound(format!(
                "tick {tick_at} of trigger {trigger_index} of definition {definition_id}"
            )));
        };
        if tick.state != from {
            return Ok(false);
        }
        tick.state = to;
        tick.instance_id = instance_id.cloned();
        Ok(true)
    }

    async fn last_tick(
        &self,
        definition_id: &DefinitionId,
        trigger_index: u32,
        state: Option<TickState>,
    ) -> Result<Option<TickRecord>> {
        let inner = self.lock();
        let first = (
            definition_id.to_string(),
            trigger_index,
            DateTime::<Utc>::MIN_UTC,
        );
        let last = (
            definition_id.to_string(),
            trigger_index,
            DateTime::<Utc>::MAX_UTC,
        );
        Ok(inner
            .ticks
            .range(first..=last)
            .rev()
            .map(|(_, tick)| tick)
            .find(|tick| state.is_none_or(|state| tick.state == state))
            .cloned())
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool> {
        let mut inner = self.lock();
        let now = stored_instant(now);
        let takeable = match inner.leases.get(name) {
            None => true,
            Some((current, current_expiry)) => current == holder || *current_expiry <= now,
        };
        if takeable {
            inner.leases.insert(
                name.to_owned(),
                (holder.to_owned(), stored_instant(expires_at)),
            );
        }
        Ok(takeable)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let mut inner = self.lock();
        if inner
            .leases
            .get(name)
            .is_some_and(|(current, _)| current == holder)
        {
            inner.leases.remove(name);
        }
        Ok(())
    }

    async fn lease_holder(&self, name: &str, now: DateTime<Utc>) -> Result<Option<String>> {
        let inner = self.lock();
        let now = stored_instant(now);
        Ok(inner
            .leases
            .get(name)
            .filter(|(_, expires_at)| *expires_at > now)
            .map(|(holder, _)| holder.clone()))
    }
}
