//! What every handler shares: [`AppState`] (the engine, the admin token, the event
//! sources' secrets, the token settings, the console's sessions) and where the API is
//! mounted. A leaf but for the console's session table: the router, the middleware and
//! the handlers all read it; it reads none of them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use gridflow_connectors::config::TokensConfig;
use gridflow_runtime::Engine;

use crate::console::ConsoleState;
use crate::http::event_secrets::EventSecrets;

/// Where the API is mounted.
pub const API_PREFIX: &str = "/api/v1";

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The engine the API operates.
    pub engine: Engine,
    /// The admin token that `/api/v1` accepts.
    pub admin_token: Arc<str>,
    /// The webhook secret of each event source (`POST /api/v1/events/{source}`).
    pub event_secrets: EventSecrets,
    /// Token lifetimes and this server run's id (demo tokens).
    pub tokens: TokenSettings,
    /// The clock that `POST /sandbox/clock` moves, under `serve --sandbox` only.
    pub sandbox_clock: Option<Arc<gridflow_runtime::SandboxClock>>,
    /// The console's sessions (in memory on this node).
    pub console: ConsoleState,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token stays out of every Debug output, and so out of logs.
        f.debug_struct("AppState")
            .field("engine", &self.engine)
            .field("admin_token", &"<redacted>")
            .field("event_secrets", &self.event_secrets)
            .field("tokens", &self.tokens)
            .field("sandbox_clock", &self.sandbox_clock)
            .field("console", &self.console)
            .finish()
    }
}

/// What the token endpoints need to know besides the engine.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// The lifetime of a token created without `expires_in`.
    pub default_lifetime: Duration,
    /// The longest `expires_in` accepted.
    pub max_lifetime: Duration,
    /// This server run's id. Demo tokens carry it and no other run accepts them.
    pub server_run: Arc<str>,
}

impl TokenSettings {
    /// The settings of `[tokens]`, with a fresh server run id.
    pub fn new(config: &TokensConfig) -> Self {
        Self {
            default_lifetime: config.default_lifetime,
            max_lifetime: config.max_lifetime,
            server_run: Arc::from(uuid::Uuid::new_v4().to_string()),
        }
    }
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self::new(&TokensConfig::default())
    }
}
