//! Replay: fold a recorded history through [`apply`], the same function the runtime uses.
//!
//! A history records its format version in its `instance_started` ([`history_version`];
//! [`crate::history::HISTORY_VERSION`] for new ones, 1 for those recorded before versions
//! were). Folding that event puts the version into the state
//! ([`InstanceState::history_version`]), where the machine can branch on it when a change
//! of semantics keeps older histories replaying the older way; a version the machine does
//! not know makes replay fail with [`ReplayError::Nondeterminism`].

use crate::definition::Definition;
use crate::event::EventBody;
use crate::history::RecordedEvent;
use crate::id::InstanceId;
use crate::machine::{StepError, apply};
use crate::state::InstanceState;

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
pub fn replay_each(
    instance: &InstanceId,
    history: &[RecordedEvent],
    definition: &Definition,
    mut visit: impl FnMut(&RecordedEvent, &InstanceState),
) -> Result<InstanceState, ReplayError> {
    let mut state = initial_state(instance, history, definition);
    for recorded in history {
        state = apply_recorded(instance, state, recorded, definition)?;
        visit(recorded, &state);
    }
    Ok(state)
}

/// The state before the first event: what [`replay_each`] starts from.
pub fn initial_state(
    instance: &InstanceId,
    history: &[RecordedEvent],
    definition: &Definition,
) -> InstanceState {
    let first_at = history
        .first()
        .map(|event| event.at)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    InstanceState::new(instance.clone(), definition.id.clone(), first_at)
}

fn apply_recorded(
    instance: &InstanceId,
    state: InstanceState,
    recorded: &RecordedEvent,
    definition: &Definition,
) -> Result<InstanceState, ReplayError> {
    let event = recorded.event().map_err(|error| ReplayError::Undecodable {
        instance: instance.clone(),
        seq: recorded.seq,
        message: error.to_string(),
    })?;
    Ok(apply(state, &event, definition)
        .map_err(|source| ReplayError::Nondeterminism {
            instance: instance.clone(),
            seq: recorded.seq,
            source,
        })?
        .0)
}

/// Folds the events with `seq <= until` (all when `None`) and returns the state reached.
pub fn replay(
    instance: &InstanceId,
    history: &[RecordedEvent],
    definition: &Definition,
    until: Option<u64>,
) -> Result<InstanceState, ReplayError> {
    let mut state = initial_state(instance, history, definition);
    for recorded in history {
        if until.is_some_and(|until| recorded.seq > until) {
            break;
        }
        state = apply_recorded(instance, state, recorded, definition)?;
    }
    Ok(state)
}

/// Folds `tail`, the events recorded after a state snapshot, into that snapshot: how a
/// stored instance whose snapshot is older than its history is brought up to date.
pub fn replay_tail(
    snapshot: InstanceState,
    tail: &[RecordedEvent],
    definition: &Definition,
) -> Result<InstanceState, ReplayError> {
    let instance = snapshot.id.clone();
    tail.iter().try_fold(snapshot, |state, recorded| {
        apply_recorded(&instance, state, recorded, definition)
    })
}
