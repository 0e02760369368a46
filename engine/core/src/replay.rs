//! Replay: fold a recorded history through [`apply`], the same function the runtime uses.

use crate::definition::Definition;
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
    let first_at = history
        .first()
        .map(|event| event.at)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    let mut state = InstanceState::new(instance.clone(), definition.id.clone(), first_at);
    for recorded in history {
        if until.is_some_and(|until| recorded.seq > until) {
            break;
        }
        let event = recorded.event().map_err(|error| ReplayError::Undecodable {
            instance: instance.clone(),
            seq: recorded.seq,
            message: error.to_string(),
        })?;
        state = apply(state, &event, definition)
            .map_err(|source| ReplayError::Nondeterminism {
                instance: instance.clone(),
                seq: recorded.seq,
                source,
            })?
            .0;
    }
    Ok(state)
}
