//! HTTP plumbing shared by every connector that speaks to a system over reqwest: the
//! client's defaults, credentials that never print, and the translation of a response
//! into an output or a classified [`Error`].
//!
//! Rules every HTTP connector follows:
//! - one [`reqwest::Client`] per connector, built with [`client_builder`];
//! - credentials live in [`Secret`]s and go out as headers marked sensitive
//!   ([`sensitive_header_value`]);
//! - a response that is not a success becomes an [`Error`] through [`error_for_response`],
//!   whose message is truncated and scrubbed of every secret by a [`Redactor`];
//! - URLs, headers and bodies are not logged; a tracing event may name the host and the
//!   status.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

use crate::connector::{Error, Result};

/// How long a connection may take to open before the attempt fails as `unavailable`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest system message kept in an [`Error`], in characters.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 1024;

/// Written in place of a secret.
pub const REDACTED: &str = "[redacted]";

/// The defaults of every connector's client: rustls, a `gridflow/<version>` user agent
/// and [`CONNECT_TIMEOUT`].
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("gridflow/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
}

/// Builds a client with [`client_builder`]'s defaults.
///
/// Fails (permanently, code `http_client`) only when the TLS backend cannot be set up.
pub fn build_client() -> Result<reqwest::Client> {
    client_builder()
        .build()
        .map_err(|error| Error::permanent("http_client", describe_build_error(&error)))
}

fn describe_build_error(error: &reqwest::Error) -> String {
    let mut message = String::from("could not build the http client");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// A credential (token, password, client secret) that never shows in `Debug` or
/// `Display` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The credential itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

/// Whether a header's value is a credential, judged by its name (case-insensitive):
/// names containing `authorization`, `token`, `secret`, `password`, `cookie`, `api-key`
/// or `apikey` (`Authorization`, `Auth-Token`, `X-Api-Key`, `Set-Cookie`).
pub fn is_sensitive_header(name: &str) -> bool {
    const MARKERS: [&str; 7] = [
        "authorization",
        "token",
        "secret",
        "password",
        "cookie",
        "api-key",
        "apikey",
    ];
    let name = name.to_ascii_lowercase();
    MARKERS.iter().any(|marker| name.contains(marker))
}

/// A header value marked sensitive, so that reqwest and hyper leave it out of their
/// debug output.
pub fn sensitive_header_value(secret: &Secret) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(secret.expose()).map_err(|_| {
        Error::permanent(
            "invalid_configuration",
            "credential is not a valid header value",
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// The `Retry-After` hint of a response, when it is a number of seconds.
///
/// The HTTP-date form is ignored: reading it would need the wall clock, and the core
/// falls back to the step's own backoff.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Replaces known secret values in text that came back from a system, which may echo
/// the request (a 401 page quoting the `Authorization` header).
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor that knows no secret yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a secret to scrub. Values shorter than four characters are ignored: scrubbing
    /// them would mangle ordinary text, and they are no credential worth the name.
    pub fn add(&mut self, secret: &str) {
        let secret = secret.trim();
        if secret.chars().count() >= 4 && !self.secrets.iter().any(|known| known == secret) {
            self.secrets.push(secret.to_owned());
            // Longer secrets first, so that one containing another is scrubbed whole.
            self.secrets
                .sort_by_key(|known| std::cmp::Reverse(known.len()));
        }
    }

    /// Adds every value whose header name [`is_sensitive_header`], and the credential part
    /// of `Bearer <token>` and `Basic <credentials>` values.
    pub fn add_headers(&mut self, headers: &HeaderMap) {
        for (name, value) in headers {
            if !is_sensitive_header(name.as_str()) {
                continue;
            }
            let value = String::from_utf8_lossy(value.as_bytes());
            self.add(&value);
            if let Some((_scheme, credential)) = value.split_once(' ') {
                self.add(credential);
            }
        }
    }

    /// `text` with every known secret replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_owned(), |text, secret| {
            text.replace(secret, REDACTED)
        })
    }

    /// `error` with every known secret scrubbed from its message; its class, code and
    /// retry-after hint stay as they are. Every connector reports errors through this.
    pub fn redact_error(&self, error: Error) -> Error {
        error.map_message(|message| self.redact(&message))
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

/// `text` cut to at most `max_chars` characters, with `…` appended when cut.
pub fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Reads a response body, failing permanently (`response_too_large`) beyond `max_bytes`.
pub async fn read_body(response: &mut reqwest::Response, max_bytes: usize) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| Error::from_reqwest(&error))?
    {
        if body.len() + chunk.len() > max_bytes {
            return Err(Error::permanent(
                "response_too_large",
                format!("response body exceeds {max_bytes} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Whether a `Content-Type` names JSON (`application/json`, `application/problem+json`).
pub fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Turns a response that is not a success into an [`Error`] classified by
/// [`Error::from_status`], honouring `Retry-After` (seconds) and carrying the response
/// text, truncated to [`MAX_ERROR_MESSAGE_CHARS`] and scrubbed by `redactor`.
pub async fn error_for_response(mut response: reqwest::Response, redactor: &Redactor) -> Error {
    let status = response.status();
    let retry_after = retry_after(response.headers());
    // Read a little more than is kept: the message is cut anyway, and a huge error page
    // must not be buffered whole.
    let limit = MAX_ERROR_MESSAGE_CHARS * 4;
    let mut bytes = Vec::new();
    // A body that breaks off still leaves what arrived, and the status says enough.
    while let Ok(Some(chunk)) = response.chunk().await {
        bytes.extend_from_slice(&chunk);
        if bytes.len() >= limit {
            bytes.truncate(limit);
            break;
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let text = redactor.redact(text.trim());
    let message = if text.is_empty() {
        format!(
            "http status {}",
            status.canonical_reason().map_or_else(
                || status.as_str().to_owned(),
                |reason| format!("{} {reason}", status.as_str())
            )
        )
    } else {
        truncate(&text, MAX_ERROR_MESSAGE_CHARS)
    };
    Error::from_status(status.as_u16(), retry_after, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_headers_are_recognised_by_name() {
        for name in [
            "Authorization",
            "proxy-authorization",
            "Auth-Token",
            "X-Client-Secret",
            "X-API-Key",
            "Cookie",
        ] {
            assert!(is_sensitive_header(name), "{name}");
        }
        for name in ["Content-Type", "Idempotency-Key", "Accept", "X-Request-Id"] {
            assert!(!is_sensitive_header(name), "{name}");
        }
    }

    #[test]
    fn secret_never_prints() {
        let secret = Secret::new("hunter2-token");
        assert_eq!(format!("{secret} {secret:?}"), "[redacted] [redacted]");
        assert_eq!(secret.expose(), "hunter2-token");
    }

    #[test]
    fn redactor_scrubs_header_values_and_bearer_tokens() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_static("Bearer abc123xyz"),
        );
        headers.insert("accept", HeaderValue::from_static("application/json"));
        let mut redactor = Redactor::new();
        redactor.add_headers(&headers);
        assert_eq!(
            redactor.redact("got 'Bearer abc123xyz' and token abc123xyz for application/json"),
            "got '[redacted]' and token [redacted] for application/json"
        );
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("héllo", 5), "héllo");
        assert_eq!(truncate("", 0), "");
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static(" 12 "));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(12)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2026 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn json_content_types_are_recognised() {
        let mut headers = HeaderMap::new();
        for (content_type, json) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/problem+json", true),
            ("text/plain", false),
            ("text/json+html", false),
        ] {
            headers.insert(
                reqwest::header::CONTENT_TYPE,
                HeaderValue::from_static(content_type),
            );
            assert_eq!(is_json_content_type(&headers), json, "{content_type}");
        }
    }
}
