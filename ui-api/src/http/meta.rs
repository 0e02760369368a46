//! The routes outside the API's handlers: `/healthz` (open, for load balancers) and the
//! answers to unknown paths and methods, which under `/api/v1` need a token first so
//! that anonymous callers learn nothing of the API's shape.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};

use crate::http::auth;
use crate::http::error::ApiError;
use crate::http::state::{API_PREFIX, AppState};

pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    match state.engine.health().await {
        Ok(()) => Json(serde_json::json!({"status": "ok"})).into_response(),
        // Whatever the engine's reason, the node cannot serve: 503 for load balancers.
        Err(error) => {
            ApiError::unavailable(format!("health check failed: {error}")).into_response()
        }
    }
}

/// Unknown paths and methods under /api/v1 need a token too, so that the API's shape is
/// not revealed to anonymous callers: the 401 comes before the 404 or 405.
async fn authenticate_under_api(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let under_api = uri
        .path()
        .strip_prefix(API_PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if under_api {
        auth::authenticate(state, headers).await?;
    }
    Ok(())
}

pub(crate) async fn unknown_route(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiError {
    match authenticate_under_api(&state, &uri, &headers).await {
        Err(error) => error,
        Ok(()) => ApiError::not_found("no such route; the API is under /api/v1 (see DESIGN.md §5)"),
    }
}

pub(crate) async fn method_not_allowed(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiError {
    match authenticate_under_api(&state, &uri, &headers).await {
        Err(error) => error,
        Ok(()) => ApiError::method_not_allowed(),
    }
}
