//! Firing one due window for one `rights` trigger: the `event` it starts the definition
//! with, the trigger's `when` and `input`, the derived instance id, and the firing record.
//!
//! The instance id is a UUID (version 8) from the SHA-256 of the definition, the trigger's
//! index, the system, the asset and the window end, as pollers and webhooks derive theirs
//! (docs/design/identity.md): a second attempt to fire the same window end (a restart
//! between the start and its record, a lease changing hands) finds the instance and starts
//! nothing. The firing is recorded after the start, so the timer does not try it again.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use gridflow_core::definition::Trigger;
use gridflow_core::{DefinitionId, InstanceId};
use gridflow_store::{FiringState, RightsFiring, RightsWindowRecord};

use super::recipients::recipients_of;
use crate::definition_cache::Loaded;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::scheduler::render_trigger_input;
use crate::trigger_filter::{self, Verdict};

/// The id of the instance trigger `index` of `definition` starts for one window end.
pub(crate) fn rights_instance_id(
    definition: &DefinitionId,
    index: u32,
    system: &str,
    asset_id: &str,
    valid_until: DateTime<Utc>,
) -> InstanceId {
    let mut hasher = Sha256::new();
    let index = index.to_string();
    let end = valid_until.timestamp_micros().to_string();
    for part in [
        "gridflow rights",
        definition.as_str(),
        &index,
        system,
        asset_id,
        &end,
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    InstanceId::from(
        uuid::Builder::from_custom_bytes(bytes)
            .into_uuid()
            .to_string(),
    )
}

fn text(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The actor recorded in `instance_started`:
/// `trigger:<definition>/<index>@rights:<system>/<asset>@<window end, RFC 3339 UTC>`.
pub(crate) fn rights_actor(
    definition: &DefinitionId,
    index: u32,
    system: &str,
    asset_id: &str,
    valid_until: DateTime<Utc>,
) -> String {
    format!(
        "trigger:{definition}/{index}@rights:{system}/{asset_id}@{}",
        text(valid_until)
    )
}

/// The trigger's `event`: `{system, asset_id, window: {valid_from, valid_until},
/// recipients}`.
fn event(window: &RightsWindowRecord, recipients: Vec<Value>) -> Value {
    json!({
        "system": window.system,
        "asset_id": window.asset_id,
        "window": {
            "valid_from": window.valid_from.map(text),
            "valid_until": window.valid_until.map(text),
        },
        "recipients": recipients,
    })
}

/// One trigger of one definition, with its `rights` settings.
pub(super) struct RightsTriggerRef<'a> {
    pub(super) loaded: &'a Loaded,
    pub(super) index: u32,
    pub(super) trigger: &'a Trigger,
}

/// Fires `window` (whose end is known) for `target`: starts the definition unless its
/// filter says no or its input cannot be made, then records the firing. Returns the
/// firing's state and instance; an error (the database, the engine unavailable) records
/// nothing, so the window is tried again.
pub(super) async fn fire(
    engine: &Engine,
    node: &str,
    target: &RightsTriggerRef<'_>,
    window: &RightsWindowRecord,
    valid_until: DateTime<Utc>,
) -> Result<(FiringState, Option<InstanceId>)> {
    let shared = engine.shared();
    let definition_id = &target.loaded.definition.id;
    let index = target.index;
    let recipients = recipients_of(shared, &window.system, &window.asset_id).await?;
    let event = event(window, recipients);
    let verdict = trigger_filter::verdict(target.trigger, &event, shared.limits.budget());
    shared.stats.trigger_filters.record(definition_id, &verdict);
    let (state, instance) = match verdict {
        Verdict::Start => start(engine, target, window, valid_until, event).await?,
        Verdict::Filtered => (FiringState::Filtered, None),
        Verdict::Failed(message) => {
            tracing::warn!(definition = %definition_id, trigger = index, asset = %window.asset_id,
                system = %window.system, error = %message, "rights trigger filter failed on this window; nothing started");
            (FiringState::Filtered, None)
        }
    };
    shared
        .store
        .record_rights_firing(&RightsFiring {
            definition_id: definition_id.clone(),
            trigger_index: index,
            system: window.system.clone(),
            asset_id: window.asset_id.clone(),
            valid_until,
            state,
            instance_id: instance.clone(),
            fired_at: shared.clock.now(),
            fired_by: node.to_owned(),
        })
        .await?;
    Ok((state, instance))
}

/// Renders the input and starts the instance of this window end, once.
async fn start(
    engine: &Engine,
    target: &RightsTriggerRef<'_>,
    window: &RightsWindowRecord,
    valid_until: DateTime<Utc>,
    event: Value,
) -> Result<(FiringState, Option<InstanceId>)> {
    let shared = engine.shared();
    let loaded = target.loaded;
    let definition_id = &loaded.definition.id;
    let index = target.index;
    let input = render_trigger_input(
        definition_id,
        index,
        target.trigger,
        event,
        shared.limits.budget(),
    )
    .and_then(|input| {
        loaded.input_validator.validate(&input)?;
        Ok(input)
    });
    let input = match input {
        Ok(input) => input,
        Err(error) => {
            tracing::error!(definition = %definition_id, trigger = index, asset = %window.asset_id,
                system = %window.system, %error, "rights trigger not started for this window: its input is invalid");
            return Ok((FiringState::Failed, None));
        }
    };
    let (system, asset_id) = (&window.system, &window.asset_id);
    let instance = rights_instance_id(definition_id, index, system, asset_id, valid_until);
    let actor = rights_actor(definition_id, index, system, asset_id, valid_until);
    let _guard = shared.start_locks.lock(&instance).await;
    if exists(engine, &instance).await? {
        tracing::info!(%instance, "rights window already started its instance");
        return Ok((FiringState::Started, Some(instance)));
    }
    match engine
        .start_instance_as(
            instance.clone(),
            definition_id,
            Some(loaded.version),
            input,
            &actor,
        )
        .await
    {
        Ok(()) => {}
        Err(error @ Error::Invalid { .. }) => {
            tracing::error!(definition = %definition_id, trigger = index, %error,
                "rights trigger not started for this window: its input is refused");
            return Ok((FiringState::Failed, None));
        }
        // Another node starting the same id at once makes one commit fail: the next
        // pass finds the instance.
        Err(error) => return Err(error),
    }
    tracing::info!(definition = %definition_id, trigger = index, %system, asset = %asset_id,
        valid_until = %text(valid_until), %instance, "rights window started an instance");
    Ok((FiringState::Started, Some(instance)))
}

async fn exists(engine: &Engine, instance: &InstanceId) -> Result<bool> {
    match engine.shared().store.instance(instance).await {
        Ok(_) => Ok(true),
        Err(gridflow_store::Error::NotFound(_)) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_id_depends_on_every_part() {
        let definition = DefinitionId::from("recall");
        let end = DateTime::UNIX_EPOCH + chrono::Duration::days(20_000);
        let id = rights_instance_id(&definition, 0, "otmm", "a-1", end);
        assert_eq!(id, rights_instance_id(&definition, 0, "otmm", "a-1", end));
        for other in [
            rights_instance_id(&DefinitionId::from("notice"), 0, "otmm", "a-1", end),
            rights_instance_id(&definition, 1, "otmm", "a-1", end),
            rights_instance_id(&definition, 0, "canto", "a-1", end),
            rights_instance_id(&definition, 0, "otmm", "a-2", end),
            rights_instance_id(
                &definition,
                0,
                "otmm",
                "a-1",
                end + chrono::Duration::microseconds(1),
            ),
        ] {
            assert_ne!(id, other);
        }
        let parsed = uuid::Uuid::parse_str(id.as_str()).unwrap();
        assert_eq!(parsed.get_version_num(), 8);
    }
}
