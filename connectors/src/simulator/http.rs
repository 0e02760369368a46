//! HTTP helpers shared by the system simulators.
//!
//! Every simulator used to carry its own copy of these functions; they live
//! here so that the request and response plumbing behaves the same way in all
//! of them, while each system still supplies its own error body shape and
//! timestamp format where the real systems differ.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Writes a system's error response; each simulator passes its own so the
/// body keeps the shape the real system uses.
pub(crate) type RenderError = fn(StatusCode, &str) -> Response;

/// Builds a system's error body without rendering it, so handlers can return
/// it from inside a store transaction and render it afterwards.
pub(crate) type ErrorValue = fn(StatusCode, &str) -> (StatusCode, Value);

/// Parses a request body that must be a JSON object, and otherwise answers 400
/// in the system's error shape, because the real systems reject anything else
/// before looking at the fields.
pub(crate) fn json_object(body: &Bytes, render: RenderError) -> Result<Value, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) if value.is_object() => Ok(value),
        _ => Err(render(
            StatusCode::BAD_REQUEST,
            "request body must be a JSON object",
        )),
    }
}

/// Returns the current time as RFC 3339 with whole seconds; `use_z` chooses
/// between a `Z` suffix and `+00:00`, because the systems disagree on that and
/// the connectors parse exactly what their system sends.
pub(crate) fn now_rfc3339(use_z: bool) -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, use_z)
}

/// Builds the 404 body for a missing `what` named `id` in the system's error
/// shape, so that every simulator words it the same way.
pub(crate) fn not_found(error: ErrorValue, what: &str, id: &str) -> (StatusCode, Value) {
    error(StatusCode::NOT_FOUND, &format!("{what} {id} not found"))
}

/// Turns a handler's result into a response: the value as JSON with 200, or
/// the error's status and body, so handlers can use `?` on store lookups.
pub(crate) fn respond(result: Result<Value, (StatusCode, Value)>) -> Response {
    match result {
        Ok(body) => axum::Json(body).into_response(),
        Err((status, body)) => (status, axum::Json(body)).into_response(),
    }
}

/// Decodes a form body into a map (the last value of a repeated name wins).
pub(crate) fn serde_urlencoded_pairs(body: &[u8]) -> HashMap<String, String> {
    reqwest::Url::parse(&format!("http://form/?{}", String::from_utf8_lossy(body)))
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default()
}
