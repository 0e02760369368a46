//! [`Client`]: the HTTP client of the CLI's commands, one method per kind of call.
//!
//! Paths are built segment by segment, so ids are percent-encoded; the token is sent as a
//! sensitive header and never printed.

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{RequestBuilder, StatusCode, Url};
use serde_json::Value;

use crate::output;

/// What can go wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `--server` is not a usable base URL.
    #[error("invalid server url {url:?}: {message}")]
    BadServer {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The server could not be reached or did not answer in time.
    #[error("cannot reach the server at {url}: {source}")]
    Unreachable {
        /// The server.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error body.
    #[error("{code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Machine-readable code (`not_found`, `invalid`, …).
        code: String,
        /// Message.
        message: String,
        /// `(path, message)` of each problem.
        details: Vec<(String, String)>,
    },
    /// The server answered something that is not the API's JSON.
    #[error("unexpected answer from the server (HTTP {status}): {body}")]
    Unexpected {
        /// HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
}

/// Result with [`ClientError`].
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A client of one server's `/api/v1`, authenticated with one token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: String,
}

impl Client {
    /// A client of the server at `server` (such as `http://127.0.0.1:8080`).
    pub fn new(server: &str, token: String) -> Result<Self> {
        let bad = |message: &str| ClientError::BadServer {
            url: server.to_owned(),
            message: message.to_owned(),
        };
        let base = Url::parse(server).map_err(|error| bad(&error.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(bad("expected http://host:port or https://host:port"));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|error| ClientError::Unreachable {
                url: server.to_owned(),
                source: error,
            })?;
        Ok(Self { http, base, token })
    }

    /// `/api/v1/<segments…>` with `query`, each segment percent-encoded.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            // `new` checked that the base can have a path, so this branch always runs.
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// `GET`, answering the JSON body.
    pub async fn get(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Value> {
        let request = self.http.get(self.url(segments, query));
        Ok(self.send(request).await?.1)
    }

    /// `GET` of a streamed answer (an export): the response once its status is a success,
    /// for the caller to read chunk by chunk.
    pub async fn get_stream(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<reqwest::Response> {
        let unreachable = |source| ClientError::Unreachable {
            url: self.base.to_string(),
            source,
        };
        let response = self
            .http
            .get(self.url(segments, query))
            .bearer_auth(&self.token)
            // An export of a large database takes longer than the default timeout.
            .timeout(Duration::from_secs(24 * 3600))
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.map_err(unreachable)?;
        match serde_json::from_str::<Value>(&text) {
            Ok(body) if body.pointer("/error/code").is_some() => Err(api_error(status, &body)),
            _ => Err(ClientError::Unexpected {
                status: status.as_u16(),
                body: text.chars().take(500).collect(),
            }),
        }
    }

    /// `POST` of a JSON body, answering the JSON body.
    pub async fn post_json(&self, segments: &[&str], body: &Value) -> Result<Value> {
        let request = self.http.post(self.url(segments, &[])).json(body);
        Ok(self.send(request).await?.1)
    }

    /// `POST` of a JSON body with an `Idempotency-Key`: a connection failure or a 502, 503
    /// or 504 is retried with the same key (the server answers the first outcome again),
    /// a few times with growing pauses; anything else is the answer.
    pub async fn post_json_idempotent(
        &self,
        segments: &[&str],
        body: &Value,
        key: &str,
    ) -> Result<Value> {
        let mut pause = FIRST_RETRY_PAUSE;
        let mut attempt = 1;
        loop {
            let request = self
                .http
                .post(self.url(segments, &[]))
                .header(IDEMPOTENCY_KEY, key)
                .json(body);
            match self.send(request).await {
                Err(error) if attempt < IDEMPOTENT_ATTEMPTS && transient(&error) => {
                    output::error_line(format!(
                        "{error}; retrying in {} with the same idempotency key ({attempt} of {})",
                        humantime::format_duration(pause),
                        IDEMPOTENT_ATTEMPTS - 1
                    ));
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LAST_RETRY_PAUSE);
                    attempt += 1;
                }
                outcome => return outcome.map(|(_, body)| body),
            }
        }
    }

    /// `DELETE`, answering the JSON body.
    pub async fn delete(&self, segments: &[&str]) -> Result<Value> {
        let request = self.http.delete(self.url(segments, &[]));
        Ok(self.send(request).await?.1)
    }

    /// `POST` of raw text with its content type, answering the status and the JSON body.
    pub async fn post_text(
        &self,
        segments: &[&str],
        body: String,
        content_type: &'static str,
    ) -> Result<(StatusCode, Value)> {
        let request = self
            .http
            .post(self.url(segments, &[]))
            .header(CONTENT_TYPE, content_type)
            .body(body);
        self.send(request).await
    }

    async fn send(&self, request: RequestBuilder) -> Result<(StatusCode, Value)> {
        let unreachable = |source| ClientError::Unreachable {
            url: self.base.to_string(),
            source,
        };
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        let body: Option<Value> = serde_json::from_str(&text).ok();
        match body {
            Some(body) if status.is_success() => Ok((status, body)),
            Some(body) if body.pointer("/error/code").is_some() => Err(api_error(status, &body)),
            Some(_) | None => Err(ClientError::Unexpected {
                status: status.as_u16(),
                body: text.chars().take(500).collect(),
            }),
        }
    }
}

/// The header that makes a start safe to retry.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// How many times an idempotent call is sent at most.
const IDEMPOTENT_ATTEMPTS: u32 = 6;
/// The pause before the first retry; it doubles up to [`LAST_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(250);
const LAST_RETRY_PAUSE: Duration = Duration::from_secs(4);

/// Whether retrying the same call may succeed: the server could not be reached or
/// answered that it (or a proxy before it) is unavailable for now.
fn transient(error: &ClientError) -> bool {
    match error {
        ClientError::Unreachable { .. } => true,
        ClientError::Api { status, .. } | ClientError::Unexpected { status, .. } => {
            matches!(status, 502..=504)
        }
        ClientError::BadServer { .. } => false,
    }
}

fn api_error(status: StatusCode, body: &Value) -> ClientError {
    let text = |value: Option<&Value>| value.and_then(Value::as_str).unwrap_or_default().to_owned();
    let details = body
        .pointer("/error/details")
        .and_then(Value::as_array)
        .map(|details| {
            details
                .iter()
                .map(|detail| (text(detail.get("path")), text(detail.get("message"))))
                .collect()
        })
        .unwrap_or_default();
    ClientError::Api {
        status: status.as_u16(),
        code: text(body.pointer("/error/code")),
        message: text(body.pointer("/error/message")),
        details,
    }
}

/// Writes a failed call to stderr: the error body's code and message, then each detail,
/// every line prefixed with `prefix` (a file name) when given.
pub fn report(prefix: Option<&str>, error: &ClientError) {
    let lead = prefix
        .map(|prefix| format!("{prefix}: "))
        .unwrap_or_default();
    match error {
        ClientError::Api {
            code,
            message,
            details,
            ..
        } => {
            output::error_line(format!("{lead}error: {code}: {message}"));
            for (path, message) in details {
                if path.is_empty() {
                    output::error_line(format!("{lead}  {message}"));
                } else {
                    output::error_line(format!("{lead}  {path}: {message}"));
                }
            }
        }
        other => output::error_line(format!("{lead}error: {}", output::error_chain(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_segments_and_keep_a_base_path() {
        let client = Client::new("http://127.0.0.1:8080/", "t".into()).unwrap();
        assert_eq!(
            client
                .url(&["instances", "a/b c"], &[("status", "running")])
                .as_str(),
            "http://127.0.0.1:8080/api/v1/instances/a%2Fb%20c?status=running"
        );
        let proxied = Client::new("https://example.com/gridflow", "t".into()).unwrap();
        assert_eq!(
            proxied.url(&["definitions"], &[]).as_str(),
            "https://example.com/gridflow/api/v1/definitions"
        );
    }

    #[test]
    fn non_http_servers_are_refused() {
        for server in ["ftp://host", "mailto:a@b", "not a url"] {
            assert!(matches!(
                Client::new(server, "t".into()),
                Err(ClientError::BadServer { .. })
            ));
        }
    }

    #[test]
    fn error_bodies_are_decoded() {
        let body = serde_json::json!({"error": {"code": "invalid", "message": "2 problems found",
            "details": [{"path": "steps[0].needs[0]", "message": "unknown step"}]}});
        match api_error(StatusCode::UNPROCESSABLE_ENTITY, &body) {
            ClientError::Api {
                status,
                code,
                details,
                ..
            } => {
                assert_eq!(status, 422);
                assert_eq!(code, "invalid");
                assert_eq!(
                    details,
                    vec![("steps[0].needs[0]".to_owned(), "unknown step".to_owned())]
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
