//! gridflow-connectors: how the engine reaches external systems.
//!
//! Main types: the [`Connector`] trait (one external system as a set of named actions,
//! each with JSON Schemas for its arguments and output), [`Invocation`] (what one attempt
//! receives, including its idempotency key), [`Error`] (retryable or permanent, with the
//! system's message and an optional retry-after hint) and the [`Registry`] (connectors by
//! name, arguments checked against each action's compiled schema, actions invoked as
//! `<connector>.<action>`).
//! The built-in [`core`] connector needs no configuration; [`http`] holds what every
//! HTTP connector shares, [`asset`] the approval and rights types every DAM connector
//! normalises to, and [`simulator`] the framework of the local simulators.
//! Each external system has one folder under [`systems`] (connector, `gridflow.toml`
//! section, simulator, seed data, change feed) and one row in its table; its connector
//! and simulator are also reachable as `gridflow_connectors::<system>` and
//! `gridflow_connectors::simulator::<system>`.
//!
//! This crate must never retry on its own (the core decides from the step's policy, see
//! [`Error::is_retryable`]), never log or return credentials (request headers, tokens,
//! URLs with query strings), and never reach the store or the state machine: it performs
//! one attempt and reports its outcome.
#![warn(missing_docs)]

pub mod asset;
pub mod config;
pub mod connector;
pub mod content;
pub mod core;
pub mod effects;
pub mod egress;
pub mod error;
pub mod feed;
mod fetch;
pub mod http;
pub mod ledger;
pub mod registry;
mod rest;
pub mod sandbox;
mod schema;
pub mod simulator;
pub mod systems;

pub use systems::{canto, iconik, otmm, smintio, trading_grid, vip};

pub use connector::{
    ActionSpec, Connector, Error, EventEffects, EventSpec, InboundEvent, Invocation, Result,
};
pub use feed::{ChangeFeed, FeedChange, FeedPage};
pub use registry::Registry;
