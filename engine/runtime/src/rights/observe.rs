//! Observing rights windows: from an action's output when its spec declares
//! `effects.rights` (read by the driver before the core sees the outcome, and written in
//! the batch that records the step's success), and from an event's
//! `Connector::event_effects(..).rights` when a connector's event is delivered (written in
//! its own transaction before the event starts or signals anything).
//!
//! An action output whose `observed_rights` does not read, or names an empty system or
//! asset id, fails the attempt for good with `invalid_observed_rights`: retrying returns
//! the same output, and a window silently dropped would be a recall never sent.

use chrono::{DateTime, Utc};
use serde_json::Value;

use gridflow_connectors::Registry;
use gridflow_connectors::effects::ObservedRights;
use gridflow_core::machine::{Input, InputBody};
use gridflow_core::{Definition, ErrorInfo};
use gridflow_store::ObservedWindow;

use crate::error::Result;
use crate::shared::Shared;

/// The windows an action outcome reports, when its action declares `effects.rights`; an
/// outcome whose windows do not read becomes a permanent failure (`invalid_observed_rights`)
/// in place. The caller writes the windows with the commit that records the success.
pub(crate) fn observe_outcome(
    registry: &Registry,
    definition: &Definition,
    input: &mut Input,
) -> Vec<ObservedWindow> {
    let InputBody::ActionSucceeded { work, output } = &input.body else {
        return Vec::new();
    };
    let Some(step) = definition.step(&work.step) else {
        return Vec::new();
    };
    let action = match (work.compensation, &step.compensate) {
        (true, Some(compensation)) => Some(compensation.action.as_str()),
        (true, None) => None,
        (false, _) => step.action.as_deref(),
    };
    let Some(action) = action else {
        return Vec::new();
    };
    let declared = registry
        .action(action)
        .is_some_and(|(_, spec)| spec.effects.rights);
    if !declared {
        return Vec::new();
    }
    match read(output, input.at) {
        Ok(windows) => windows,
        Err(problem) => {
            tracing::warn!(%action, step = %work.step, %problem, "action output reports rights windows that do not read; the attempt fails");
            input.body = InputBody::ActionFailed {
                work: work.clone(),
                error: ErrorInfo::permanent(
                    "invalid_observed_rights",
                    format!("action {action}: output {problem}"),
                ),
                retry_at: None,
            };
            Vec::new()
        }
    }
}

/// The windows of a payload's `observed_rights`, seen at `seen_at`.
fn read(value: &Value, seen_at: DateTime<Utc>) -> std::result::Result<Vec<ObservedWindow>, String> {
    let observed = ObservedRights::read_all(value)?;
    observed
        .into_iter()
        .enumerate()
        .map(|(index, rights)| {
            window(rights, seen_at)
                .map_err(|problem| format!("observed_rights[{index}]: {problem}"))
        })
        .collect()
}

fn window(
    rights: ObservedRights,
    seen_at: DateTime<Utc>,
) -> std::result::Result<ObservedWindow, String> {
    if rights.system.is_empty() || rights.asset_id.is_empty() {
        return Err("system and asset_id must not be empty".to_owned());
    }
    Ok(ObservedWindow {
        system: rights.system,
        asset_id: rights.asset_id,
        valid_from: rights.window.valid_from,
        valid_until: rights.window.valid_until,
        seen_at,
    })
}

/// Records the windows that event `name` (`<connector>.<event>`) reports through its
/// connector's `event_effects`, and wakes the timer. Events of no registered connector
/// report none; a window that does not read is logged and left out.
pub(crate) async fn observe_event(shared: &Shared, name: &str, payload: &Value) -> Result<()> {
    let Some((source, event)) = name.split_once('.') else {
        return Ok(());
    };
    let Some(connector) = shared
        .registry
        .connectors()
        .find(|connector| connector.name() == source)
    else {
        return Ok(());
    };
    let seen_at = shared.clock.now();
    let windows: Vec<ObservedWindow> = connector
        .event_effects(event, payload)
        .rights
        .into_iter()
        .filter_map(|rights| match window(rights, seen_at) {
            Ok(window) => Some(window),
            Err(problem) => {
                tracing::warn!(event = name, %problem, "event reports a rights window that does not read; left out");
                None
            }
        })
        .collect();
    if windows.is_empty() {
        return Ok(());
    }
    shared.store.observe_rights(&windows).await?;
    tracing::debug!(
        event = name,
        windows = windows.len(),
        "rights windows observed"
    );
    shared.rights.wake();
    Ok(())
}
