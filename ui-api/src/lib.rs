//! gridflow: the HTTP API and the command line of the workflow engine.
//!
//! - [`http`]: the axum router ([`app`], [`AppState`]) of DESIGN.md §5, over the engine
//!   handle [`gridflow_runtime::Engine`]: one module per resource, the access policy, the
//!   one paging extractor, the OpenAPI document and the HTTP edge (see its docs for the
//!   map);
//! - [`console`]: the web console served at `/` (server-rendered pages, sessions by
//!   cookie, CSRF and CSP), over the same engine calls and access policy as the API;
//! - [`cli`]: the command line of DESIGN.md §6 (the clap tree, one module per command
//!   group), over [`client`] (the HTTP client of the API) and [`output`] (everything the
//!   CLI prints).
//!
//! The binary's `main.rs` is the composition root: it alone names the concrete store.
//! This library must never do so, never log a token, and never let a database detail
//! reach a client.

pub mod cli;
pub mod client;
pub mod console;
pub mod http;
pub mod output;

pub use http::{ApiError, AppState, app};
