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
    /// Raw bytes with their content type (a document upload).
    Bytes(Vec<u8>, String),
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
        }
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
        })
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
        let token = self.token().await?;
        let response = self.send(request, Some(&token)).await?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            self.forget(&token).await;
            let token = self.token().await?;
            let response = self.send(request, Some(&token)).await?;
            return self.decode_for(request, response).await;
        }
        self.decode_for(request, response).await
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
            .header(reqwest::header::ACCEPT, "application/json");
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        builder = match &request.body {
            Body::None => builder,
            Body::Json(body) => builder.json(body),
            Body::Form(fields) => builder.form(fields),
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
        let status = response.status();
        let retry_after = http::retry_after(response.headers());
        let body = http::read_body(&mut response, MAX_RESPONSE_BYTES)
            .await
            .map_err(|error| self.scrub(error))?;
        if status.is_success() {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&body).map_err(|error| {
                Error::permanent("invalid_response", format!("response is not JSON: {error}"))
            });
        }
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
        Err(Error::from_status(status.as_u16(), retry_after, message))
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
