//! gridflow-core: the definition model and its validation, the pure state machine,
//! history events with their hash chain, and replay.
//!
//! Main types: [`Definition`] (what analysts write), [`InstanceState`] (where an instance
//! stands), [`Event`] (facts, folded by [`apply`]), [`Input`] (what the runtime reports,
//! turned into events by [`transition`]) and [`Command`] (what the runtime must do next).
//!
//! This crate must never do IO, read a clock, or draw random numbers: time, ids and
//! random choices arrive inside inputs and events (`clippy.toml` forbids the calls), so
//! that folding a recorded history always yields the same state.
#![warn(missing_docs)]
#![deny(clippy::wildcard_enum_match_arm)]

pub mod approval;
pub mod artifact;
pub mod audit;
pub mod command;
pub mod definition;
pub mod duration;
pub mod event;
pub mod expr;
pub mod history;
pub mod id;
pub mod limits;
pub mod machine;
pub mod replay;
pub mod retry;
pub mod schedule;
pub mod secret_ref;
pub mod state;
pub mod status;
pub mod validate;
pub mod webhook;

pub use approval::{ApprovalState, ApprovalStatus, Verdict};
pub use artifact::Artifact;
pub use command::{ChildStart, Command, Dispatch, WorkKey};
pub use definition::{
    CatchUp, Definition, Overlap, RightsTrigger, StepDefinition, StepKind, Trigger,
};
pub use event::{ErrorInfo, Event, EventBody, ParentRef, TimerKey, TimerPurpose};
pub use history::{HISTORY_VERSION, RecordedEvent};
pub use id::{DefinitionId, InstanceId, StepId};
pub use machine::{
    Effects, Input, InputBody, StepError, Transition, apply, transition, transition_in_place,
};
pub use replay::{replay, replay_tail};
pub use state::{
    BufferedSignal, InstanceState, Phase, RepeatProgress, Reruns, StepState, Unit, Work,
};
pub use status::{InstanceStatus, StepStatus};
