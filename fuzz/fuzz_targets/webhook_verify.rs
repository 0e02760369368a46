//! Webhook authentication and reading (`gridflow_core::webhook::verify`, which the server
//! calls with the request's headers): any headers, query
//! type and body, signed correctly or not, under each source mode. It must never panic,
//! an unsigned or wrongly signed request must never pass, and an accepted event must have
//! a valid type.
#![no_main]

use std::collections::BTreeMap;

use gridflow_core::webhook::{
    self, Authentication, EVENT_ID_HEADER, Headers, PlainSecret, SIGNATURE_HEADER,
    SourceSettings, TIMESTAMP_HEADER, TOKEN_HEADER,
};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-secret";
const NOW: i64 = 1_800_000_000;

/// Headers as a server receives them: HTTP refuses values with control characters
/// other than tab, so those never reach the verifier.
#[derive(Default)]
struct HeaderMap(BTreeMap<&'static str, Vec<u8>>);

impl Headers for HeaderMap {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.0.get(name).map(Vec::as_slice)
    }
}

fn header(headers: &mut HeaderMap, name: &'static str, value: &[u8]) {
    if value.iter().all(|&byte| byte == b'\t' || byte >= 32 && byte != 127) {
        headers.0.insert(name, value.to_vec());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    // Fields separated by 0xFF: timestamp, signature, event id, token, query type, body.
    let mut fields = rest.splitn(6, |byte| *byte == 0xFF);
    let mut next = || fields.next().unwrap_or_default();
    let (timestamp, signature, event_id, token, query_type, body) =
        (next(), next(), next(), next(), next(), next());
    let settings = SourceSettings {
        plain_secret: match control & 3 {
            1 => Some(PlainSecret::Header),
            2 => Some(PlainSecret::Body),
            _ => None,
        },
        event_id_field: (control & 4 != 0).then_some("request_id"),
        signature_header: None,
        event_type_field: None,
    };
    let sign = control & 8 != 0;
    let skew = i64::from(control >> 4) * 40 - 300;
    let mut headers = HeaderMap::default();
    let signed_at = NOW + skew;
    if sign {
        header(&mut headers, TIMESTAMP_HEADER, signed_at.to_string().as_bytes());
        let valid = webhook::signature(SECRET, signed_at, body);
        header(&mut headers, SIGNATURE_HEADER, valid.as_bytes());
    } else {
        if !timestamp.is_empty() {
            header(&mut headers, TIMESTAMP_HEADER, timestamp);
        }
        if !signature.is_empty() {
            header(&mut headers, SIGNATURE_HEADER, signature);
        }
    }
    if !event_id.is_empty() {
        header(&mut headers, EVENT_ID_HEADER, event_id);
    }
    if !token.is_empty() {
        header(&mut headers, TOKEN_HEADER, token);
    }
    let query_type = (control & 0x80 != 0).then(|| String::from_utf8_lossy(query_type));
    let verified = webhook::verify(
        &settings,
        &headers,
        query_type.as_deref(),
        body,
        SECRET,
        NOW,
    );
    if let Ok(event) = verified {
        // Accepted without our signature only through a configured plain secret that
        // matched, and never with a forged signature.
        match event.authentication {
            Authentication::Signature => assert!(sign, "a forged signature was accepted"),
            Authentication::PlainSecret => assert!(
                settings.plain_secret.is_some(),
                "a plain secret was accepted for a source not configured for it"
            ),
            Authentication::SourceSignature => {
                panic!("a source signature was accepted for a source not configured for it")
            }
        }
        assert!(
            !event.event_type.is_empty()
                && event
                    .event_type
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')),
            "accepted an invalid event type {:?}",
            event.event_type
        );
    }
});
