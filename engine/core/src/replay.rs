//! Replay: fold a recorded history through [`apply`], the same function the runtime uses.
//!
//! A history records its format version in its `instance_started` ([`history_version`];
//! [`crate::history::HISTORY_VERSION`] for new ones, 1 for those recorded before versions
//! were). Folding that event puts the version into the state
//! ([`InstanceState::history_version`]), where the machine can branch on it when a change
//! of semantics keeps older histories replaying the older way; a version the machine does
//! not know makes replay fail with [`ReplayError::Nondeterminism`].
//!
//! A history folds with the definition version it started on until an
//! `instance_migrated`, which (and everything after it) folds with the version it moved
//! to. Replay therefore takes [`Definitions`]: one [`Definition`] serves a history that
//! never migrated; a map of versions serves any ([`versions`] lists the ones needed).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::definition::Definition;
use crate::event::{Event, EventBody};
use crate::history::RecordedEvent;
use crate::id::{DefinitionId, InstanceId};
use crate::machine::{StepError, apply};
use crate::state::InstanceState;

/// The definition versions a history folds with.
pub trait Definitions {
    /// The definition of `version`, if known.
    fn version(&self, version: u32) -> Option<&Definition>;
}

/// One definition, used for whatever version a history names: enough for a history that
/// never migrated.
impl Definitions for Definition {
    fn version(&self, _version: u32) -> Option<&Definition> {
        Some(self)
    }
}

impl Definitions for Arc<Definition> {
    fn version(&self, _version: u32) -> Option<&Definition> {
        Some(self)
    }
}

/// Definitions by version, for a history that migrated.
impl Definitions for BTreeMap<u32, Arc<Definition>> {
    fn version(&self, version: u32) -> Option<&Definition> {
        self.get(&version).map(AsRef::as_ref)
    }
}

/// The definition versions that folding `history` needs: the one it started on and every
/// one it migrated to, ascending. Events that do not decode are left to the replay.
pub fn versions(history: &[RecordedEvent]) -> Vec<u32> {
    let mut versions: Vec<u32> = history
        .iter()
        .filter(|event| {
            matches!(
                event.event_type.as_str(),
                "instance_started" | "instance_migrated"
            )
        })
        .filter_map(|event| {
            let event = event.event().ok()?;
            let version = folding_version(0, &event);
            (version != 0).then_some(version)
        })
        .collect();
    versions.sort_unstable();
    versions.dedup();
    versions
}

/// Why a history cannot be replayed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplayError {
    /// An event's data does not decode into a known event.
    #[error("instance {instance}: seq {seq}: undecodable event: {message}")]
    Undecodable {
        /// The instance.
        instance: InstanceId,
        /// Where.
        seq: u64,
        /// The decoder's message.
        message: String,
    },
    /// The history needs a definition version that was not given.
    #[error("instance {instance}: seq {seq}: definition version {version} is not available")]
    MissingVersion {
        /// The instance.
        instance: InstanceId,
        /// Where.
        seq: u64,
        /// The version.
        version: u32,
    },
    /// The state machine refused an event: the history does not fit the definition.
    #[error("instance {instance}: seq {seq}: {source}")]
    Nondeterminism {
        /// The instance.
        instance: InstanceId,
        /// Where.
        seq: u64,
        /// What the machine said.
        #[source]
        source: StepError,
    },
}

/// The format version of a recorded history, from its first event (`instance_started`);
/// `None` when the history does not start with a decodable `instance_started`.
pub fn history_version(history: &[RecordedEvent]) -> Option<u32> {
    if let EventBody::InstanceStarted {
        history_version, ..
    } = history.first()?.event().ok()?.body
    {
        Some(history_version)
    } else {
        None
    }
}

/// Folds the whole history, calling `visit` with each event and the state right after it
/// (the state "at" that seq), and returns the final state.
pub fn replay_each<D: Definitions + ?Sized>(
    instance: &InstanceId,
    history: &[RecordedEvent],
    definitions: &D,
    mut visit: impl FnMut(&RecordedEvent, &InstanceState),
) -> Result<InstanceState, ReplayError> {
    let mut state = initial_state(instance, history, definitions);
    for recorded in history {
        state = apply_recorded(instance, state, recorded, definitions)?;
        visit(recorded, &state);
    }
    Ok(state)
}

/// The state before the first event: what [`replay_each`] starts from.
pub fn initial_state<D: Definitions + ?Sized>(
    instance: &InstanceId,
    history: &[RecordedEvent],
    definitions: &D,
) -> InstanceState {
    let first_at = history
        .first()
        .map(|event| event.at)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    let first_version = versions(&history[..history.len().min(1)])
        .first()
        .copied()
        .unwrap_or(1);
    let definition = definitions.version(first_version).map_or_else(
        || DefinitionId::from(""),
        |definition| definition.id.clone(),
    );
    InstanceState::new(instance.clone(), definition, first_at)
}

fn apply_recorded<D: Definitions + ?Sized>(
    instance: &InstanceId,
    state: InstanceState,
    recorded: &RecordedEvent,
    definitions: &D,
) -> Result<InstanceState, ReplayError> {
    let event = recorded.event().map_err(|error| ReplayError::Undecodable {
        instance: instance.clone(),
        seq: recorded.seq,
        message: error.to_string(),
    })?;
    let version = folding_version(state.version, &event);
    let definition = definitions
        .version(version)
        .ok_or_else(|| ReplayError::MissingVersion {
            instance: instance.clone(),
            seq: recorded.seq,
            version,
        })?;
    Ok(apply(state, &event, definition)
        .map_err(|source| ReplayError::Nondeterminism {
            instance: instance.clone(),
            seq: recorded.seq,
            source,
        })?
        .0)
}

/// The version `event` folds with: the one it starts or migrates to, else `current`.
fn folding_version(current: u32, event: &Event) -> u32 {
    if let EventBody::InstanceStarted { version, .. } = &event.body {
        *version
    } else if let EventBody::InstanceMigrated { to_version, .. } = &event.body {
        *to_version
    } else {
        current
    }
}

/// Folds the events with `seq <= until` (all when `None`) and returns the state reached.
pub fn replay<D: Definitions + ?Sized>(
    instance: &InstanceId,
    history: &[RecordedEvent],
    definitions: &D,
    until: Option<u64>,
) -> Result<InstanceState, ReplayError> {
    let mut state = initial_state(instance, history, definitions);
    for recorded in history {
        if until.is_some_and(|until| recorded.seq > until) {
            break;
        }
        state = apply_recorded(instance, state, recorded, definitions)?;
    }
    Ok(state)
}

/// Folds `tail`, the events recorded after a state snapshot, into that snapshot: how a
/// stored instance whose snapshot is older than its history is brought up to date.
pub fn replay_tail<D: Definitions + ?Sized>(
    snapshot: InstanceState,
    tail: &[RecordedEvent],
    definitions: &D,
) -> Result<InstanceState, ReplayError> {
    let instance = snapshot.id.clone();
    tail.iter().try_fold(snapshot, |state, recorded| {
        apply_recorded(&instance, state, recorded, definitions)
    })
}
