//! The request loop every token-based HTTP connector shares: a cached access token sent on
//! each call, refreshed once when the system answers 401, and responses turned into JSON
//! or a classified [`Error`] carrying the system's own message, scrubbed of credentials.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value;

use crate::connector::{Error, Result};
use crate::http::{self, Redactor, Secret};

/// The largest response body a connector reads.
pub(crate) const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// How a system issues access tokens.
#[async_trait]
pub(crate) trait TokenSource: Send + Sync {
    /// Obtains a new access token through `client` (which knows the base URL).
    async fn fetch(&self, client: &RestClient) -> Result<Secret>;
}

/// A request body.
pub(crate) enum Body {
    None,
    Json(Value),
    Form(Vec<(String, String)>),
    /// `multipart/form-data`: text fields, then files; rebuilt for every send (a 401 sends
    /// it again), the bytes shared rather than copied.
    Multipart(Vec<Part>),
    /// Raw bytes with their content type (a document upload).
    Bytes(Vec<u8>, String),
}

/// One part of a [`Body::Multipart`].
pub(crate) enum Part {
    /// A text field.
    Text { name: String, value: String },
    /// A file with its name and type. `axum::body::Bytes` is the `bytes` crate's `Bytes`,
    /// which reqwest sends without copying.
    File {
        name: String,
        file_name: String,
        content_type: String,
        bytes: axum::body::Bytes,
    },
}

/// One request, relative to the connector's base URL.
pub(crate) struct Request {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: Body,
    /// The idempotency header and key of a state-changing request.
    pub(crate) idempotency: Option<(&'static str, String)>,
    /// A successful answer may be plain text (Canto's `success`): returned as a JSON string.
    pub(crate) text_ok: bool,
    /// The answer is a download of any media type, not JSON ([`RestClient::open`]).
    pub(crate) binary: bool,
}

impl Request {
    pub(crate) fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            query: Vec::new(),
            body: Body::None,
            idempotency: None,
            text_ok: false,
            binary: false,
        }
    }

    /// Asks for any media type: a download, read with [`RestClient::open`].
    pub(crate) fn binary(mut self) -> Self {
        self.binary = true;
        self
    }

    /// Accepts a successful answer that is not JSON, as a JSON string.
    pub(crate) fn text_ok(mut self) -> Self {
        self.text_ok = true;
        self
    }

    pub(crate) fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    pub(crate) fn query(mut self, name: &str, value: impl ToString) -> Self {
        self.query.push((name.to_owned(), value.to_string()));
        self
    }

    pub(crate) fn query_opt(self, name: &str, value: Option<impl ToString>) -> Self {
        match value {
            Some(value) => self.query(name, value),
            None => self,
        }
    }

    pub(crate) fn json(mut self, body: Value) -> Self {
        self.body = Body::Json(body);
        self
    }

    /// Sends `bytes` as the raw body with `content_type`.
    pub(crate) fn bytes(mut self, bytes: Vec<u8>, content_type: &str) -> Self {
        self.body = Body::Bytes(bytes, content_type.to_owned());
        self
    }

    pub(crate) fn form(mut self, fields: Vec<(String, String)>) -> Self {
        self.body = Body::Form(fields);
        self
    }

    pub(crate) fn multipart(mut self, parts: Vec<Part>) -> Self {
        self.body = Body::Multipart(parts);
        self
    }

    pub(crate) fn idempotent(mut self, header: &'static str, key: &str) -> Self {
        self.idempotency = Some((header, key.to_owned()));
        self
    }
}

/// Picks the system's own message out of an error body, when it has a known shape.
pub(crate) type MessageOf = fn(&Value) -> Option<String>;

/// One system's HTTP client: base URL, per-request timeout, token cache and redactor.
pub(crate) struct RestClient {
    http: reqwest::Client,
    base_url: String,
    timeout: Duration,
    token_source: Box<dyn TokenSource>,
    token: tokio::sync::Mutex<Option<Secret>>,
    redactor: Mutex<Redactor>,
    message_of: MessageOf,
    /// The header carrying the token: `None` is `Authorization: Bearer <token>`.
    token_header: Option<&'static str>,
    /// Headers sent on every request, token requests included (iconik's `App-ID`).
    fixed_headers: Vec<(&'static str, reqwest::header::HeaderValue)>,
    /// The header of [`RestClient::call_idempotent`]'s key.
    idempotency_header: &'static str,
}

impl RestClient {
    /// A client for `base_url` (a trailing `/` is dropped) that scrubs `secrets` from every
    /// error, as well as every token it obtains.
    pub(crate) fn new(
        base_url: &str,
        timeout: Duration,
        token_source: Box<dyn TokenSource>,
        secrets: &[&Secret],
        message_of: MessageOf,
    ) -> Result<Self> {
        let mut redactor = Redactor::new();
        for secret in secrets {
            redactor.add(secret.expose());
        }
        Ok(Self {
            http: http::build_client()?,
            base_url: base_url.trim_end_matches('/').to_owned(),
            timeout,
            token_source,
            token: tokio::sync::Mutex::new(None),
            redactor: Mutex::new(redactor),
            message_of,
            token_header: None,
            fixed_headers: Vec::new(),
            idempotency_header: "Idempotency-Key",
        })
    }

    /// Sends the key of [`RestClient::call_idempotent`] in `header` instead of
    /// `Idempotency-Key`.
    pub(crate) fn with_idempotency_header(mut self, header: &'static str) -> Self {
        self.idempotency_header = header;
        self
    }

    /// Sends the token as the bare value of `header` instead of `Authorization: Bearer`.
    pub(crate) fn with_token_header(mut self, header: &'static str) -> Self {
        self.token_header = Some(header);
        self
    }

    /// Sends `header: value` on every request (marked sensitive, never logged).
    pub(crate) fn with_fixed_header(
        mut self,
        header: &'static str,
        value: &Secret,
    ) -> Result<Self> {
        self.fixed_headers
            .push((header, http::sensitive_header_value(value)?));
        Ok(self)
    }

    /// `base_url` + `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Sends `request` with the current token; on 401, obtains a new token and sends it
    /// once more. Returns the JSON body (`null` when empty) or the classified error.
    pub(crate) async fn call(&self, request: &Request) -> Result<Value> {
        let response = self.send_authorized(request).await?;
        self.decode_for(request, response).await
    }

    /// Sends `request` with the current token; on 401, obtains a new token and sends it
    /// once more. The response is returned unread, whatever its status.
    async fn send_authorized(&self, request: &Request) -> Result<reqwest::Response> {
        let token = self.token().await?;
        let response = self.send(request, Some(&token)).await?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        self.forget(&token).await;
        let token = self.token().await?;
        self.send(request, Some(&token)).await
    }

    /// The state-changing call of an action: `body` sent as JSON with `method` to `path`,
    /// carrying the attempt's `key` in the idempotency header (`Idempotency-Key` unless
    /// [`RestClient::with_idempotency_header`] names another), through [`RestClient::call`].
    pub(crate) async fn call_idempotent(
        &self,
        method: Method,
        path: impl Into<String>,
        body: Value,
        key: &str,
    ) -> Result<Value> {
        let request = Request::new(method, path)
            .json(body)
            .idempotent(self.idempotency_header, key);
        self.call(&request).await
    }

    /// The redactor of this client's secrets and tokens, for errors its callers build.
    pub(crate) fn redactor(&self) -> Redactor {
        self.redactor_snapshot()
    }

    async fn decode_for(&self, request: &Request, response: reqwest::Response) -> Result<Value> {
        if !request.text_ok || !response.status().is_success() {
            return self.decode(response).await;
        }
        let mut response = response;
        let body = http::read_body(&mut response, MAX_RESPONSE_BYTES)
            .await
            .map_err(|error| self.scrub(error))?;
        Ok(serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).trim().to_owned())))
    }

    /// Sends a request without a token (token endpoints) and decodes the answer.
    pub(crate) async fn call_unauthenticated(
        &self,
        request: &Request,
        basic: Option<(&Secret, &Secret)>,
    ) -> Result<Value> {
        let mut builder = self.builder(request);
        if let Some((user, password)) = basic {
            builder = builder.basic_auth(user.expose(), Some(password.expose()));
        }
        let response = builder
            .send()
            .await
            .map_err(|error| self.scrub(Error::from_reqwest(&error)))?;
        self.decode(response).await
    }

    /// Sends `request` as [`RestClient::call`] does (the token, obtained again once on
    /// 401) and returns a successful response unread, for a body that is streamed rather
    /// than decoded (a download); a failure is the classified error `call` gives.
    pub(crate) async fn open(&self, request: &Request) -> Result<reqwest::Response> {
        let response = self.send_authorized(request).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(self.error_of(response).await)
    }

    /// GETs `url`, a signed link the system just handed out, without the token and the
    /// fixed headers (the link carries its own authorisation, and a storage host must not
    /// receive our credentials), and returns a successful response unread. The link never
    /// enters an error: transport errors name the host only, and an error body that
    /// echoes the link or its query values is scrubbed of them.
    pub(crate) async fn open_signed(&self, url: &str) -> Result<reqwest::Response> {
        let mut redactor = self.redactor_snapshot();
        redactor.add(url);
        if let Ok(parsed) = reqwest::Url::parse(url) {
            for (_, value) in parsed.query_pairs() {
                redactor.add(&value);
            }
            if let Some(query) = parsed.query() {
                redactor.add(query);
            }
        }
        let response = self
            .http
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|error| redactor.redact_error(Error::from_reqwest(&error)))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(http::error_for_response(response, &redactor).await)
    }

    async fn token(&self) -> Result<Secret> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref() {
            return Ok(token.clone());
        }
        let token = self.token_source.fetch(self).await?;
        self.redactor_add(token.expose());
        *cached = Some(token.clone());
        Ok(token)
    }

    /// Drops `token` unless another call already replaced it.
    async fn forget(&self, token: &Secret) {
        let mut cached = self.token.lock().await;
        if cached.as_ref() == Some(token) {
            *cached = None;
        }
    }

    fn builder(&self, request: &Request) -> reqwest::RequestBuilder {
        let mut builder = self
            .http
            .request(request.method.clone(), self.url(&request.path))
            .timeout(self.timeout)
            .header(
                reqwest::header::ACCEPT,
                if request.binary {
                    "*/*"
                } else {
                    "application/json"
                },
            );
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        builder = match &request.body {
            Body::None => builder,
            Body::Json(body) => builder.json(body),
            Body::Form(fields) => builder.form(fields),
            Body::Multipart(parts) => builder.multipart(multipart_form(parts)),
            Body::Bytes(bytes, content_type) => builder
                .header(reqwest::header::CONTENT_TYPE, content_type.as_str())
                .body(bytes.clone()),
        };
        if let Some((header, key)) = &request.idempotency {
            builder = builder.header(*header, key);
        }
        for (header, value) in &self.fixed_headers {
            builder = builder.header(*header, value.clone());
        }
        builder
    }

    async fn send(&self, request: &Request, token: Option<&Secret>) -> Result<reqwest::Response> {
        let mut builder = self.builder(request);
        if let (Some(token), Some(header)) = (token, self.token_header) {
            builder = builder.header(header, http::sensitive_header_value(token)?);
        } else if let Some(token) = token {
            let value =
                http::sensitive_header_value(&Secret::new(format!("Bearer {}", token.expose())))?;
            builder = builder.header(reqwest::header::AUTHORIZATION, value);
        }
        builder
            .send()
            .await
            .map_err(|error| self.scrub(Error::from_reqwest(&error)))
    }

    async fn decode(&self, mut response: reqwest::Response) -> Result<Value> {
        if !response.status().is_success() {
            return Err(self.error_of(response).await);
        }
        let body = http::read_body(&mut response, MAX_RESPONSE_BYTES)
            .await
            .map_err(|error| self.scrub(error))?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|error| {
            Error::permanent("invalid_response", format!("response is not JSON: {error}"))
        })
    }

    /// The classified error of a response that is not a success, with the system's own
    /// message when its body has the known shape, scrubbed of credentials.
    async fn error_of(&self, mut response: reqwest::Response) -> Error {
        let status = response.status();
        let retry_after = http::retry_after(response.headers());
        let body = match http::read_body(&mut response, MAX_RESPONSE_BYTES).await {
            Ok(body) => body,
            Err(error) => return self.scrub(error),
        };
        let text = String::from_utf8_lossy(&body);
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|value| (self.message_of)(&value))
            .unwrap_or_else(|| {
                let text = text.trim();
                if text.is_empty() {
                    format!("http status {}", status.as_u16())
                } else {
                    text.to_owned()
                }
            });
        let message = http::truncate(
            &self.redactor_snapshot().redact(&message),
            http::MAX_ERROR_MESSAGE_CHARS,
        );
        Error::from_status(status.as_u16(), retry_after, message)
    }

    fn scrub(&self, error: Error) -> Error {
        self.redactor_snapshot().redact_error(error)
    }

    fn redactor_add(&self, secret: &str) {
        self.redactor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .add(secret);
    }

    fn redactor_snapshot(&self) -> Redactor {
        self.redactor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// A download being filed in the content store by [`store_download`].
pub(crate) struct Download<'a> {
    /// What is downloaded, for errors (`otmm asset 1f… version 2`).
    pub(crate) what: &'a str,
    /// The SHA-256 the system gives for these bytes, when it gives one.
    pub(crate) expected_sha256: Option<&'a str>,
    /// The type when the response names none.
    pub(crate) content_type: &'a str,
    /// The file name the system gives.
    pub(crate) file_name: &'a str,
}

/// Streams `response`'s body chunk by chunk into `store` and files it under its digest.
/// Past the store's `max_bytes` it stops reading and fails with the permanent
/// `content_too_large`; bytes whose SHA-256 differs from the one the system gives fail with
/// the permanent `content_digest_mismatch` naming both. Either way nothing is filed.
pub(crate) async fn store_download(
    mut response: reqwest::Response,
    store: &crate::content::ContentStore,
    download: Download<'_>,
) -> Result<crate::content::ContentRef> {
    use sha2::Digest;
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .unwrap_or(download.content_type)
        .to_owned();
    let mut writer = store.writer().await?;
    // The writer hashes too, but tells its digest only once the object is filed; hashing
    // here as well lets a mismatch leave nothing behind.
    let mut hasher = sha2::Sha256::new();
    let naming =
        |error: Error| error.map_message(|message| format!("{}: {message}", download.what));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| naming(Error::from_reqwest(&error)))?
    {
        writer.write(&chunk).await.map_err(naming)?;
        hasher.update(&chunk);
    }
    let actual = hex::encode(hasher.finalize());
    if let Some(expected) = download.expected_sha256
        && !expected.eq_ignore_ascii_case(&actual)
    {
        return Err(Error::permanent(
            "content_digest_mismatch",
            format!(
                "{}: the system gives SHA-256 {expected}, the bytes received hash to {actual}",
                download.what
            ),
        ));
    }
    writer.finish(&content_type, download.file_name).await
}

/// `text` as a SHA-256 digest (64 hex digits, lower-cased), or `None`: what a system's
/// checksum field is taken for only when it has that form, never guessed from another.
pub(crate) fn sha256_digest(text: Option<&str>) -> Option<String> {
    let text = text?.trim();
    (text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_hexdigit()))
        .then(|| text.to_ascii_lowercase())
}

/// A fresh form of `parts`; a file whose content type does not parse is sent as
/// `application/octet-stream`.
fn multipart_form(parts: &[Part]) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new();
    for part in parts {
        form = match part {
            Part::Text { name, value } => form.text(name.clone(), value.clone()),
            Part::File {
                name,
                file_name,
                content_type,
                bytes,
            } => {
                let length = bytes.len() as u64;
                let body = reqwest::Body::from(bytes.clone());
                let file = reqwest::multipart::Part::stream_with_length(body, length)
                    .file_name(file_name.clone());
                let file = match file.mime_str(content_type) {
                    Ok(file) => file,
                    Err(_) => reqwest::multipart::Part::stream_with_length(
                        reqwest::Body::from(bytes.clone()),
                        length,
                    )
                    .file_name(file_name.clone())
                    .mime_str("application/octet-stream")
                    .expect("application/octet-stream is a valid MIME type"),
                };
                form.part(name.clone(), file)
            }
        };
    }
    form
}

/// Parses `arguments` into `T`, failing permanently with `invalid_arguments`.
pub(crate) fn parse_arguments<T: serde::de::DeserializeOwned>(
    connector: &str,
    action: &str,
    arguments: &Value,
) -> Result<T> {
    T::deserialize(arguments)
        .map_err(|error| Error::invalid_arguments(format!("{connector}.{action}: {error}")))
}

/// A value that must be present in a system's answer.
pub(crate) fn required<'a>(value: &'a Value, pointer: &str, what: &str) -> Result<&'a Value> {
    value
        .pointer(pointer)
        .filter(|found| !found.is_null())
        .ok_or_else(|| {
            Error::permanent(
                "invalid_response",
                format!("{what}: response has no {pointer}"),
            )
        })
}

/// A path segment with `/`, `?`, `#` and `%` escaped, so an id cannot leave its segment.
pub(crate) fn segment(id: &str) -> String {
    let mut escaped = String::with_capacity(id.len());
    for character in id.chars() {
        match character {
            '/' => escaped.push_str("%2F"),
            '?' => escaped.push_str("%3F"),
            '#' => escaped.push_str("%23"),
            '%' => escaped.push_str("%25"),
            ' ' => escaped.push_str("%20"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::ContentStore;

    fn response(body: &'static [u8]) -> reqwest::Response {
        let response = axum::http::Response::builder()
            .header("content-type", "text/plain")
            .body(body)
            .expect("a valid response");
        reqwest::Response::from(response)
    }

    fn download(expected_sha256: Option<&str>) -> Download<'_> {
        Download {
            what: "asset a version 1",
            expected_sha256,
            content_type: "application/octet-stream",
            file_name: "a.txt",
        }
    }

    #[tokio::test]
    async fn a_download_is_filed_under_its_digest_and_checked_against_the_systems() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path(), 1024);
        let digest = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let stored = store_download(response(b"hello"), &store, download(Some(digest)))
            .await
            .unwrap();
        assert_eq!(stored.sha256, digest);
        assert_eq!(
            stored.content_type, "text/plain",
            "the response's type wins"
        );
        assert_eq!(store.read(&stored).await.unwrap(), b"hello");

        let other = "0".repeat(64);
        let error = store_download(response(b"hello!"), &store, download(Some(&other)))
            .await
            .unwrap_err();
        assert_eq!(error.code(), "content_digest_mismatch");
        assert!(!error.is_retryable());
        assert!(
            error.message().contains(&other)
                && error
                    .message()
                    .contains("ce06092fb948d9ffac7d1a376e404b26b7575bcc11ee05a4615fef4fec3a308b")
                && error.message().contains("asset a version 1"),
            "{error}"
        );
        let filed: Vec<_> = std::fs::read_dir(dir.path().join("sha256"))
            .unwrap()
            .collect();
        assert_eq!(filed.len(), 1, "only the matching download is filed");
        let left: Vec<_> = std::fs::read_dir(dir.path().join("tmp")).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn only_a_sha256_shaped_checksum_is_taken_for_one() {
        let upper = "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824";
        assert_eq!(
            sha256_digest(Some(upper)).as_deref(),
            Some(upper.to_ascii_lowercase().as_str())
        );
        assert_eq!(
            sha256_digest(Some("5d41402abc4b2a76b9719d911017c592")),
            None
        );
        assert_eq!(sha256_digest(Some(&"g".repeat(64))), None);
        assert_eq!(sha256_digest(None), None);
    }
}
