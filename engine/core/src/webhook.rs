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
//! A source configured with `signature_header` (systems that sign in their own way: the
//! Trading Grid hub's `X-Hub-Signature`, VIP's `X-Signature`) may instead send
//! `<header>: sha256=<hex HMAC-SHA256 of the raw body>` under its secret: no timestamp,
//! so the event id (the body's `event_id_field`, `id` by default) is required and is what
//! stops a replay; the body's `event_type_field` (`type` by default) names the event, and
//! `?type=` is refused. Such a request is [`Authentication::SourceSignature`]; the
//! receiver may read its body in the system's own format.
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
    /// The body field holding an unsigned event's id, if any; with `signature_header`, the
    /// field holding the event id (`id` when `None`).
    pub event_id_field: Option<&'a str>,
    /// The header (lower case) in which the source signs the raw body in its own way
    /// (`x-hub-signature`); `None`: only the gridflow signature and plain secrets.
    pub signature_header: Option<&'a str>,
    /// With `signature_header`, the body field naming the event (`type` when `None`).
    pub event_type_field: Option<&'a str>,
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
    /// By the source's own signature of the raw body (`signature_header`).
    SourceSignature,
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
    let source_header = settings
        .signature_header
        .filter(|name| headers.get(name).is_some());
    let authentication = if let Some(name) = source_header {
        check_body_signature(headers, name, body, secret)?;
        Authentication::SourceSignature
    } else if headers.get(SIGNATURE_HEADER).is_some() {
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
        Authentication::SourceSignature => {
            if query_type.is_some() {
                return Err(malformed(
                    Some("type"),
                    "a signed event is named by its body; the query parameter type is not covered by the signature and is refused",
                ));
            }
            let field = settings.event_type_field.unwrap_or("type");
            match event.get(field) {
                Some(Value::String(event_type)) if !event_type.is_empty() => event_type.clone(),
                _ => {
                    return Err(malformed(
                        None,
                        format!(
                            "the event needs a type: a non-empty string field {field:?} in the body"
                        ),
                    ));
                }
            }
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

/// `sha256=<hex HMAC-SHA256 of body>` under `secret`: the value a source that signs the raw
/// body (the hub's `X-Hub-Signature`, VIP's `X-Signature`) puts in its header.
pub fn body_signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks `<header>: sha256=<hex HMAC-SHA256 of body>` under `secret`.
fn check_body_signature(
    headers: &dyn Headers,
    header: &str,
    body: &[u8],
    secret: &[u8],
) -> Result<(), Refusal> {
    let unauthenticated = || {
        Refusal::Unauthenticated(format!(
            "missing or invalid event signature (send {header}: sha256=<hex HMAC-SHA256 of the body> with the source's secret)"
        ))
    };
    let digest = headers
        .get(header)
        .and_then(visible)
        .and_then(|value| value.trim().strip_prefix("sha256="))
        .and_then(|hex_digest| hex::decode(hex_digest).ok())
        .ok_or_else(unauthenticated)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| unauthenticated())?;
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&digest).map_err(|_| unauthenticated())
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
    // A source's own signature covers the body only: an id in a header could be changed
    // to replay a captured body.
    let header = match authentication {
        Authentication::SourceSignature => None,
        Authentication::Signature | Authentication::PlainSecret => headers.get(EVENT_ID_HEADER),
    };
    let from_header = match header {
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
        Authentication::SourceSignature => Some(settings.event_id_field.unwrap_or("id")),
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
        (None, Authentication::SourceSignature) => Err(malformed(
            None,
            format!(
                "an event signed by the source needs an id: a string field {:?} in the body",
                settings.event_id_field.unwrap_or("id")
            ),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Headers as `(lower-case name, value)` pairs.
    struct Pairs(Vec<(&'static str, String)>);

    impl Headers for Pairs {
        fn get(&self, name: &str) -> Option<&[u8]> {
            self.0
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.as_bytes())
        }
    }

    const SECRET: &[u8] = b"hub-secret";
    const NOW: i64 = 1_796_634_000;

    fn hub<'a>() -> SourceSettings<'a> {
        SourceSettings {
            signature_header: Some("x-hub-signature"),
            event_id_field: Some("event_id"),
            event_type_field: Some("event"),
            ..SourceSettings::default()
        }
    }

    fn hub_body() -> &'static [u8] {
        br#"{"event_id":"evt-000007","event":"document.downloaded","occurred_at":"2026-12-07T09:00:00Z","data":{"post_id":"post-1"}}"#
    }

    fn signed(body: &[u8], secret: &[u8]) -> Pairs {
        Pairs(vec![("x-hub-signature", body_signature(secret, body))])
    }

    #[test]
    fn body_signature_is_hmac_sha256_of_the_raw_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            body_signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn source_signature_authenticates_and_reads_the_configured_fields() {
        let body = hub_body();
        let verified = verify(&hub(), &signed(body, SECRET), None, body, SECRET, NOW).unwrap();
        assert_eq!(verified.authentication, Authentication::SourceSignature);
        assert_eq!(verified.event_type, "document.downloaded");
        assert_eq!(verified.event_id.as_deref(), Some("evt-000007"));
        assert_eq!(verified.event["data"]["post_id"], "post-1");
        // No timestamp: the same body verifies whenever it comes; its id stops the replay.
        assert!(
            verify(
                &hub(),
                &signed(body, SECRET),
                None,
                body,
                SECRET,
                NOW + 86_400
            )
            .is_ok()
        );
    }

    #[test]
    fn wrong_or_missing_source_signature_is_unauthenticated() {
        let body = hub_body();
        for headers in [
            signed(body, b"another-secret"),
            Pairs(vec![("x-hub-signature", "sha256=00ff".to_owned())]),
            Pairs(vec![("x-hub-signature", "md5=abc".to_owned())]),
            Pairs(vec![]),
        ] {
            let refusal = verify(&hub(), &headers, None, body, SECRET, NOW).unwrap_err();
            assert!(
                matches!(refusal, Refusal::Unauthenticated(_)),
                "{refusal:?}"
            );
        }
        let tampered = br#"{"event_id":"evt-000008","event":"document.downloaded","occurred_at":"2026-12-07T09:00:00Z","data":{"post_id":"post-1"}}"#;
        let refusal =
            verify(&hub(), &signed(body, SECRET), None, tampered, SECRET, NOW).unwrap_err();
        assert!(
            matches!(refusal, Refusal::Unauthenticated(_)),
            "{refusal:?}"
        );
    }

    #[test]
    fn source_signature_needs_an_id_in_the_body_and_ignores_header_ids() {
        let body = br#"{"event":"post.withdrawn","data":{}}"#;
        let mut headers = signed(body, SECRET);
        headers
            .0
            .push((EVENT_ID_HEADER, "chosen-by-the-sender".to_owned()));
        let refusal = verify(&hub(), &headers, None, body, SECRET, NOW).unwrap_err();
        assert!(
            matches!(&refusal, Refusal::Malformed { message, .. } if message.contains("\"event_id\"")),
            "{refusal:?}"
        );
        let body = hub_body();
        let mut headers = signed(body, SECRET);
        headers
            .0
            .push((EVENT_ID_HEADER, "chosen-by-the-sender".to_owned()));
        let verified = verify(&hub(), &headers, None, body, SECRET, NOW).unwrap();
        assert_eq!(verified.event_id.as_deref(), Some("evt-000007"));
    }

    #[test]
    fn source_signature_refuses_a_query_type_and_defaults_to_id_and_type() {
        let body = hub_body();
        let refusal = verify(
            &hub(),
            &signed(body, SECRET),
            Some("other"),
            body,
            SECRET,
            NOW,
        )
        .unwrap_err();
        assert!(matches!(
            refusal,
            Refusal::Malformed {
                parameter: Some("type"),
                ..
            }
        ));
        let vip = SourceSettings {
            signature_header: Some("x-signature"),
            ..SourceSettings::default()
        };
        let body = br#"{"id":"whk-1","type":"delivery.downloaded","data":{}}"#;
        let headers = Pairs(vec![("x-signature", body_signature(SECRET, body))]);
        let verified = verify(&vip, &headers, None, body, SECRET, NOW).unwrap();
        assert_eq!(
            (verified.event_type.as_str(), verified.event_id.as_deref()),
            ("delivery.downloaded", Some("whk-1"))
        );
    }

    #[test]
    fn source_signature_header_is_ignored_where_not_configured() {
        let body = hub_body();
        let refusal = verify(
            &SourceSettings::default(),
            &signed(body, SECRET),
            None,
            body,
            SECRET,
            NOW,
        )
        .unwrap_err();
        assert_eq!(refusal, Refusal::Unauthenticated(BAD_SIGNATURE.to_owned()));
    }
}
