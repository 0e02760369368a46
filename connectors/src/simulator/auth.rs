//! Authentication as a route layer: a simulator names the routes that need a valid token
//! and one function that checks a request, and [`super::serve`] puts that check in front
//! of exactly those routes, so that no handler checks on its own.
//!
//! The check runs after the fault layer (an injected fault answers first, as a real
//! system's gateway would) and before the handler and its extractors; a route that does
//! not match (the 404 fallback) or a method it does not serve (405) needs no token.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

use super::{SimContext, SimState};

/// Checks that a request may reach a protected route: `Ok` lets it through, `Err` is the
/// system's own 401 in its own error shape.
pub type Authorize<S> = fn(&SimContext<S>, &HeaderMap) -> Result<(), Response>;

/// A simulator's routes: those anyone may call (token and login endpoints, the
/// simulator's own `/_sim/<system>/*` settings, signed uploads) and those behind its
/// authentication, with the check that guards them.
pub struct Routes<S> {
    /// Routes that need no token.
    pub public: Router<Arc<SimContext<S>>>,
    /// Routes that [`Routes::authorize`] guards.
    pub protected: Router<Arc<SimContext<S>>>,
    /// The check in front of every protected route.
    pub authorize: Authorize<S>,
}

impl<S: SimState> From<Router<Arc<SimContext<S>>>> for Routes<S> {
    /// Routes that all need no token.
    fn from(public: Router<Arc<SimContext<S>>>) -> Self {
        Self {
            public,
            protected: Router::new(),
            authorize: |_, _| Ok(()),
        }
    }
}

impl<S: SimState> Routes<S> {
    /// One router: the protected routes behind the check, merged with the public ones.
    pub(crate) fn into_router(self, context: Arc<SimContext<S>>) -> Router<Arc<SimContext<S>>> {
        let guard = Guard {
            context,
            authorize: self.authorize,
        };
        // axum refuses a route layer on a router without routes.
        if !self.protected.has_routes() {
            return self.public;
        }
        self.protected
            .route_layer(axum::middleware::from_fn_with_state(guard, authenticate))
            .merge(self.public)
    }
}

/// What the layer needs: the simulator's context (its tokens) and its check.
struct Guard<S> {
    context: Arc<SimContext<S>>,
    authorize: Authorize<S>,
}

impl<S> Clone for Guard<S> {
    fn clone(&self) -> Self {
        Self {
            context: Arc::clone(&self.context),
            authorize: self.authorize,
        }
    }
}

async fn authenticate<S: SimState>(
    State(guard): State<Guard<S>>,
    request: Request,
    next: Next,
) -> Response {
    match (guard.authorize)(&guard.context, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(response) => response,
    }
}
