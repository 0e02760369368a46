//! Local simulators of the external systems, and the framework they share.
//!
//! A simulator is an axum server on loopback that serves the same paths and shapes as the
//! real system, from seeded data that survives its restarts, with faults injected on
//! demand. The contract tests and `gridflow serve --sandbox` run the connectors against
//! them over real HTTP.
//!
//! # Writing a simulator
//!
//! 1. Define the system's data as a type implementing [`SimState`] (`Clone + Serialize +
//!    Deserialize`), whose [`SimState::seed`] returns realistic data: the systems read it
//!    from `systems/<name>/seed.json` with `include_str!`, so the seed is data, not code.
//! 2. Write the system's [`Routes`] (`Router<Arc<SimContext<YourState>>>`s). Handlers read
//!    with `context.store.read(|state| …)` and change state only through
//!    [`SimStore::change`], passing a [`Change`] that names the effect and carries the
//!    request's [`idempotency_key`]; turn its [`Reply`] into a response with [`reply`].
//!    Issue tokens with [`Tokens::issue`]. Handlers never check them: the routes that need
//!    one go into [`Routes::protected`], and [`Routes::authorize`] (for instance with
//!    [`Tokens::check_bearer`]) runs in front of them as a route layer.
//! 3. Start it with [`serve`], giving a name, [`SimOptions`] (address, state file, initial
//!    fault plan) and an [`ErrorRenderer`] that writes errors in the system's own shape (the
//!    fault layer and the 404 fallback use it).
//!
//! ```ignore
//! let simulator = simulator::serve("vip", options, vip_routes(), render_problem).await?; // vip_routes(): Routes<VipState>
//! let base_url = simulator.base_url(); // "http://127.0.0.1:41234"
//! simulator.faults().push(FaultRule::any(Fault::RateLimit { retry_after_secs: 2 }));
//! simulator.tokens().expire_all();     // the next call must refresh its token
//! assert_eq!(simulator.effects().len(), 1);
//! simulator.shutdown().await;
//! ```
//!
//! # Control endpoints
//!
//! Every simulator also serves, without authentication (loopback only):
//! - `GET /_sim/faults` (the [`FaultPlan`]), `PUT /_sim/faults` (replace it),
//!   `POST /_sim/faults` (queue one [`FaultRule`]), `DELETE /_sim/faults` (clear);
//! - `GET /_sim/effects`: `{"effects": [Effect…]}`, every state-changing request that took
//!   effect, with its idempotency key, so that a test can assert one effect per logical
//!   action;
//! - `POST /_sim/tokens/expire`: every issued token stops working, as when it expires;
//! - `GET /_sim/tokens`: `{"issued": N, "tokens": [...]}`, every token issued since the
//!   start, expired ones included, so that a test can check that a refresh happened and
//!   search logs and history for the exact values. They are the simulator's own tokens,
//!   worth nothing outside it, on the same unauthenticated loopback port as the rest.
//!
//! Faults apply only to the system's routes, never to `/_sim/*`, and are applied before the
//! handler runs, so an injected 429, 500 or dropped connection changes no state; a
//! `lose_response` fault lets the request take effect and then drops the connection, as
//! when a response is lost on the way back.
//!
//! # Idempotency
//!
//! [`SimStore::change`] stores the reply of every keyed request and answers a repeat with
//! the stored reply, changing nothing. Simulators honour `Idempotency-Key` where the real
//! system does (VIP's design) and, where it does not, our own `X-Gridflow-Idempotency-Key`
//! header \[D\], which the connectors send on every state-changing request.

// Handlers return an early `Response` through `Result` (axum's idiom for a rejection);
// boxing it would buy nothing on a loopback test server.
#![allow(clippy::result_large_err)]

mod auth;
mod faults;
pub(crate) mod http;
mod store;
mod tokens;

pub use crate::systems::canto::simulator as canto;
pub use crate::systems::iconik::simulator as iconik;
pub use crate::systems::otmm::simulator as otmm;
pub use crate::systems::smintio::simulator as smintio;
pub use crate::systems::trading_grid::simulator as trading_grid;
pub use crate::systems::vip::simulator as vip;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use auth::{Authorize, Routes};
pub use faults::{ErrorRenderer, EveryNth, Fault, FaultPlan, FaultRule, Faults};
pub use store::{Change, ChangeResult, Effect, Reply, SimState, SimStore};
pub use tokens::Tokens;

/// The idempotency header of systems that define one (and of our `/hub/v1` and VIP designs).
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// Our own idempotency header \[D\], sent by the connectors to systems that define none; the
/// simulators deduplicate on it.
pub const GRIDFLOW_IDEMPOTENCY_KEY_HEADER: &str = "x-gridflow-idempotency-key";

/// How often the sandbox polls the OTMM and Trading Grid simulators when `gridflow.toml`
/// does not configure those systems: often, so that a change made while trying things
/// out starts its workflow within seconds.
pub const SANDBOX_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// The client id every sandbox simulator accepts.
pub const SANDBOX_CLIENT_ID: &str = "sandbox-client";
/// The client secret every sandbox simulator accepts.
pub const SANDBOX_CLIENT_SECRET: &str = "sandbox-client-secret";
/// The user name every sandbox simulator accepts.
pub const SANDBOX_USERNAME: &str = "sandbox-user";
/// The password every sandbox simulator accepts.
pub const SANDBOX_PASSWORD: &str = "sandbox-password";

/// Why a simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The state file could not be read or written.
    #[error("simulator state file {}: {source}", path.display())]
    Io {
        /// The state file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The state file is not valid state of this simulator.
    #[error("simulator state file {} cannot be read as state: {source}", path.display())]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The address could not be bound.
    #[error("simulator {name} cannot listen on {address}: {source}")]
    Bind {
        /// The simulator.
        name: String,
        /// The address asked for.
        address: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// How to start one simulator.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Where to listen; `127.0.0.1:0` (the default) picks a free port.
    pub address: SocketAddr,
    /// The JSON file holding its state, seeded when absent; `None` keeps it in memory.
    pub state_file: Option<PathBuf>,
    /// The faults to inject from the start.
    pub faults: FaultPlan,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_file: None,
            faults: FaultPlan::default(),
        }
    }
}

impl SimOptions {
    /// In memory, on a free loopback port, without faults.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Persisted to `state_file`, on a free loopback port, without faults.
    pub fn persisted(state_file: impl Into<PathBuf>) -> Self {
        Self {
            state_file: Some(state_file.into()),
            ..Self::default()
        }
    }
}

/// What every handler of a simulator shares: its state, its tokens and its faults.
pub struct SimContext<S> {
    /// The persisted state and effect log.
    pub store: SimStore<S>,
    /// Issued access tokens.
    pub tokens: Tokens,
    /// The fault plan (handlers rarely need it; the middleware applies it).
    pub faults: Faults,
}

/// What the control endpoints and [`RunningSimulator`] need, whatever the state type.
trait Control: Send + Sync {
    fn effects(&self) -> Vec<Effect>;
}

impl<S: SimState> Control for SimContext<S> {
    fn effects(&self) -> Vec<Effect> {
        self.store.effects()
    }
}

/// A simulator serving on loopback. Dropping it stops the server.
pub struct RunningSimulator {
    name: String,
    address: SocketAddr,
    faults: Faults,
    tokens: Tokens,
    control: Arc<dyn Control>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningSimulator {
    /// The simulated system (`vip`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://<address>`, the root the system's paths hang from.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The fault plan, to change while it runs.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The issued tokens, to expire them.
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// Every state-changing request that took effect so far.
    pub fn effects(&self) -> Vec<Effect> {
        self.control.effects()
    }

    /// Stops accepting connections, lets open requests finish, and waits for the server.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // The server may have stopped already; then there is nobody to tell.
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            tracing::error!(simulator = %self.name, %error, "simulator task failed");
        }
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Starts a simulator: opens (or seeds) its state, binds `options.address`, and serves
/// `routes` (the protected ones behind their check) behind the fault layer, plus the
/// `/_sim/*` control endpoints.
pub async fn serve<S: SimState>(
    name: &str,
    options: SimOptions,
    routes: impl Into<Routes<S>>,
    render: ErrorRenderer,
) -> Result<RunningSimulator, SimError> {
    let store = SimStore::open(options.state_file.as_deref())?;
    let faults = Faults::new(options.faults);
    let tokens = Tokens::default();
    let context = Arc::new(SimContext {
        store,
        tokens: tokens.clone(),
        faults: faults.clone(),
    });
    let control: Arc<dyn Control> = context.clone();
    let layer = faults::FaultLayer {
        faults: faults.clone(),
        render,
    };
    let system = routes
        .into()
        .into_router(context.clone())
        .fallback(move || async move { render(StatusCode::NOT_FOUND, "no such resource") })
        .layer(axum::middleware::from_fn_with_state(layer, faults::inject))
        .with_state(context);
    let control_routes = Router::new()
        .route(
            "/_sim/faults",
            get(get_faults)
                .put(put_faults)
                .post(post_fault)
                .delete(delete_faults),
        )
        .route("/_sim/effects", get(get_effects))
        .route("/_sim/tokens", get(get_tokens))
        .route("/_sim/tokens/expire", post(expire_tokens))
        .with_state(ControlState {
            faults: faults.clone(),
            tokens: tokens.clone(),
            control: control.clone(),
        });
    let app = control_routes.merge(system);

    let listener = tokio::net::TcpListener::bind(options.address)
        .await
        .map_err(|source| SimError::Bind {
            name: name.to_owned(),
            address: options.address,
            source,
        })?;
    let address = listener.local_addr().map_err(|source| SimError::Bind {
        name: name.to_owned(),
        address: options.address,
        source,
    })?;
    let (shutdown, stopped) = oneshot::channel::<()>();
    let task_name = name.to_owned();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                // A dropped sender also means stop.
                let _ = stopped.await;
            })
            .await;
        if let Err(error) = served {
            tracing::error!(simulator = %task_name, %error, "simulator stopped with an error");
        }
    });
    tracing::info!(simulator = name, %address, "simulator listening");
    Ok(RunningSimulator {
        name: name.to_owned(),
        address,
        faults,
        tokens,
        control,
        shutdown: Some(shutdown),
        task: Some(task),
    })
}

#[derive(Clone)]
struct ControlState {
    faults: Faults,
    tokens: Tokens,
    control: Arc<dyn Control>,
}

async fn get_faults(State(state): State<ControlState>) -> Json<FaultPlan> {
    Json(state.faults.plan())
}

async fn put_faults(State(state): State<ControlState>, Json(plan): Json<FaultPlan>) -> StatusCode {
    state.faults.set(plan);
    StatusCode::NO_CONTENT
}

async fn post_fault(State(state): State<ControlState>, Json(rule): Json<FaultRule>) -> StatusCode {
    state.faults.push(rule);
    StatusCode::NO_CONTENT
}

async fn delete_faults(State(state): State<ControlState>) -> StatusCode {
    state.faults.clear();
    StatusCode::NO_CONTENT
}

async fn get_effects(State(state): State<ControlState>) -> Json<serde_json::Value> {
    Json(json!({"effects": state.control.effects()}))
}

async fn get_tokens(State(state): State<ControlState>) -> Json<serde_json::Value> {
    let tokens = state.tokens.issued();
    Json(json!({"issued": tokens.len(), "tokens": tokens}))
}

async fn expire_tokens(State(state): State<ControlState>) -> StatusCode {
    state.tokens.expire_all();
    StatusCode::NO_CONTENT
}

/// The request's idempotency key: `Idempotency-Key`, else our `X-Gridflow-Idempotency-Key`.
pub fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    [IDEMPOTENCY_KEY_HEADER, GRIDFLOW_IDEMPOTENCY_KEY_HEADER]
        .iter()
        .find_map(|name| headers.get(*name)?.to_str().ok())
        .map(str::to_owned)
}

/// A [`Reply`] as a JSON response; a replayed one carries `Idempotent-Replayed: true`.
pub fn reply(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(reply.body)).into_response();
    if reply.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::routing::post;
    use serde::{Deserialize, Serialize};
    use serde_json::Value;

    use super::*;

    #[derive(Clone, Serialize, Deserialize)]
    struct Notes {
        notes: Vec<String>,
    }

    impl SimState for Notes {
        fn seed() -> Self {
            Self {
                notes: vec!["seeded".to_owned()],
            }
        }
    }

    fn render(status: StatusCode, message: &str) -> Response {
        (status, Json(json!({"message": message}))).into_response()
    }

    async fn add_note(
        State(context): State<Arc<SimContext<Notes>>>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> Response {
        let change = Change::new("note.added", "POST", "/notes", idempotency_key(&headers));
        reply(context.store.change(change, |notes| {
            notes
                .notes
                .push(body["text"].as_str().unwrap_or_default().to_owned());
            Ok((
                StatusCode::CREATED,
                json!({"count": notes.notes.len()}),
                None,
            ))
        }))
    }

    async fn start() -> RunningSimulator {
        let routes = Router::new().route("/notes", post(add_note));
        serve("notes", SimOptions::in_memory(), routes, render)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn faults_apply_before_the_handler_and_keys_deduplicate() {
        let simulator = start().await;
        let client = reqwest::Client::new();
        let url = format!("{}/notes", simulator.base_url());
        simulator.faults().push(FaultRule::any(Fault::RateLimit {
            retry_after_secs: 4,
        }));
        simulator.faults().push(FaultRule::any(Fault::Drop));
        let post = || {
            client
                .post(&url)
                .header(IDEMPOTENCY_KEY_HEADER, "k-1")
                .json(&json!({"text": "hello"}))
                .send()
        };
        let limited = post().await.unwrap();
        assert_eq!(limited.status(), 429);
        assert_eq!(limited.headers()["retry-after"], "4");
        let dropped = match post().await {
            Ok(response) => response.bytes().await.err(),
            Err(error) => Some(error),
        };
        assert!(dropped.is_some(), "the dropped connection yields an error");
        let created = post().await.unwrap();
        assert_eq!(created.status(), 201);
        let again = post().await.unwrap();
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        assert_eq!(again.json::<Value>().await.unwrap()["count"], 2);

        let effects: Value = client
            .get(format!("{}/_sim/effects", simulator.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(effects["effects"].as_array().unwrap().len(), 1);
        assert_eq!(effects["effects"][0]["idempotency_key"], "k-1");
        simulator.shutdown().await;
    }

    #[tokio::test]
    async fn control_endpoint_sets_the_plan_and_unknown_paths_use_the_error_shape() {
        let simulator = start().await;
        let client = reqwest::Client::new();
        let response = client
            .put(format!("{}/_sim/faults", simulator.base_url()))
            .json(&json!({"queue": [{"fault": {"kind": "server_error"}, "method": "POST"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
        assert_eq!(simulator.faults().plan().queue.len(), 1);
        let missing = client
            .get(format!("{}/nowhere", simulator.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
        assert_eq!(
            missing.json::<Value>().await.unwrap()["message"],
            "no such resource"
        );
        let failed = client
            .post(format!("{}/notes", simulator.base_url()))
            .json(&json!({"text": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(failed.status(), 500);
        assert!(simulator.effects().is_empty());
    }

    #[tokio::test]
    async fn token_list_keeps_expired_tokens() {
        let simulator = start().await;
        let first = simulator.tokens().issue();
        let expired = reqwest::Client::new()
            .post(format!("{}/_sim/tokens/expire", simulator.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(expired.status(), 204);
        assert!(!simulator.tokens().is_valid(&first));
        let second = simulator.tokens().issue();
        let listed: Value = reqwest::get(format!("{}/_sim/tokens", simulator.base_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed, json!({"issued": 2, "tokens": [first, second]}));
    }
}
