//! [`ApiError`]: every failure of the HTTP API, as one JSON body with a stable code.
//!
//! The body is `{"error": {"code", "message", "details": [{path, message}]}}`. A 5xx never
//! shows its cause to the client: the cause travels in the response's extensions to
//! the `log_errors` middleware, which logs every failed request once.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use gridflow_runtime::{Detail, Error as EngineError};

/// A failed request: status, machine-readable code, message and details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Vec<Detail>,
    /// The real cause of a 5xx: logged, never sent.
    cause: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            cause: None,
        }
    }

    /// 400 `bad_request`: the request is malformed (syntax, bad parameter).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 400 `bad_request` about one parameter, named in the details.
    pub fn bad_parameter(name: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            details: vec![Detail {
                path: name.to_owned(),
                message: message.clone(),
            }],
            ..Self::bad_request(format!("invalid parameter {name:?}: {message}"))
        }
    }

    /// 401 `unauthorized`: no token, or a token that is not valid.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 `forbidden`: authenticated, but the role or the assignment does not allow it.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 405 `method_not_allowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this method is not allowed on this path",
        )
    }

    /// 422 `invalid`: well-formed but invalid, with every problem in `details`.
    pub fn invalid(message: impl Into<String>, details: Vec<Detail>) -> Self {
        Self {
            details,
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
        }
    }

    /// 408 `request_timeout`: the request was not answered within the server's limit.
    pub fn request_timeout(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request was not answered within {} (http.request_timeout); retry later",
                humantime::format_duration(limit)
            ),
        )
    }

    /// 409 `conflict`: the request conflicts with the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// An input over a limit of `[limits]`, the limit's key in the details: 413
    /// `payload_too_large` for a payload too large in itself, 409 `limit_exceeded` when
    /// the instance's state could only take it beyond a limit (too many signals kept).
    pub fn limit_exceeded(exceeded: &gridflow_core::limits::LimitExceeded) -> Self {
        let (status, code) = match exceeded.limit {
            "max_signal_bytes" => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            _ => (StatusCode::CONFLICT, "limit_exceeded"),
        };
        Self {
            details: vec![Detail {
                path: exceeded.key(),
                message: exceeded.to_string(),
            }],
            ..Self::new(status, code, exceeded.to_string())
        }
    }

    /// 503 `unavailable` with a generic message; `cause` is only logged.
    pub fn unavailable(cause: impl Into<String>) -> Self {
        Self {
            cause: Some(cause.into()),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the service is temporarily unavailable; retry later",
            )
        }
    }

    /// 500 `internal` with a generic message; `cause` is only logged.
    pub fn internal(cause: impl Into<String>) -> Self {
        Self {
            cause: Some(cause.into()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; the server log has the details",
            )
        }
    }

    /// Any other status (413, 415 from body extraction), with a code derived from it.
    pub(crate) fn from_status(status: StatusCode, message: impl Into<String>) -> Self {
        if status.is_server_error() {
            return Self::internal(message);
        }
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid",
            _ => "bad_request",
        };
        Self::new(status, code, message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message shown to the client.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The problems shown to the client.
    pub fn details(&self) -> &[Detail] {
        &self.details
    }
}

/// The `Retry-After` of every 503, in seconds.
pub const RETRY_AFTER_SECONDS: &str = "2";

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::NotFound(_) => ApiError::not_found(error.to_string()),
            EngineError::Invalid { message, details } => ApiError::invalid(message, details),
            EngineError::Conflict(message) => ApiError::conflict(message),
            EngineError::Forbidden(message) => ApiError::forbidden(message),
            EngineError::LimitExceeded(exceeded) => ApiError::limit_exceeded(&exceeded),
            EngineError::Unavailable(_) => ApiError::unavailable(error.to_string()),
            EngineError::Internal(_) => ApiError::internal(error.to_string()),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: BodyError<'a>,
}

#[derive(Serialize)]
struct BodyError<'a> {
    code: &'a str,
    message: &'a str,
    details: &'a [Detail],
}

/// What [`log_errors`] logs about a failed request; travels in the response's extensions.
#[derive(Debug, Clone)]
struct Failure {
    code: &'static str,
    /// The cause of a 5xx, or the client's message for a 4xx.
    description: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: BodyError {
                code: self.code,
                message: &self.message,
                details: &self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Every 503 is temporary (the database is away or busy): tell clients when to
            // try again rather than let them hammer the node.
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response.extensions_mut().insert(Failure {
            code: self.code,
            description: self.cause.unwrap_or(self.message),
        });
        response
    }
}

/// Logs each failed request once: 5xx at `error` with the real cause, 4xx at `debug`.
///
/// Only the method and the path are logged: never headers (they carry the token) nor the
/// query string.
pub(crate) async fn log_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    if let Some(failure) = response.extensions().get::<Failure>() {
        let status = response.status().as_u16();
        if response.status().is_server_error() {
            tracing::error!(%method, %path, status, code = failure.code, error = %failure.description, "request failed");
        } else {
            tracing::debug!(%method, %path, status, code = failure.code, error = %failure.description, "request rejected");
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_statuses() {
        let cases = [
            (EngineError::NotFound("instance x".into()), 404, "not_found"),
            (
                EngineError::Invalid {
                    message: "bad".into(),
                    details: Vec::new(),
                },
                422,
                "invalid",
            ),
            (EngineError::Conflict("done".into()), 409, "conflict"),
            (EngineError::Unavailable("db".into()), 503, "unavailable"),
            (EngineError::Internal("boom".into()), 500, "internal"),
        ];
        for (error, status, code) in cases {
            let api = ApiError::from(error);
            assert_eq!(api.status().as_u16(), status);
            assert_eq!(api.code(), code);
        }
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let api = ApiError::from(EngineError::Internal(
            "SELECT * FROM instance failed".into(),
        ));
        assert!(!api.message().contains("SELECT"));
        let unavailable = ApiError::from(EngineError::Unavailable("pool timed out".into()));
        assert!(!unavailable.message().contains("pool"));
    }

    #[test]
    fn unavailable_says_when_to_retry() {
        let response = ApiError::unavailable("database down").into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from_static(RETRY_AFTER_SECONDS))
        );
        let response = ApiError::conflict("done").into_response();
        assert_eq!(response.headers().get(header::RETRY_AFTER), None);
    }
}
