//! [`RightsStore`] in memory, with the SQL store's semantics.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use gridflow_core::DefinitionId;

use super::MemoryStore;
use crate::Result;
use crate::rights::{
    ObservedWindow, RightsFiring, RightsStore, RightsWindowRecord, last_per_asset, validate,
};
use crate::rules::stored_instant;

/// The key of a firing: definition, trigger index, window end, system, asset (the order
/// [`RightsStore::rights_firings`] lists them in).
type FiringKey = (String, u32, DateTime<Utc>, String, String);

/// The windows by `(system, asset_id)` and the firings.
#[derive(Debug, Default)]
pub(super) struct RightsTables {
    windows: BTreeMap<(String, String), RightsWindowRecord>,
    firings: BTreeMap<FiringKey, RightsFiring>,
}

impl RightsTables {
    /// Writes observed windows (checked before: nothing here fails).
    pub(super) fn apply(&mut self, windows: &[ObservedWindow]) {
        for window in last_per_asset(windows) {
            let seen_at = stored_instant(window.seen_at);
            let valid_from = window.valid_from.map(stored_instant);
            let valid_until = window.valid_until.map(stored_instant);
            let key = (window.system.clone(), window.asset_id.clone());
            let row = self
                .windows
                .entry(key)
                .or_insert_with(|| RightsWindowRecord {
                    system: window.system.clone(),
                    asset_id: window.asset_id.clone(),
                    valid_from,
                    valid_until,
                    first_seen_at: seen_at,
                    seen_at,
                    updated_at: seen_at,
                });
            if row.valid_from != valid_from || row.valid_until != valid_until {
                row.updated_at = seen_at;
            }
            row.valid_from = valid_from;
            row.valid_until = valid_until;
            row.seen_at = seen_at;
        }
    }

    fn fired(
        &self,
        definition_id: &DefinitionId,
        trigger_index: u32,
        window: &RightsWindowRecord,
        until: DateTime<Utc>,
    ) -> bool {
        self.firings.contains_key(&(
            definition_id.to_string(),
            trigger_index,
            until,
            window.system.clone(),
            window.asset_id.clone(),
        ))
    }
}

#[async_trait]
impl RightsStore for MemoryStore {
    async fn observe_rights(&self, windows: &[ObservedWindow]) -> Result<()> {
        validate(windows)?;
        self.lock().rights.apply(windows);
        Ok(())
    }

    async fn rights_window(
        &self,
        system: &str,
        asset_id: &str,
    ) -> Result<Option<RightsWindowRecord>> {
        Ok(self
            .lock()
            .rights
            .windows
            .get(&(system.to_owned(), asset_id.to_owned()))
            .cloned())
    }

    async fn due_rights_windows(
        &self,
        definition_id: &DefinitionId,
        trigger_index: u32,
        system: Option<&str>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RightsWindowRecord>> {
        let inner = self.lock();
        let tables = &inner.rights;
        let mut due: Vec<&RightsWindowRecord> = tables
            .windows
            .values()
            .filter(|window| system.is_none_or(|system| window.system == system))
            .filter(|window| {
                window.valid_until.is_some_and(|end| {
                    end <= until && !tables.fired(definition_id, trigger_index, window, end)
                })
            })
            .collect();
        due.sort_by(|a, b| {
            (a.valid_until, &a.system, &a.asset_id).cmp(&(b.valid_until, &b.system, &b.asset_id))
        });
        Ok(due
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    async fn next_rights_end_after(
        &self,
        system: Option<&str>,
        after: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        Ok(self
            .lock()
            .rights
            .windows
            .values()
            .filter(|window| system.is_none_or(|system| window.system == system))
            .filter_map(|window| window.valid_until)
            .filter(|end| *end > after)
            .min())
    }

    async fn record_rights_firing(&self, firing: &RightsFiring) -> Result<bool> {
        let mut inner = self.lock();
        let valid_until = stored_instant(firing.valid_until);
        let key = (
            firing.definition_id.to_string(),
            firing.trigger_index,
            valid_until,
            firing.system.clone(),
            firing.asset_id.clone(),
        );
        if inner.rights.firings.contains_key(&key) {
            return Ok(false);
        }
        let stored = RightsFiring {
            valid_until,
            fired_at: stored_instant(firing.fired_at),
            ..firing.clone()
        };
        inner.rights.firings.insert(key, stored);
        Ok(true)
    }

    async fn rights_firings(&self, definition_id: &DefinitionId) -> Result<Vec<RightsFiring>> {
        let inner = self.lock();
        Ok(inner
            .rights
            .firings
            .iter()
            .filter(|(key, _)| key.0 == definition_id.as_str())
            .map(|(_, firing)| firing.clone())
            .collect())
    }
}
