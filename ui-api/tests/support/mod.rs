//! The one HTTP test harness of the ui-api tests: an engine on the memory store and the
//! application over it ([`Harness`]), requests with a bearer token ([`request`]) sent
//! through `oneshot` ([`send`]), and what came back ([`Reply`]). No socket is needed
//! (`edge.rs` tests the socket edge itself; `cli.rs` runs the built binary).
//!
//! Each test file keeps its own small helpers over these (its answer type, its fixtures),
//! so that its assertions read as before.

// Each test file is its own crate and uses part of the harness.
#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::request::Builder;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

use gridflow::http::event_secrets::EventSecrets;
use gridflow::http::state::TokenSettings;
use gridflow::{AppState, app};
use gridflow_connectors::Registry;
use gridflow_runtime::{Clock, Engine, EngineOptions, SystemClock};
use gridflow_store::MemoryStore;

/// How to build a [`Harness`]: the defaults are a fresh memory store, the system clock,
/// the engine's default options, no event secrets and the default token settings.
pub(crate) struct Options {
    /// The admin token the application accepts.
    pub(crate) admin_token: String,
    /// The store; shared between harnesses to play two server runs on one database.
    pub(crate) store: Arc<MemoryStore>,
    /// The engine's clock.
    pub(crate) clock: Arc<dyn Clock>,
    /// The engine's options (limits, …).
    pub(crate) engine: EngineOptions,
    /// The webhook secret of each event source.
    pub(crate) event_secrets: EventSecrets,
    /// Token lifetimes and the server run's id.
    pub(crate) tokens: TokenSettings,
    /// The connectors (the built-in ones by default).
    pub(crate) registry: Arc<Registry>,
}

impl Options {
    /// The defaults, with `admin_token`.
    pub(crate) fn new(admin_token: &str) -> Self {
        Self {
            admin_token: admin_token.to_owned(),
            store: Arc::new(MemoryStore::new()),
            clock: Arc::new(SystemClock),
            engine: EngineOptions::default(),
            event_secrets: EventSecrets::default(),
            tokens: TokenSettings::default(),
            registry: Arc::new(Registry::with_builtin()),
        }
    }
}

/// An engine on the memory store and the application over it.
pub(crate) struct Harness {
    /// The store under the engine.
    pub(crate) store: Arc<MemoryStore>,
    /// The engine.
    pub(crate) engine: Engine,
    /// The application's state (clone it to build another router over the same engine).
    pub(crate) state: AppState,
    /// The application.
    pub(crate) router: Router,
}

impl Harness {
    /// A harness with the default [`Options`] and `admin_token`.
    pub(crate) async fn start(admin_token: &str) -> Self {
        Self::with(Options::new(admin_token)).await
    }

    /// A harness built from `options`.
    pub(crate) async fn with(options: Options) -> Self {
        let engine = Engine::start(
            options.store.clone(),
            options.registry,
            options.clock,
            options.engine,
        )
        .await
        .expect("the engine starts on the memory store");
        let state = AppState {
            engine: engine.clone(),
            admin_token: Arc::from(options.admin_token),
            event_secrets: options.event_secrets,
            tokens: options.tokens,
            sandbox_clock: None,
            console: Default::default(),
        };
        Self {
            store: options.store,
            engine,
            router: app(state.clone()),
            state,
        }
    }

    /// Sends `request` to the application.
    pub(crate) async fn send(&self, request: Request<Body>) -> Reply {
        send(&self.router, request).await
    }
}

/// A request to `uri`, with `Authorization: Bearer <token>` when a token is given.
pub(crate) fn request(method: Method, uri: &str, token: Option<&str>) -> Builder {
    let request = Request::builder().method(method).uri(uri);
    match token {
        Some(token) => request.header(header::AUTHORIZATION, format!("Bearer {token}")),
        None => request,
    }
}

/// Sends `request` to `router` (a clone of it: routers are cheap to clone) and reads the
/// whole response.
pub(crate) async fn send(router: &Router, request: Request<Body>) -> Reply {
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the response body can be read");
    Reply {
        status,
        headers,
        bytes,
    }
}

/// A response, read whole.
pub(crate) struct Reply {
    /// The status.
    pub(crate) status: StatusCode,
    /// The headers.
    pub(crate) headers: HeaderMap,
    /// The body.
    pub(crate) bytes: Bytes,
}

impl Reply {
    /// The body as text (invalid UTF-8 replaced).
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The `content-type` header, if it is text.
    pub(crate) fn content_type(&self) -> Option<String> {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }

    /// The body as JSON, or `null` when it is not JSON (or empty).
    pub(crate) fn json_or_null(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }
}
