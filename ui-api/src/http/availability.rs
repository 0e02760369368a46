//! Answering 503 at once while the database is away, and while the server starts.
//!
//! - [`fail_fast`]: the API's outermost layer. While the engine knows the database to be
//!   unreachable ([`gridflow_runtime::Engine::database_reachable`], checked a few times a second), every
//!   API request gets `503 unavailable` with `Retry-After` without touching the store,
//!   instead of waiting for a connection that cannot come.
//! - [`Gate`]: what `serve` answers from the moment it listens until the engine is
//!   ready (the database may be down at start-up): 503 with `Retry-After` for every path,
//!   then the real application.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use crate::http::error::ApiError;
use crate::http::state::AppState;

/// Middleware: 503 at once while the database is known to be unreachable.
pub async fn fail_fast(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !state.engine.database_reachable() {
        return ApiError::unavailable("the database is unreachable").into_response();
    }
    next.run(request).await
}

/// The application once it is ready, and 503 until then.
#[derive(Clone, Default)]
pub struct Gate {
    app: Arc<OnceLock<Router>>,
}

impl Gate {
    /// A gate that answers 503 until [`Gate::open`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The router to serve: it forwards every request to the application once the gate
    /// is open.
    pub fn router(&self) -> Router {
        let gate = self.clone();
        Router::new().fallback(move |request: Request| {
            let gate = gate.clone();
            async move { gate.forward(request).await }
        })
    }

    /// Lets requests through to `app` from now on. Opening twice keeps the first.
    pub fn open(&self, app: Router) {
        let _ = self.app.set(app);
    }

    async fn forward(&self, request: Request) -> Response {
        match self.app.get() {
            Some(app) => match app.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
            None => ApiError::unavailable("the server is starting: waiting for the database")
                .into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{StatusCode, header};
    use axum::routing::get;

    use super::*;

    #[tokio::test]
    async fn the_gate_answers_503_until_it_opens() {
        let gate = Gate::new();
        let router = gate.router();
        let response = router
            .clone()
            .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));

        gate.open(Router::new().route("/healthz", get(|| async { "ok" })));
        let response = router
            .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
