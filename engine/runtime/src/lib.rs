//! gridflow-runtime: the async half of the engine, around the pure core.
//!
//! [`Engine`] is the handle (deploy, start, cancel, retry, read). Behind it one driver task
//! owns the hot instance states: it feeds inputs (action outcomes, due timers, operator
//! requests) through `gridflow_core::transition_in_place`, writes each cycle's events,
//! snapshots, queued work and timers of many instances in one transaction (group commit),
//! and only then answers callers and dispatches actions through the connectors.
//! Time comes from an injected [`Clock`].
//!
//! The files are layered. At the bottom, the shared state (`shared`) and the driver's
//! messages (`message`), with the leaves they are made of. Above them, the background
//! tasks (`driver`, `executor`, `database_watch`, `checkpoint`), which hold the
//! shared state. At the top, the handle (`engine`), and one file per concern of its
//! methods (`instances`, `definitions`, `signals`, `approvals`, `events`, `webhooks`,
//! `idempotency`, `audit`, `tokens`, `monitoring`, `ledger`), with the cron scheduler,
//! the pollers and the rights timer (`rights`) built on it.
//!
//! This crate never decides what happens next in an instance: the core does. It never
//! acts on anything before it is committed, and never names a concrete store.
#![warn(missing_docs)]

mod approval_rows;
mod approvals;
pub mod audit;
mod audit_key;
mod availability;
mod binding;
mod checkpoint;
mod children;
pub mod clock;
mod database_watch;
mod definition_cache;
mod definitions;
mod driver;
mod engine;
pub mod error;
pub mod events;
mod executor;
pub mod idempotency;
mod input_limits;
mod instances;
mod ledger;
mod message;
mod migrate;
mod monitoring;
pub mod poller;
mod rerun;
pub mod rights;
pub mod scheduler;
mod shared;
mod signals;
mod snapshot;
mod start_locks;
mod stats;
mod tokens;
mod trigger_filter;
mod versions;
pub mod view;
pub mod webhooks;

pub use approvals::{Approver, DecisionRequest};
pub use audit::{AuditKey, EventDiff};
pub use clock::{Clock, ManualClock, SandboxClock, SystemClock};
pub use definitions::Deployment;
pub use engine::{Engine, EngineOptions};
pub use error::{Detail, Error, Result};
pub use events::EventOutcome;
pub use idempotency::Started;
pub use instances::Replayed;
pub use ledger::DeliveryDetail;
pub use migrate::{MigrationItem, MigrationPlan, MigrationRequest};
pub use poller::{PollPass, Poller, PollerOptions};
pub use rerun::RerunRequest;
pub use rights::{RightsOptions, RightsPass, RightsTimer};
pub use scheduler::{Pass, Scheduler, SchedulerOptions};
pub use stats::{
    APPROVAL_WAIT_BOUNDS, BATCH_SIZE_BOUNDS, HistogramSnapshot, HistogramsSnapshot, StatsSnapshot,
};
pub use trigger_filter::TriggerFilterCounts;
pub use view::{
    ApprovalView, Assignees, ChildView, DefinitionView, InstanceSummary, InstanceView, ParentView,
    StepView,
};
pub use webhooks::WebhookOutcome;
