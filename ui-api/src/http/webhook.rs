//! Webhook verification over HTTP: the pure verifier is [`gridflow_core::webhook`] (the
//! signing scheme, the plain-secret modes and every refusal are documented there); this
//! module hands it a request's [`HeaderMap`] and a source's settings from `gridflow.toml`.

use axum::http::HeaderMap;
use gridflow_connectors::config::{PlainSecret as ConfiguredPlainSecret, SourceConfig};
pub use gridflow_core::webhook::{
    Authentication, BAD_SIGNATURE, EVENT_ID_HEADER, MAX_EVENT_ID_LENGTH, Refusal,
    SECURE_TOKEN_FIELD, SIGNATURE_HEADER, TIMESTAMP_HEADER, TOKEN_HEADER, TOLERANCE_SECONDS,
    VerifiedEvent, signature,
};
use gridflow_core::webhook::{Headers, PlainSecret, SourceSettings};

/// A [`HeaderMap`] as the verifier reads headers.
struct HttpHeaders<'a>(&'a HeaderMap);

impl Headers for HttpHeaders<'_> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.0.get(name).map(|value| value.as_bytes())
    }
}

/// Authenticates and reads a webhook of a source whose secret is `secret` and whose
/// settings are `settings` (the default for a source not in `gridflow.toml`), received at
/// `now` (Unix seconds). `query_type` is the request's `?type=`, if any.
pub fn verify(
    settings: &SourceConfig,
    headers: &HeaderMap,
    query_type: Option<&str>,
    body: &[u8],
    secret: &[u8],
    now: i64,
) -> Result<VerifiedEvent, Refusal> {
    let signature_header = settings
        .signature_header
        .as_deref()
        .map(str::to_ascii_lowercase);
    let settings = SourceSettings {
        plain_secret: settings.plain_secret.map(|mode| match mode {
            ConfiguredPlainSecret::Header => PlainSecret::Header,
            ConfiguredPlainSecret::Body => PlainSecret::Body,
        }),
        event_id_field: settings.event_id_field.as_deref(),
        signature_header: signature_header.as_deref(),
        event_type_field: settings.event_type_field.as_deref(),
    };
    gridflow_core::webhook::verify(
        &settings,
        &HttpHeaders(headers),
        query_type,
        body,
        secret,
        now,
    )
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use gridflow_connectors::config::PlainSecret;
    use hmac::{Hmac, KeyInit, Mac};
    use serde_json::json;
    use sha2_hmac::Sha256;

    use super::*;

    const NOW: i64 = 1_765_000_000;

    fn signed(secret: &[u8], timestamp: i64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(TIMESTAMP_HEADER, HeaderValue::from(timestamp));
        headers.insert(
            SIGNATURE_HEADER,
            HeaderValue::from_str(&signature(secret, timestamp, body)).unwrap(),
        );
        headers
    }

    fn plain(mode: PlainSecret) -> SourceConfig {
        SourceConfig {
            plain_secret: Some(mode),
            event_id_field: Some("request_id".to_owned()),
            ..SourceConfig::default()
        }
    }

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231, test case 2, with the message split as "<timestamp>.<body>".
        assert_eq!(signature(b"Jefe", 1, b"what do ya want for nothing?"), {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
            mac.update(b"1.what do ya want for nothing?");
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        });
    }

    #[test]
    fn valid_signed_event_is_read() {
        let body = br#"{"type":"request_created","id":"e1","n":1}"#;
        let verified = verify(
            &SourceConfig::default(),
            &signed(b"k", NOW, body),
            None,
            body,
            b"k",
            NOW,
        )
        .unwrap();
        assert_eq!(verified.event_type, "request_created");
        assert_eq!(verified.event_id.as_deref(), Some("e1"));
        assert_eq!(verified.event["n"], 1);
        assert_eq!(verified.authentication, Authentication::Signature);
    }

    #[test]
    fn wrong_key_body_or_timestamp_is_unauthenticated() {
        let body = br#"{"type":"t","id":"e1"}"#;
        let settings = SourceConfig::default();
        let refused = |headers: &HeaderMap, body: &[u8], now: i64| {
            matches!(
                verify(&settings, headers, None, body, b"k", now),
                Err(Refusal::Unauthenticated(_))
            )
        };
        assert!(refused(&signed(b"other", NOW, body), body, NOW));
        assert!(refused(
            &signed(b"k", NOW, body),
            br#"{"type":"u","id":"e1"}"#,
            NOW
        ));
        // The signature binds the timestamp: moving it breaks the signature.
        let mut moved = signed(b"k", NOW - 10, body);
        moved.insert(TIMESTAMP_HEADER, HeaderValue::from(NOW));
        assert!(refused(&moved, body, NOW));
        // Stale and future timestamps, just outside the tolerance; just inside is fine.
        assert!(refused(&signed(b"k", NOW - 301, body), body, NOW));
        assert!(refused(&signed(b"k", NOW + 301, body), body, NOW));
        assert!(!refused(&signed(b"k", NOW - 300, body), body, NOW));
        let mut no_timestamp = signed(b"k", NOW, body);
        no_timestamp.remove(TIMESTAMP_HEADER);
        assert!(refused(&no_timestamp, body, NOW));
    }

    #[test]
    fn unauthenticated_body_is_never_parsed() {
        // Not JSON at all: the refusal is about the signature, not the body.
        let refusal = verify(
            &SourceConfig::default(),
            &HeaderMap::new(),
            None,
            b"\xff{",
            b"k",
            NOW,
        );
        assert_eq!(
            refusal,
            Err(Refusal::Unauthenticated(BAD_SIGNATURE.to_owned()))
        );
    }

    #[test]
    fn query_type_is_refused_on_a_signed_event() {
        let body = br#"{"type":"t","id":"e1"}"#;
        let refusal = verify(
            &plain(PlainSecret::Header),
            &signed(b"k", NOW, body),
            Some("other"),
            body,
            b"k",
            NOW,
        );
        assert!(matches!(
            refusal,
            Err(Refusal::Malformed {
                parameter: Some("type"),
                ..
            })
        ));
    }

    #[test]
    fn plain_secret_only_for_configured_sources() {
        let body = br#"{"request_id":"r1","realm":"metadata"}"#;
        let mut headers = HeaderMap::new();
        headers.insert(TOKEN_HEADER, HeaderValue::from_static("k"));
        let verified = verify(
            &plain(PlainSecret::Header),
            &headers,
            Some("asset_changed"),
            body,
            b"k",
            NOW,
        )
        .unwrap();
        assert_eq!(verified.event_type, "asset_changed");
        assert_eq!(verified.event_id.as_deref(), Some("r1"));
        assert_eq!(verified.authentication, Authentication::PlainSecret);
        assert!(matches!(
            verify(
                &SourceConfig::default(),
                &headers,
                Some("asset_changed"),
                body,
                b"k",
                NOW
            ),
            Err(Refusal::Unauthenticated(_))
        ));
        // A header source does not take the secret from the body, nor the other way round.
        let in_body = br#"{"secure_token":"k","id":"c1"}"#;
        assert!(
            verify(
                &plain(PlainSecret::Header),
                &HeaderMap::new(),
                Some("t"),
                in_body,
                b"k",
                NOW
            )
            .is_err()
        );
        assert!(
            verify(
                &plain(PlainSecret::Body),
                &headers,
                Some("t"),
                body,
                b"k",
                NOW
            )
            .is_err()
        );
        let canto = SourceConfig {
            plain_secret: Some(PlainSecret::Body),
            event_id_field: None,
            ..SourceConfig::default()
        };
        let verified = verify(
            &canto,
            &HeaderMap::new(),
            Some("version_added"),
            in_body,
            b"k",
            NOW,
        )
        .unwrap();
        assert_eq!(verified.event, json!({"id": "c1"}));
        // Canto's `id` names the content, not the event.
        assert_eq!(verified.event_id, None);
        assert!(
            verify(
                &canto,
                &HeaderMap::new(),
                Some("t"),
                br#"{"secure_token":"x"}"#,
                b"k",
                NOW
            )
            .is_err()
        );
    }

    #[test]
    fn signed_event_needs_an_id_and_a_type() {
        let settings = SourceConfig::default();
        let no_id = br#"{"type":"t"}"#;
        assert!(matches!(
            verify(&settings, &signed(b"k", NOW, no_id), None, no_id, b"k", NOW),
            Err(Refusal::Malformed { .. })
        ));
        let mut with_header = signed(b"k", NOW, no_id);
        with_header.insert(EVENT_ID_HEADER, HeaderValue::from_static("h1"));
        assert_eq!(
            verify(&settings, &with_header, None, no_id, b"k", NOW)
                .unwrap()
                .event_id
                .as_deref(),
            Some("h1")
        );
        let no_type = br#"{"id":"e1"}"#;
        assert!(matches!(
            verify(
                &settings,
                &signed(b"k", NOW, no_type),
                None,
                no_type,
                b"k",
                NOW
            ),
            Err(Refusal::Malformed { .. })
        ));
        let array = b"[1]";
        assert!(matches!(
            verify(&settings, &signed(b"k", NOW, array), None, array, b"k", NOW),
            Err(Refusal::Malformed { .. })
        ));
    }
}
