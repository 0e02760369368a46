//! `core.http`: one HTTP request to a destination that `[core_http]` permits
//! ([`crate::egress`]), with `${secrets.NAME}` references resolved when it runs.
//!
//! References (`gridflow_core::secret_ref`) may stand in the `url`, the header values and
//! the strings of the `body`. The engine records the step's arguments with the reference,
//! never the secret; this action reads the secret from the environment variable
//! `GRIDFLOW_SECRET_<NAME>` (the name as written, uppercased) at each attempt, marks the
//! headers that carry one as sensitive, scrubs its value from error messages and from the
//! output, and never logs it (the log names the method and the host as written). A
//! reference to a secret that is not set fails the step permanently, naming it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};

use gridflow_core::secret_ref;

use crate::config::CoreHttpConfig;
use crate::connector::{Error, Invocation, Result};
use crate::egress::{self, Egress, GuardedResolver};
use crate::http::{self, Redactor};

/// The prefix of the environment variables that hold the secrets `${secrets.NAME}` names.
pub const SECRET_VARIABLE_PREFIX: &str = "GRIDFLOW_SECRET_";

/// The timeout of a `core.http` request that sets no `timeout_ms`, in milliseconds.
pub(crate) const DEFAULT_HTTP_TIMEOUT_MS: u64 = 30_000;

/// The longest `timeout_ms` a `core.http` request may ask for: one hour.
pub(crate) const MAX_HTTP_TIMEOUT_MS: u64 = 3_600_000;

/// Finds a secret by its name (as written in `${secrets.NAME}`).
pub type SecretLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Secrets from the environment: `${secrets.api_key}` reads `GRIDFLOW_SECRET_API_KEY`.
pub fn secrets_from_environment() -> SecretLookup {
    Arc::new(|name: &str| std::env::var(secret_variable(name)).ok())
}

/// The environment variable of secret `name`.
pub fn secret_variable(name: &str) -> String {
    format!("{SECRET_VARIABLE_PREFIX}{}", name.to_ascii_uppercase())
}

/// What `core.http` needs: its client (guarded by its egress policy), the response cap
/// and where secrets come from.
pub(crate) struct HttpAction {
    /// The client, or why it could not be built; only `core.http` needs it, so the other
    /// actions keep working without one.
    client: std::result::Result<reqwest::Client, Error>,
    egress: Arc<Egress>,
    max_response_bytes: usize,
    secrets: SecretLookup,
}

impl std::fmt::Debug for HttpAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpAction")
            .field("egress", &self.egress)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish_non_exhaustive()
    }
}

impl HttpAction {
    pub(crate) fn new(config: &CoreHttpConfig, secrets: SecretLookup) -> Self {
        let egress = Arc::new(Egress::new(config.allow.clone()));
        let client = http::client_builder()
            // A proxy would resolve names itself, around the resolver's check.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver::new(Arc::clone(&egress))))
            .redirect(egress.redirect_policy())
            .build()
            .map_err(|error| {
                Error::permanent(
                    "http_client",
                    format!("could not build the http client: {error}"),
                )
            });
        Self {
            client,
            egress,
            max_response_bytes: config.max_response_bytes,
            secrets,
        }
    }

    pub(crate) async fn invoke(&self, invocation: &Invocation) -> Result<Value> {
        let client = self.client.as_ref().map_err(Clone::clone)?;
        http_request(self, client, invocation).await
    }

    /// `text` with its references resolved; each secret used is added to `redactor`.
    fn resolve(&self, text: &str, redactor: &mut Redactor) -> Result<String> {
        secret_ref::replace_references(text, |name| {
            let value = (self.secrets)(name).ok_or_else(|| {
                Error::permanent(
                    "unknown_secret",
                    format!(
                        "action \"core.http\": secret {name:?} is not set (set the environment variable {} of the server)",
                        secret_variable(name)
                    ),
                )
            })?;
            redactor.add(&value);
            Ok(value)
        })
    }

    /// `value` with the references in its strings resolved.
    fn resolve_value(&self, value: &Value, redactor: &mut Redactor) -> Result<Value> {
        Ok(match value {
            Value::String(text) => Value::String(self.resolve(text, redactor)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| self.resolve_value(item, redactor))
                    .collect::<Result<_>>()?,
            ),
            Value::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(key, item)| Ok((key.clone(), self.resolve_value(item, redactor)?)))
                    .collect::<Result<_>>()?,
            ),
            Value::Null | Value::Bool(_) | Value::Number(_) => value.clone(),
        })
    }
}

fn parse(invocation: &Invocation) -> Result<HttpArguments> {
    HttpArguments::deserialize(&invocation.arguments).map_err(|error| {
        Error::invalid_arguments(format!("action \"core.{}\": {error}", invocation.action))
    })
}

/// The error of a failed send: a refused destination (found in reqwest's error chain)
/// is permanent and says which setting allows it; anything else as reqwest classifies it.
fn send_error(error: &reqwest::Error, redactor: &Redactor) -> Error {
    match egress::refusal_in(error) {
        Some(refused) => refused.to_error(),
        None => redactor.redact_error(Error::from_reqwest(error)),
    }
}

/// Every string of `value` with the secrets scrubbed, for a server that echoes them.
fn scrub(value: Value, redactor: &Redactor) -> Value {
    match value {
        Value::String(text) => Value::String(redactor.redact(&text)),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| scrub(item, redactor))
                .collect(),
        ),
        Value::Object(entries) => Value::Object(
            entries
                .into_iter()
                .map(|(key, item)| (key, scrub(item, redactor)))
                .collect(),
        ),
        other @ (Value::Null | Value::Bool(_) | Value::Number(_)) => other,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpArguments {
    method: String,
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// Sends one request. Header values are never logged and are scrubbed from error
/// messages; response headers whose name [`http::is_sensitive_header`] come back
/// redacted, and resolved secrets are scrubbed from the output, because the output is
/// recorded in history.
async fn http_request(
    action: &HttpAction,
    client: &reqwest::Client,
    invocation: &Invocation,
) -> Result<Value> {
    let arguments = parse(invocation)?;
    let method = reqwest::Method::from_bytes(arguments.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| {
            Error::invalid_arguments(format!(
                "action \"core.http\": \"{}\" is not an http method",
                arguments.method
            ))
        })?;
    // The host as written, for the log: a secret resolved into the URL never reaches it.
    let host = reqwest::Url::parse(&arguments.url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_default();
    let mut redactor = Redactor::new();
    let resolved_url = action.resolve(&arguments.url, &mut redactor)?;
    let url = reqwest::Url::parse(&resolved_url).map_err(|error| {
        Error::invalid_arguments(format!("action \"core.http\": invalid url: {error}"))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::invalid_arguments(
            "action \"core.http\": url must use http or https",
        ));
    }
    action
        .egress
        .check_url(&url)
        .map_err(|refused| refused.to_error())?;
    let timeout = match arguments.timeout_ms {
        None => Duration::from_millis(DEFAULT_HTTP_TIMEOUT_MS),
        Some(ms) if (1..=MAX_HTTP_TIMEOUT_MS).contains(&ms) => Duration::from_millis(ms),
        Some(_) => {
            return Err(Error::invalid_arguments(format!(
                "action \"core.http\": timeout_ms must be between 1 and {MAX_HTTP_TIMEOUT_MS}"
            )));
        }
    };

    let mut header_arguments = BTreeMap::new();
    for (name, value) in &arguments.headers {
        header_arguments.insert(name.clone(), action.resolve(value, &mut redactor)?);
    }
    let headers = request_headers(&header_arguments, &invocation.idempotency_key)?;
    redactor.add_headers(&headers);
    let body = match &arguments.body {
        Some(body) => Some(action.resolve_value(body, &mut redactor)?),
        None => None,
    };

    let mut request = client
        .request(method.clone(), url)
        .headers(headers)
        .timeout(timeout);
    request = match body {
        None | Some(Value::Null) => request,
        Some(Value::String(text)) => request.body(text),
        Some(body) => request.json(&body),
    };

    tracing::debug!(%method, %host, "core.http request");
    let mut response = request
        .send()
        .await
        .map_err(|error| send_error(&error, &redactor))?;
    let status = response.status();
    tracing::debug!(%method, %host, status = status.as_u16(), "core.http response");
    if !status.is_success() {
        return Err(http::error_for_response(response, &redactor).await);
    }

    let limit = action.max_response_bytes;
    let too_large = || {
        Error::permanent(
            "response_too_large",
            format!(
                "action \"core.http\": the response body is larger than {limit} bytes \
                 (core_http.max_response_bytes in gridflow.toml)"
            ),
        )
    };
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let response_headers = response_headers(response.headers());
    let is_json = http::is_json_content_type(response.headers());
    let bytes = match http::read_body(&mut response, limit).await {
        Ok(bytes) => bytes,
        Err(error) if error.code() == "response_too_large" => return Err(too_large()),
        Err(error) => return Err(redactor.redact_error(error)),
    };
    let body = if is_json && !bytes.is_empty() {
        // A body that claims to be JSON but is not is still worth returning, as text.
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    } else if is_json {
        Value::Null
    } else {
        Value::String(String::from_utf8_lossy(&bytes).into_owned())
    };
    Ok(scrub(
        json!({
            "status": status.as_u16(),
            "headers": response_headers,
            "body": body,
        }),
        &redactor,
    ))
}

/// The request headers: the caller's, with sensitive ones marked so, and
/// `Idempotency-Key` set to the invocation's key (it replaces one given in `headers`).
fn request_headers(
    arguments: &BTreeMap<String, String>,
    idempotency_key: &str,
) -> Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    for (name, value) in arguments {
        let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            Error::invalid_arguments(format!(
                "action \"core.http\": \"{name}\" is not a valid header name"
            ))
        })?;
        // The value is left out of the message: it may be a credential.
        let mut header_value = HeaderValue::from_str(value).map_err(|_| {
            Error::invalid_arguments(format!(
                "action \"core.http\": header \"{name}\" has an invalid value"
            ))
        })?;
        if http::is_sensitive_header(name) {
            header_value.set_sensitive(true);
        }
        headers.append(header_name, header_value);
    }
    let key = HeaderValue::from_str(idempotency_key).map_err(|_| {
        Error::invalid_arguments(
            "action \"core.http\": idempotency key is not a valid header value",
        )
    })?;
    headers.insert("idempotency-key", key);
    Ok(headers)
}

/// Response headers as `{name: value}` with lowercase names; repeated headers are joined
/// with `, ` and sensitive ones are redacted.
fn response_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut output: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = if http::is_sensitive_header(name.as_str()) {
            http::REDACTED.to_owned()
        } else {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        };
        output
            .entry(name.as_str().to_owned())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert(value);
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_response_headers_are_redacted() {
        let mut headers = HeaderMap::new();
        headers.insert("set-cookie", HeaderValue::from_static("session=abc"));
        headers.append("x-trace", HeaderValue::from_static("a"));
        headers.append("x-trace", HeaderValue::from_static("b"));
        let output = response_headers(&headers);
        assert_eq!(
            output.get("set-cookie").map(String::as_str),
            Some(http::REDACTED)
        );
        assert_eq!(output.get("x-trace").map(String::as_str), Some("a, b"));
    }

    #[test]
    fn idempotency_key_replaces_a_given_one() {
        let arguments = BTreeMap::from([
            ("Idempotency-Key".to_owned(), "mine".to_owned()),
            ("Authorization".to_owned(), "Bearer t0ken-value".to_owned()),
        ]);
        let headers = request_headers(&arguments, "i:s:1").expect("valid headers");
        assert_eq!(headers.get_all("idempotency-key").iter().count(), 1);
        assert_eq!(
            headers.get("idempotency-key").map(HeaderValue::as_bytes),
            Some(&b"i:s:1"[..])
        );
        assert!(
            headers
                .get("authorization")
                .is_some_and(HeaderValue::is_sensitive)
        );
    }
}
