//! gridflow: the HTTP API and the command line of the workflow engine.
//!
//! - [`api`]: the axum router ([`app`], [`AppState`]) of DESIGN.md §5, over the engine
//!   handle [`gridflow_runtime::Engine`];
//! - [`error`]: [`ApiError`], the one error body of every failed request, and its
//!   mapping from engine errors;
//! - [`auth`]: bearer tokens (the admin token, stored tokens by hash) and the middleware
//!   that applies [`policy`], the one table of which role may call which route;
//! - [`tokens`]: `POST /api/v1/tokens` and the sandbox's demo users;
//! - [`openapi`]: the OpenAPI 3.1 document generated from the routes;
//! - [`metrics`]: `GET /metrics` in the OpenMetrics text format;
//! - [`events`]: inbound webhooks, authenticated by an HMAC signature per source;
//! - [`extract`]: extractors whose rejections are [`ApiError`]s;
//! - [`cli`], [`client`], [`output`]: the command line of DESIGN.md §6.
//!
//! The binary's `main.rs` is the composition root: it alone names the concrete store.
//! This library must never do so, never log a token, and never let a database detail
//! reach a client.

pub mod api;
pub mod approvals;
pub mod approvals_cli;
pub mod audit;
pub mod audit_cli;
pub mod auth;
pub mod cli;
pub mod client;
pub mod error;
pub mod events;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod output;
pub mod policy;
pub mod tokens;

pub use api::{AppState, app};
pub use error::ApiError;
