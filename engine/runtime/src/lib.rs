//! gridflow-runtime: the async half of the engine, around the pure core.
//!
//! [`Engine`] is the handle (deploy, start, cancel, retry, read). Behind it one driver task
//! owns the hot instance states: it feeds inputs (action outcomes, due timers, operator
//! requests) through `gridflow_core::transition_in_place`, writes each cycle's events,
//! snapshots, queued work and timers of many instances in one transaction (group commit),
//! and only then answers callers and dispatches actions through the connectors.
//! Time comes from an injected [`Clock`].
//!
//! This crate never decides what happens next in an instance: the core does. It never
//! acts on anything before it is committed, and never names a concrete store.
#![warn(missing_docs)]

mod approvals;
pub mod audit;
pub mod clock;
mod definitions;
mod driver;
mod engine;
pub mod error;
pub mod events;
mod executor;
mod monitoring;
pub mod poller;
pub mod scheduler;
mod stats;
pub mod view;

pub use approvals::{Approver, DecisionRequest};
pub use audit::{AuditKey, EventDiff};
pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{Deployment, Engine, EngineOptions, Replayed};
pub use error::{Detail, Error, Result};
pub use events::EventOutcome;
pub use poller::{PollPass, Poller, PollerOptions};
pub use scheduler::{Pass, Scheduler, SchedulerOptions};
pub use stats::{
    APPROVAL_WAIT_BOUNDS, BATCH_SIZE_BOUNDS, HistogramSnapshot, HistogramsSnapshot, StatsSnapshot,
};
pub use view::{ApprovalView, Assignees, DefinitionView, InstanceView, StepView};
