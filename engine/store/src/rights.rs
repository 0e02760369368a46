//! [`RightsStore`]: rights windows as durable timers (DESIGN.md §2, `rights` triggers).
//!
//! Two tables. `rights_window` keeps the latest licence or embargo window seen for each
//! `(system, asset_id)`: a window observed in an action's output is written in the batch
//! that records the step's success ([`crate::Batch::rights`]), one reported by an event in
//! its own transaction ([`RightsStore::observe_rights`]). The latest observation wins, an
//! unknown bound included; `updated_at` moves only when a bound changed, `seen_at` at every
//! observation.
//!
//! `rights_firing` records each `(definition, trigger, system, asset, window end)` a
//! `rights` trigger acted on, so a window end fires once per trigger: the timer reads the
//! windows due for a trigger that have no firing row at their current end
//! ([`RightsStore::due_rights_windows`]). A window whose end moved has no row at its new
//! end, so it fires again when that end is due.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use gridflow_core::{DefinitionId, InstanceId};

use crate::{Error, Result};

/// A rights window seen for one asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedWindow {
    /// The asset system (`otmm`, `smintio`, …).
    pub system: String,
    /// The asset id there.
    pub asset_id: String,
    /// The first instant of use, when known.
    pub valid_from: Option<DateTime<Utc>>,
    /// The last instant of use, when known; a window without it never fires.
    pub valid_until: Option<DateTime<Utc>>,
    /// When it was seen (the commit's or the event's time).
    pub seen_at: DateTime<Utc>,
}

/// The window stored for one asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RightsWindowRecord {
    /// The asset system.
    pub system: String,
    /// The asset id there.
    pub asset_id: String,
    /// The first instant of use, when known.
    pub valid_from: Option<DateTime<Utc>>,
    /// The last instant of use, when known.
    pub valid_until: Option<DateTime<Utc>>,
    /// When a window was first seen for this asset.
    pub first_seen_at: DateTime<Utc>,
    /// When it was last seen.
    pub seen_at: DateTime<Utc>,
    /// When its bounds last changed (its first sighting, at first).
    pub updated_at: DateTime<Utc>,
}

/// What a `rights` trigger did with one window end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FiringState {
    /// It started an instance.
    Started,
    /// The trigger's `when` was false for it (or failed): nothing started.
    Filtered,
    /// The trigger's input could not be made for it: nothing started (logged).
    Failed,
}

impl FiringState {
    /// The stored name: `started`, `filtered` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Filtered => "filtered",
            Self::Failed => "failed",
        }
    }

    /// The state of a stored name.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "started" => Ok(Self::Started),
            "filtered" => Ok(Self::Filtered),
            "failed" => Ok(Self::Failed),
            other => Err(Error::Corrupt(format!(
                "unknown rights firing state {other:?}"
            ))),
        }
    }
}

/// One window end a `rights` trigger acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RightsFiring {
    /// The definition whose trigger fired.
    pub definition_id: DefinitionId,
    /// The trigger's index in the definition's `triggers`.
    pub trigger_index: u32,
    /// The asset system.
    pub system: String,
    /// The asset id there.
    pub asset_id: String,
    /// The window end it fired for.
    pub valid_until: DateTime<Utc>,
    /// What it did.
    pub state: FiringState,
    /// The instance it started.
    pub instance_id: Option<InstanceId>,
    /// When.
    pub fired_at: DateTime<Utc>,
    /// The node that fired it.
    pub fired_by: String,
}

/// Rights windows and their firings.
#[async_trait]
pub trait RightsStore: Send + Sync {
    /// Records windows seen outside a batch (an event's), in one transaction; an asset
    /// named twice keeps the last.
    async fn observe_rights(&self, windows: &[ObservedWindow]) -> Result<()>;

    /// The window stored for an asset, if any.
    async fn rights_window(
        &self,
        system: &str,
        asset_id: &str,
    ) -> Result<Option<RightsWindowRecord>>;

    /// The windows (of `system` when given) whose known end is at most `until` and that
    /// trigger `trigger_index` of `definition_id` has not fired for at that end; earliest
    /// end first (then system and asset), at most `limit`.
    async fn due_rights_windows(
        &self,
        definition_id: &DefinitionId,
        trigger_index: u32,
        system: Option<&str>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RightsWindowRecord>>;

    /// The earliest known window end (of `system` when given) after `after`.
    async fn next_rights_end_after(
        &self,
        system: Option<&str>,
        after: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>>;

    /// Records a firing unless one with the same definition, trigger, asset and end
    /// exists; returns whether this call recorded it.
    async fn record_rights_firing(&self, firing: &RightsFiring) -> Result<bool>;

    /// The firings of a definition's triggers, by trigger, end, system and asset.
    async fn rights_firings(&self, definition_id: &DefinitionId) -> Result<Vec<RightsFiring>>;
}

/// `windows` with only the last one of each asset kept, in their order otherwise: both
/// stores apply the same rows when an asset is named twice.
pub(crate) fn last_per_asset(windows: &[ObservedWindow]) -> Vec<&ObservedWindow> {
    let mut last = std::collections::HashMap::with_capacity(windows.len());
    for (index, window) in windows.iter().enumerate() {
        last.insert((window.system.as_str(), window.asset_id.as_str()), index);
    }
    windows
        .iter()
        .enumerate()
        .filter(|(index, window)| {
            last.get(&(window.system.as_str(), window.asset_id.as_str())) == Some(index)
        })
        .map(|(_, window)| window)
        .collect()
}

/// Refuses windows no store can keep: an empty system or asset id.
pub(crate) fn validate(windows: &[ObservedWindow]) -> Result<()> {
    for window in windows {
        if window.system.is_empty() || window.asset_id.is_empty() {
            return Err(Error::Invalid(format!(
                "rights window of asset {:?} of system {:?}: the system and the asset id must not be empty",
                window.asset_id, window.system
            )));
        }
    }
    Ok(())
}
