//! Webhook verification: one pure function, [`verify`], from a request's headers (through
//! [`Headers`]) and body, the source's secret and settings, and the time to the
//! authenticated event or the reason it is refused. It does no IO and reads no clock, so
//! the server (through its HTTP adapter), tests and the fuzz target call it directly.
//!
//! A signed webhook (DESIGN.md §5) carries `X-Gridflow-Timestamp: <unix seconds>` and
//! `X-Gridflow-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` under the
//! source's secret, as Stripe and Slack sign theirs. The timestamp must be within
//! [`TOLERANCE_SECONDS`] of `now` either way, so a captured request cannot be replayed
//! later; within the window the event id (`X-Gridflow-Event-Id`, else the body's `id`)
//! is what stops a replay, and a signed event must have one. The body's `type` names
//! the event; `?type=` is refused on a signed request, since the signature does not
//! cover the query.
//!
//! A source configured with `plain_secret` (systems that cannot sign: iconik, Canto) may
//! instead send its secret as is, in `X-Gridflow-Token` or in the body's `secure_token`,
//! and name the event in `?type=`. Every other source is refused these modes.
//!
//! Nothing of the body is parsed before the request is authenticated, except for a source
//! whose secret is in the body (`plain_secret = "body"`): its body is parsed to find the
//! secret, and nothing else is read from it until the secret matches.

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2_hmac::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A request's headers as the verifier reads them: the raw value of the header `name`
/// (lower case), if present.
pub trait Headers {
    /// The value of the header `name`, given in lower case.
    fn get(&self, name: &str) -> Option<&[u8]>;
}

/// Where a source that cannot sign sends its plain secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainSecret {
    /// In the header `X-Gridflow-Token`.
    Header,
    /// In the body's string field `secure_token` (Canto's "Secure Token").
    Body,
}

/// A source's webhook settings (`[webhooks.sources.<source>]` in `gridflow.toml`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceSettings<'a> {
    /// Where the source sends its plain secret; `None`: it must sign.
    pub plain_secret: Option<PlainSecret>,
    /// The body field holding an unsigned event's id, if any.
    pub event_id_field: Option<&'a str>,
}

/// `presented == expected`, in time independent of where they differ (both are hashed
/// first, so not even the length leaks).
pub fn secret_matches(presented: &[u8], expected: &[u8]) -> bool {
    Sha256::digest(presented)
        .ct_eq(&Sha256::digest(expected))
        .into()
}

/// The header's value if it is visible ASCII (or tab), as HTTP's `to_str` requires.
fn visible(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|&byte| byte == b'\t' || (32..127).contains(&byte))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

/// The header that carries the signing time, in seconds since the Unix epoch.
pub const TIMESTAMP_HEADER: &str = "x-gridflow-timestamp";

/// The header that carries `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub const SIGNATURE_HEADER: &str = "x-gridflow-signature";

/// The header that carries the event's id.
pub const EVENT_ID_HEADER: &str = "x-gridflow-event-id";

/// The header that carries the source's secret as is (sources with
/// `plain_secret = "header"`).
pub const TOKEN_HEADER: &str = "x-gridflow-token";

/// The body field that carries the source's secret as is (sources with
/// `plain_secret = "body"`, Canto's Secure Token).
pub const SECURE_TOKEN_FIELD: &str = "secure_token";

/// How far a signed webhook's timestamp may be from the receiver's clock: 5 minutes.
pub const TOLERANCE_SECONDS: i64 = 300;

/// The longest event id accepted.
pub const MAX_EVENT_ID_LENGTH: usize = 200;

/// An authenticated webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedEvent {
    /// The event type (`asset_changed`): the body's `type`, or `?type=` for a plain-secret
    /// request.
    pub event_type: String,
    /// The event's id; `None` only for a plain-secret request that names none.
    pub event_id: Option<String>,
    /// The body, a JSON object, without `secure_token`.
    pub event: Value,
    /// How the request was authenticated.
    pub authentication: Authentication,
}

/// How a webhook was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authentication {
    /// By its signature.
    Signature,
    /// By the source's plain secret.
    PlainSecret,
}

/// Why a webhook is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not authenticated (401): no or a wrong signature or secret, a timestamp outside the
    /// tolerance, a mode the source is not configured for.
    Unauthenticated(String),
    /// Authenticated but malformed (400); `parameter` names the query parameter or header
    /// at fault, if one is.
    Malformed {
        /// The parameter or header at fault.
        parameter: Option<&'static str>,
        /// What is wrong.
        message: String,
    },
}

impl Refusal {
    /// The message, for logs and the error body.
    pub fn message(&self) -> &str {
        match self {
            Self::Unauthenticated(message) | Self::Malformed { message, .. } => message,
        }
    }
}

/// The message of a missing or wrong signature, the same for a source without a secret,
/// so that a caller cannot tell an unknown source from a wrong signature.
pub const BAD_SIGNATURE: &str = "missing or invalid event signature (send X-Gridflow-Timestamp: <unix seconds> and X-Gridflow-Signature: sha256=<hex HMAC-SHA256 of \"<timestamp>.<body>\"> with the source's secret)";

/// Authenticates and reads a webhook of a source whose secret is `secret` and whose
/// settings are `settings` (the default for a source not in `gridflow.toml`), received at
/// `now` (Unix seconds). `query_type` is the request's `?type=`, if any.
pub fn verify(
    settings: &SourceSettings<'_>,
    headers: &dyn Headers,
    query_type: Option<&str>,
    body: &[u8],
    secret: &[u8],
    now: i64,
) -> Result<VerifiedEvent, Refusal> {
    let authentication = if headers.get(SIGNATURE_HEADER).is_some() {
        check_signature(headers, body, secret, now)?;
        Authentication::Signature
    } else {
        check_plain_secret(settings, headers, body, secret)?;
        Authentication::PlainSecret
    };
    // Authenticated: from here on the body may be read.
    let mut event = match serde_json::from_slice::<Value>(body) {
        Ok(event @ Value::Object(_)) => event,
        Ok(_) => return Err(malformed(None, "event body must be a JSON object")),
        Err(error) => return Err(malformed(None, format!("event body is not JSON: {error}"))),
    };
    if let Some(fields) = event.as_object_mut() {
        fields.remove(SECURE_TOKEN_FIELD);
    }
    let event_type = match authentication {
        Authentication::Signature => {
            if query_type.is_some() {
                return Err(malformed(
                    Some("type"),
                    "a signed event is named by its body's \"type\"; the query parameter type is not covered by the signature and is refused",
                ));
            }
            body_type(&event)?
        }
        Authentication::PlainSecret => match query_type {
            Some(event_type) if !event_type.is_empty() => event_type.to_owned(),
            Some(_) => return Err(malformed(Some("type"), "the query parameter type is empty")),
            None => body_type(&event)?,
        },
    };
    if !event_type
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err(malformed(
            Some("type"),
            format!("event type {event_type:?} may only hold letters, digits, _, - and ."),
        ));
    }
    let event_id = event_id(settings, authentication, headers, &event)?;
    Ok(VerifiedEvent {
        event_type,
        event_id,
        event,
        authentication,
    })
}

/// `sha256=<hex>` of `"<timestamp>.<body>"` under `secret`: the value a sender puts in
/// [`SIGNATURE_HEADER`], with `timestamp` in [`TIMESTAMP_HEADER`].
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn check_signature(
    headers: &dyn Headers,
    body: &[u8],
    secret: &[u8],
    now: i64,
) -> Result<(), Refusal> {
    let unauthenticated = || Refusal::Unauthenticated(BAD_SIGNATURE.to_owned());
    let Some(timestamp) = headers.get(TIMESTAMP_HEADER) else {
        return Err(Refusal::Unauthenticated(
            "a signed event needs X-Gridflow-Timestamp: <unix seconds>".to_owned(),
        ));
    };
    let timestamp = visible(timestamp)
        .filter(|text| !text.is_empty() && text.len() <= 12 && text.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(|| {
            Refusal::Unauthenticated(
                "X-Gridflow-Timestamp must be the signing time in whole seconds since the Unix epoch".to_owned(),
            )
        })?;
    // Checked before the signature so that an old captured request costs no HMAC; the
    // difference cannot overflow: both are within ±10^12.
    if (now.saturating_sub(timestamp)).abs() > TOLERANCE_SECONDS {
        return Err(Refusal::Unauthenticated(format!(
            "X-Gridflow-Timestamp {timestamp} is more than {TOLERANCE_SECONDS} seconds from the receiver's clock ({now}); sign each delivery when it is sent"
        )));
    }
    let header = headers
        .get(SIGNATURE_HEADER)
        .and_then(visible)
        .ok_or_else(unauthenticated)?;
    let digest = header
        .trim()
        .strip_prefix("sha256=")
        .and_then(|hex_digest| hex::decode(hex_digest).ok())
        .ok_or_else(unauthenticated)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| unauthenticated())?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&digest).map_err(|_| unauthenticated())
}

/// The part of a body that carries Canto's Secure Token; every other field is skipped
/// without being kept.
#[derive(Deserialize)]
struct BodyToken {
    secure_token: Option<String>,
}

fn check_plain_secret(
    settings: &SourceSettings<'_>,
    headers: &dyn Headers,
    body: &[u8],
    secret: &[u8],
) -> Result<(), Refusal> {
    let matches = match settings.plain_secret {
        None => {
            if headers.get(TOKEN_HEADER).is_some() {
                return Err(Refusal::Unauthenticated(format!(
                    "{BAD_SIGNATURE}; this source is not configured for a plain secret (webhooks.sources.<source>.plain_secret in gridflow.toml)"
                )));
            }
            return Err(Refusal::Unauthenticated(BAD_SIGNATURE.to_owned()));
        }
        Some(PlainSecret::Header) => headers
            .get(TOKEN_HEADER)
            .is_some_and(|value| secret_matches(value, secret)),
        Some(PlainSecret::Body) => serde_json::from_slice::<BodyToken>(body)
            .ok()
            .and_then(|token| token.secure_token)
            .is_some_and(|token| secret_matches(token.as_bytes(), secret)),
    };
    if matches {
        Ok(())
    } else {
        Err(Refusal::Unauthenticated(
            "missing or invalid event secret (send the source's secret as configured, or sign the event)".to_owned(),
        ))
    }
}

fn body_type(event: &Value) -> Result<String, Refusal> {
    match event.get("type") {
        Some(Value::String(event_type)) if !event_type.is_empty() => Ok(event_type.clone()),
        _ => Err(malformed(
            None,
            "the event needs a type: a non-empty string field \"type\" in the body",
        )),
    }
}

fn event_id(
    settings: &SourceSettings<'_>,
    authentication: Authentication,
    headers: &dyn Headers,
    event: &Value,
) -> Result<Option<String>, Refusal> {
    let from_header = match headers.get(EVENT_ID_HEADER) {
        Some(value) => Some(
            visible(value)
                .ok_or_else(|| {
                    malformed(
                        Some("X-Gridflow-Event-Id"),
                        "X-Gridflow-Event-Id must be visible ASCII",
                    )
                })?
                .to_owned(),
        ),
        None => None,
    };
    let field = match authentication {
        Authentication::Signature => Some("id"),
        Authentication::PlainSecret => settings.event_id_field,
    };
    let from_body = || match field.and_then(|field| event.get(field)) {
        Some(Value::String(id)) => Some(id.clone()),
        Some(Value::Number(id)) => Some(id.to_string()),
        _ => None,
    };
    let id = from_header.or_else(from_body);
    match (&id, authentication) {
        (None, Authentication::Signature) => Err(malformed(
            Some("X-Gridflow-Event-Id"),
            "a signed event needs an id: the header X-Gridflow-Event-Id or a string field \"id\" in the body",
        )),
        (Some(id), _) if id.is_empty() || id.len() > MAX_EVENT_ID_LENGTH => Err(malformed(
            Some("X-Gridflow-Event-Id"),
            format!("the event id must hold 1 to {MAX_EVENT_ID_LENGTH} characters"),
        )),
        _ => Ok(id),
    }
}

fn malformed(parameter: Option<&'static str>, message: impl Into<String>) -> Refusal {
    Refusal::Malformed {
        parameter,
        message: message.into(),
    }
}
