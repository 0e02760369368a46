//! `POST /api/v1/events/{source}`: inbound webhooks that start or signal instances.
//!
//! This route is not behind the bearer token. It is authenticated by the header
//! `X-Gridflow-Signature: sha256=<hex HMAC-SHA256 of the raw body>`, keyed with the
//! source's secret and compared in constant time. A missing or malformed header, a wrong
//! signature and a source without a configured secret all answer 401 with the same
//! message, and nothing starts: unsigned events are never accepted.
//!
//! Secrets come from the environment for now: `GRIDFLOW_EVENT_SECRET_<SOURCE>`, the source
//! uppercased with `-` written `_` (source `trading_grid` reads
//! `GRIDFLOW_EVENT_SECRET_TRADING_GRID`). They are read once at start-up and never logged.
//!
//! Systems that cannot sign their webhooks authenticate with the same secret sent as is,
//! the way they can: iconik sends custom headers with each webhook, so it sends
//! `X-Gridflow-Token: <secret>`; Canto puts the webhook's "Secure Token" in the body as
//! `secure_token` \[V\], which is removed from the event before anything sees it, so the
//! secret never reaches a trigger's input or the history.
//!
//! The event is named `<source>.<type>`: `type` is the query parameter `?type=` when
//! given (Canto's body names no event, so each Canto webhook URL carries its own, as in
//! `/api/v1/events/canto?type=version_added`), else the body's string field `type`. The
//! whole body (a JSON object) is `event` in the triggers' `input` templates.
//! The answer is 202 `{event, started: [instance ids], signalled: [instance ids]}`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2_hmac::Sha256;

use crate::api::AppState;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};

/// The header that carries the body's signature.
pub const SIGNATURE_HEADER: &str = "x-gridflow-signature";

/// The header that carries the source's secret as is, for systems that send custom
/// headers but cannot sign (iconik).
pub const TOKEN_HEADER: &str = "x-gridflow-token";

/// The body field in which Canto sends a webhook's Secure Token \[V\].
pub const SECURE_TOKEN_FIELD: &str = "secure_token";

/// The prefix of the environment variables that hold the sources' secrets.
pub const SECRET_VARIABLE_PREFIX: &str = "GRIDFLOW_EVENT_SECRET_";

/// The one message of every authentication failure, so that a caller cannot tell an
/// unknown source from a wrong signature.
const UNAUTHENTICATED: &str = "missing or invalid event signature (send X-Gridflow-Signature: sha256=<hex HMAC-SHA256 of the body>, or the source's secret as X-Gridflow-Token or as the body's secure_token)";

/// The webhook secret of each event source. Cheap to clone; never printed.
#[derive(Clone, Default)]
pub struct EventSecrets {
    /// By source key: the source uppercased, `-` as `_`.
    secrets: Arc<HashMap<String, Vec<u8>>>,
}

impl fmt::Debug for EventSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sources: Vec<&String> = self.secrets.keys().collect();
        sources.sort();
        f.debug_struct("EventSecrets")
            .field("sources", &sources)
            .finish_non_exhaustive()
    }
}

impl EventSecrets {
    /// Secrets given as `(source, secret)` pairs. Empty secrets are left out.
    pub fn new<S: AsRef<str>, K: AsRef<[u8]>>(pairs: impl IntoIterator<Item = (S, K)>) -> Self {
        let secrets = pairs
            .into_iter()
            .filter(|(_, secret)| !secret.as_ref().is_empty())
            .map(|(source, secret)| (source_key(source.as_ref()), secret.as_ref().to_vec()))
            .collect();
        Self {
            secrets: Arc::new(secrets),
        }
    }

    /// Secrets from the variables `GRIDFLOW_EVENT_SECRET_<SOURCE>` of the environment.
    pub fn from_env() -> Self {
        Self::new(std::env::vars_os().filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            let source = name.strip_prefix(SECRET_VARIABLE_PREFIX)?.to_owned();
            Some((source, value.into_encoded_bytes()))
        }))
    }

    /// These secrets plus `secret` for `source`, unless `source` has one already.
    pub fn with_default(&self, source: &str, secret: &[u8]) -> Self {
        let mut secrets = (*self.secrets).clone();
        if !secret.is_empty() {
            secrets
                .entry(source_key(source))
                .or_insert_with(|| secret.to_vec());
        }
        Self {
            secrets: Arc::new(secrets),
        }
    }

    /// The secret of `source`, if one is configured.
    pub fn secret(&self, source: &str) -> Option<&[u8]> {
        self.secrets.get(&source_key(source)).map(Vec::as_slice)
    }

    /// How many sources have a secret.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Whether no source has a secret.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

fn source_key(source: &str) -> String {
    source.to_ascii_uppercase().replace('-', "_")
}

/// `sha256=<hex>` of `body` under `secret`: the header value a sender puts in
/// [`SIGNATURE_HEADER`].
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is a valid signature of `body` under `secret` (constant-time).
fn signature_matches(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_digest) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(digest) = hex::decode(hex_digest) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&digest).is_ok()
}

/// The part of the body the event's name comes from.
#[derive(Debug, Deserialize)]
struct EventHead {
    #[serde(rename = "type")]
    event_type: Value,
}

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
}

/// `POST /api/v1/events/{source}`.
#[utoipa::path(
    post,
    path = "/events/{source}",
    tag = "events",
    params(
        ("source" = String, Path, description = "The event source (letters, digits, _ and -)"),
        ("type" = Option<String>, Query, description = "The event type, for bodies without a `type` field (Canto)"),
        ("X-Gridflow-Signature" = Option<String>, Header, description = "`sha256=<hex HMAC-SHA256 of the raw body with the source's secret>`"),
        ("X-Gridflow-Token" = Option<String>, Header, description = "The source's secret as is, for systems that cannot sign (iconik custom headers); Canto sends it as the body's `secure_token`"),
    ),
    request_body(content = Object, description = "The event: a JSON object whose `type` names it (`<source>.<type>`)"),
    responses(
        (status = 202, description = "Accepted: the instances started and signalled", body = Object),
        (status = 400, description = "The body is not a JSON object, or the event has no type", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing or wrong signature, or a source without a secret", body = crate::openapi::ErrorBody),
        (status = 422, description = "A mapped input violates its definition's input schema", body = crate::openapi::ErrorBody),
    ),
    security(())
)]
pub(crate) async fn receive(
    State(state): State<AppState>,
    ApiPath(source): ApiPath<String>,
    ApiQuery(query): ApiQuery<EventQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(secret) = state.event_secrets.secret(&source) else {
        tracing::debug!(%source, "event from a source without a secret refused");
        return Err(ApiError::unauthorized(UNAUTHENTICATED));
    };
    let signed = headers
        .get(SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|header| signature_matches(secret, &body, header));
    let token_sent = headers
        .get(TOKEN_HEADER)
        .is_some_and(|value| crate::auth::secret_matches(value.as_bytes(), secret));
    // Parsed before it is authenticated only to find Canto's secure token in it; nothing
    // else is read until the secret matches.
    let mut event: Option<Value> = serde_json::from_slice(&body).ok();
    let secure_token = event
        .as_mut()
        .and_then(Value::as_object_mut)
        .and_then(|fields| fields.remove(SECURE_TOKEN_FIELD));
    let token_in_body = secure_token
        .as_ref()
        .and_then(Value::as_str)
        .is_some_and(|token| crate::auth::secret_matches(token.as_bytes(), secret));
    if !(signed || token_sent || token_in_body) {
        tracing::debug!(%source, "event with a missing or wrong signature refused");
        return Err(ApiError::unauthorized(UNAUTHENTICATED));
    }
    if !source
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ApiError::bad_parameter(
            "source",
            format!("event source {source:?} may only hold letters, digits, _ and -"),
        ));
    }
    let event = match event {
        Some(event @ Value::Object(_)) => event,
        Some(_) => return Err(ApiError::bad_request("event body must be a JSON object")),
        None => {
            let error = serde_json::from_slice::<Value>(&body)
                .err()
                .map(|error| error.to_string())
                .unwrap_or_default();
            return Err(ApiError::bad_request(format!(
                "event body is not JSON: {error}"
            )));
        }
    };
    let event_type = match (
        query.event_type,
        serde_json::from_value::<EventHead>(event.clone()),
    ) {
        (Some(event_type), _) if !event_type.is_empty() => event_type,
        (
            None,
            Ok(EventHead {
                event_type: Value::String(event_type),
            }),
        ) if !event_type.is_empty() => event_type,
        _ => {
            return Err(ApiError::bad_request(
                "the event needs a type: a non-empty query parameter ?type= or a non-empty string field \"type\" in the body",
            ));
        }
    };
    if !event_type
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err(ApiError::bad_parameter(
            "type",
            format!("event type {event_type:?} may only hold letters, digits, _, - and ."),
        ));
    }
    let name = format!("{source}.{event_type}");
    let outcome = state
        .engine
        .deliver_event(&name, &event, &format!("event:{source}"))
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(EventResponse {
            event: name,
            started: outcome.started.iter().map(ToString::to_string).collect(),
            signalled: outcome.signalled.iter().map(ToString::to_string).collect(),
        }),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn only_the_right_signature_matches() {
        let header = signature(b"secret", b"{}");
        assert!(signature_matches(b"secret", b"{}", &header));
        assert!(!signature_matches(b"other", b"{}", &header));
        assert!(!signature_matches(b"secret", b"{ }", &header));
        assert!(!signature_matches(
            b"secret",
            b"{}",
            header.trim_start_matches("sha256=")
        ));
        assert!(!signature_matches(b"secret", b"{}", "sha256=zz"));
        assert!(!signature_matches(b"secret", b"{}", ""));
    }

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
