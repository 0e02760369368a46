//! `POST /api/v1/events/{source}`: inbound webhooks that start or signal instances.
//!
//! This route is not behind the bearer token. It is authenticated by the source's secret,
//! by [`crate::http::webhook::verify`]: a signature over the timestamp and body, or (for sources
//! configured for it in `[webhooks.sources.<source>]` of `gridflow.toml`) the plain
//! secret. A source without a configured secret answers 401 with the same message as a
//! wrong signature, and nothing starts: unauthenticated events are never accepted. The
//! body is read up to `webhooks.max_body_bytes` (413 beyond) and not parsed before it is
//! authenticated.
//!
//! Secrets come from the environment: `GRIDFLOW_EVENT_SECRET_<SOURCE>`, the source
//! uppercased with `-` written `_` (source `trading_grid` reads
//! `GRIDFLOW_EVENT_SECRET_TRADING_GRID`). They are read once at start-up and never logged.
//!
//! The event is named `<source>.<type>`; the whole body (a JSON object, without Canto's
//! `secure_token`) is `event` in the triggers' `input` templates. A source configured
//! with `signature_header` (the hub's `X-Hub-Signature`, VIP's `X-Signature`) signs the
//! raw body without a timestamp; when its connector reads its own format
//! (`Connector::read_webhook`), the event's name, id and payload are the connector's, the
//! same as its change feed gives, and the one claim per event id makes a callback and a
//! poll of the same event a single delivery. An event with an id is
//! delivered once ([`gridflow_runtime::Engine::deliver_webhook`]): the first delivery
//! answers 202 `{event, started, signalled, duplicate: false}`, every replay 200 with
//! `duplicate: true` and nothing started or signalled.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::http::error::ApiError;
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::state::AppState;
use crate::http::webhook::{self, Refusal};

pub use crate::http::event_secrets::{EventSecrets, SECRET_VARIABLE_PREFIX};
pub use crate::http::webhook::{SECURE_TOKEN_FIELD, SIGNATURE_HEADER, TOKEN_HEADER, signature};

/// The query of `POST /events/{source}`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct EventQuery {
    /// The event type, for bodies that do not name it (Canto's).
    #[serde(rename = "type")]
    event_type: Option<String>,
}

/// The answer of `POST /events/{source}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventResponse {
    /// `<source>.<type>`.
    pub event: String,
    /// Instances started by event triggers.
    pub started: Vec<String>,
    /// Instances the event was delivered to as a signal.
    pub signalled: Vec<String>,
    /// The event id was delivered before: nothing was started or signalled now.
    #[serde(default)]
    pub duplicate: bool,
}

/// `POST /api/v1/events/{source}`.
#[utoipa::path(
    post,
    path = "/events/{source}",
    tag = "events",
    params(
        ("source" = String, Path, description = "The event source (letters, digits, _ and -)"),
        ("type" = Option<String>, Query, description = "The event type, only from sources configured with a plain secret (iconik, Canto) and only without a signature"),
        ("X-Gridflow-Timestamp" = Option<String>, Header, description = "The signing time, in seconds since the Unix epoch; refused more than 5 minutes away from the server's clock"),
        ("X-Gridflow-Signature" = Option<String>, Header, description = "`sha256=<hex HMAC-SHA256 of \"<timestamp>.<body>\" with the source's secret>`"),
        ("X-Gridflow-Event-Id" = Option<String>, Header, description = "The event's id (else the body's `id`); each id is delivered once"),
        ("X-Gridflow-Token" = Option<String>, Header, description = "The source's secret as is, only from sources configured with `plain_secret = \"header\"` (iconik); Canto sends it as the body's `secure_token`"),
        ("X-Hub-Signature" = Option<String>, Header, description = "`sha256=<hex HMAC-SHA256 of the body>`: a source's own signature, from sources configured with `signature_header` (the Trading Grid hub; VIP's is `X-Signature`)"),
    ),
    request_body(content = Object, description = "The event: a JSON object whose `type` names it (`<source>.<type>`)"),
    responses(
        (status = 200, description = "A replay of an event delivered before: nothing started or signalled", body = Object),
        (status = 202, description = "Accepted: the instances started and signalled", body = Object),
        (status = 400, description = "The body is not a JSON object, or the event has no type or id", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "Missing or wrong signature or secret, a stale timestamp, or a source without a secret", body = crate::http::openapi::ErrorBody),
        (status = 409, description = "Another copy of this event is being delivered now", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "The body is larger than `webhooks.max_body_bytes`", body = crate::http::openapi::ErrorBody),
        (status = 422, description = "A mapped input violates its definition's input schema", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "The event is larger than `limits.max_signal_bytes` (it would be delivered as a signal); nothing started", body = crate::http::openapi::ErrorBody),
    ),
    security(())
)]
pub(crate) async fn receive(
    State(state): State<AppState>,
    ApiPath(source): ApiPath<String>,
    ApiQuery(query): ApiQuery<EventQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let secrets = &state.event_secrets;
    let Some(secret) = secrets.secret(&source) else {
        tracing::debug!(%source, "event from a source without a secret refused");
        return Err(ApiError::unauthorized(webhook::BAD_SIGNATURE));
    };
    let limit = secrets.max_body_bytes();
    let too_large = || {
        ApiError::from_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("event body is larger than {limit} bytes (webhooks.max_body_bytes)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let body = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    let now = state.engine.now().timestamp();
    let settings = secrets.settings(&source);
    let verified = webhook::verify(
        &settings,
        &headers,
        query.event_type.as_deref(),
        &body,
        secret,
        now,
    )
    .map_err(|refusal| {
        tracing::debug!(%source, reason = refusal.message(), "event refused");
        match refusal {
            Refusal::Unauthenticated(message) => ApiError::unauthorized(message),
            Refusal::Malformed {
                parameter: Some(parameter),
                message,
            } => ApiError::bad_parameter(parameter, message),
            Refusal::Malformed {
                parameter: None,
                message,
            } => ApiError::bad_request(message),
        }
    })?;
    if !source
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ApiError::bad_parameter(
            "source",
            format!("event source {source:?} may only hold letters, digits, _ and -"),
        ));
    }
    let (event_type, event_id, payload) = read_event(&state, &source, verified)?;
    let name = format!("{source}.{event_type}");
    let actor = format!("event:{source}");
    let (outcome, duplicate) = match &event_id {
        Some(event_id) => {
            let delivered = state
                .engine
                .deliver_webhook(&source, event_id, &name, &payload, &actor)
                .await?;
            (delivered.outcome, delivered.duplicate)
        }
        // Only a plain-secret source without event ids (Canto): nothing to recognise a
        // copy by.
        None => (
            state.engine.deliver_event(&name, &payload, &actor).await?,
            false,
        ),
    };
    let status = if duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((
        status,
        Json(EventResponse {
            event: name,
            started: outcome.started.iter().map(ToString::to_string).collect(),
            signalled: outcome.signalled.iter().map(ToString::to_string).collect(),
            duplicate,
        }),
    )
        .into_response())
}

/// The event's type, id and payload: for a body signed by the source in its own way
/// (`signature_header`), as the source's connector reads its format
/// ([`gridflow_connectors::Connector::read_webhook`]: the same name, id and payload as its
/// change feed gives, so that a callback and a poll of one event are one delivery);
/// otherwise the body as it is.
fn read_event(
    state: &AppState,
    source: &str,
    verified: webhook::VerifiedEvent,
) -> Result<(String, Option<String>, serde_json::Value), ApiError> {
    if verified.authentication == webhook::Authentication::SourceSignature
        && let Some(connector) = state
            .engine
            .registry()
            .connectors()
            .find(|connector| connector.name() == source)
        && let Some(read) = connector.read_webhook(&verified.event)
    {
        let inbound = read.map_err(|error| {
            tracing::debug!(%source, %error, "signed event not in the source's format");
            ApiError::bad_request(format!("event of {source}: {}", error.message()))
        })?;
        return Ok((inbound.name, Some(inbound.id), inbound.payload));
    }
    Ok((verified.event_type, verified.event_id, verified.event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_found_by_source_and_never_printed() {
        let secrets = EventSecrets::new([("trading-grid", "s3cret"), ("empty", "")]);
        assert_eq!(secrets.secret("trading_grid"), Some(&b"s3cret"[..]));
        assert_eq!(secrets.secret("TRADING-GRID"), Some(&b"s3cret"[..]));
        assert_eq!(secrets.secret("empty"), None);
        assert_eq!(secrets.len(), 1);
        assert!(!format!("{secrets:?}").contains("s3cret"));
    }
}
