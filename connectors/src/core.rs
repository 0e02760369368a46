//! The built-in `core` connector (DESIGN.md §7): needs no configuration and serves
//! tests, benchmarks and glue.
//!
//! | action | does |
//! |---|---|
//! | `noop` | nothing; output `{}` |
//! | `echo` | output = its arguments |
//! | `fail_until` | `{attempts: N, key?}`: fails retryably (`injected`) on attempts 1..N-1, succeeds on attempt N with `{attempt: N}` |
//! | `fail` | `{message, retryable?: false}`: always fails (`injected`) |
//! | `delay` | `{ms}`: takes that long, then outputs `{slept_ms}`; not a durable sleep |
//! | `http` | `{method, url, headers?, body?, timeout_ms?}`: one HTTP request, output `{status, headers, body}` |
//!
//! `fail_until` counts with the invocation's attempt number, so it keeps no state and
//! behaves the same after a restart.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::connector::{ActionSpec, Connector, Error, Invocation, Result};
use crate::http::{self, Redactor};

/// The connector's name.
pub const NAME: &str = "core";

/// The error code of every failure that `fail` and `fail_until` inject.
pub const INJECTED: &str = "injected";

/// The longest `core.delay`: one day.
const MAX_DELAY_MS: u64 = 86_400_000;

/// The timeout of a `core.http` request that sets no `timeout_ms`, in milliseconds.
const DEFAULT_HTTP_TIMEOUT_MS: u64 = 30_000;

/// The longest `timeout_ms` a `core.http` request may ask for: one hour.
const MAX_HTTP_TIMEOUT_MS: u64 = 3_600_000;

/// The largest response body `core.http` reads; the output goes into history.
const MAX_HTTP_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// The built-in connector. Cheap to share: it holds the action list and one HTTP client.
#[derive(Debug)]
pub struct CoreConnector {
    actions: Vec<ActionSpec>,
    /// The client of `core.http`, or why it could not be built; only `core.http` needs it,
    /// so the other actions keep working without one.
    client: std::result::Result<reqwest::Client, Error>,
}

impl CoreConnector {
    /// The connector with a client built from [`http::client_builder`].
    pub fn new() -> Self {
        Self {
            actions: action_specs(),
            client: http::build_client(),
        }
    }

    /// The connector with the given client for `core.http`.
    pub fn with_client(client: reqwest::Client) -> Self {
        Self {
            actions: action_specs(),
            client: Ok(client),
        }
    }
}

impl Default for CoreConnector {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Connector for CoreConnector {
    fn name(&self) -> &str {
        NAME
    }

    fn actions(&self) -> &[ActionSpec] {
        &self.actions
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Value> {
        match invocation.action.as_str() {
            "noop" => {
                parse::<NoopArguments>(&invocation)?;
                Ok(json!({}))
            }
            "echo" => match &invocation.arguments {
                Value::Object(_) => Ok(invocation.arguments),
                _ => Err(Error::invalid_arguments(
                    "action \"core.echo\": arguments must be an object",
                )),
            },
            "fail_until" => fail_until(&invocation),
            "fail" => Err(fail(&invocation)?),
            "delay" => delay(&invocation).await,
            "http" => {
                let client = self.client.as_ref().map_err(Clone::clone)?;
                http_request(client, &invocation).await
            }
            other => Err(Error::permanent(
                "unknown_action",
                format!("unknown action \"core.{other}\""),
            )),
        }
    }
}

fn parse<T: DeserializeOwned>(invocation: &Invocation) -> Result<T> {
    T::deserialize(&invocation.arguments).map_err(|error| {
        Error::invalid_arguments(format!("action \"core.{}\": {error}", invocation.action))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoopArguments {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailUntilArguments {
    attempts: u32,
    #[serde(default)]
    key: Option<String>,
}

fn fail_until(invocation: &Invocation) -> Result<Value> {
    let arguments: FailUntilArguments = parse(invocation)?;
    if arguments.attempts == 0 {
        return Err(Error::invalid_arguments(
            "action \"core.fail_until\": attempts must be at least 1",
        ));
    }
    if invocation.attempt >= arguments.attempts {
        return Ok(json!({"attempt": invocation.attempt}));
    }
    let subject = match &arguments.key {
        Some(key) => format!("fail_until \"{key}\""),
        None => "fail_until".to_owned(),
    };
    Err(Error::retryable(
        INJECTED,
        format!(
            "{subject}: attempt {} fails, attempt {} will succeed",
            invocation.attempt, arguments.attempts
        ),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailArguments {
    message: String,
    #[serde(default)]
    retryable: bool,
}

/// The injected failure; `Err` only for arguments that do not parse.
fn fail(invocation: &Invocation) -> Result<Error> {
    let arguments: FailArguments = parse(invocation)?;
    Ok(if arguments.retryable {
        Error::retryable(INJECTED, arguments.message)
    } else {
        Error::permanent(INJECTED, arguments.message)
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DelayArguments {
    ms: u64,
}

async fn delay(invocation: &Invocation) -> Result<Value> {
    let arguments: DelayArguments = parse(invocation)?;
    if arguments.ms > MAX_DELAY_MS {
        return Err(Error::invalid_arguments(format!(
            "action \"core.delay\": ms must be at most {MAX_DELAY_MS}"
        )));
    }
    tokio::time::sleep(Duration::from_millis(arguments.ms)).await;
    Ok(json!({"slept_ms": arguments.ms}))
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
/// redacted, because the output is recorded in history.
async fn http_request(client: &reqwest::Client, invocation: &Invocation) -> Result<Value> {
    let arguments: HttpArguments = parse(invocation)?;
    let method = reqwest::Method::from_bytes(arguments.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| {
            Error::invalid_arguments(format!(
                "action \"core.http\": \"{}\" is not an http method",
                arguments.method
            ))
        })?;
    let url = reqwest::Url::parse(&arguments.url).map_err(|error| {
        Error::invalid_arguments(format!("action \"core.http\": invalid url: {error}"))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::invalid_arguments(
            "action \"core.http\": url must use http or https",
        ));
    }
    let timeout = match arguments.timeout_ms {
        None => Duration::from_millis(DEFAULT_HTTP_TIMEOUT_MS),
        Some(ms) if (1..=MAX_HTTP_TIMEOUT_MS).contains(&ms) => Duration::from_millis(ms),
        Some(_) => {
            return Err(Error::invalid_arguments(format!(
                "action \"core.http\": timeout_ms must be between 1 and {MAX_HTTP_TIMEOUT_MS}"
            )));
        }
    };

    let headers = request_headers(&arguments.headers, &invocation.idempotency_key)?;
    let mut redactor = Redactor::new();
    redactor.add_headers(&headers);

    let host = url.host_str().unwrap_or_default().to_owned();
    let mut request = client
        .request(method.clone(), url)
        .headers(headers)
        .timeout(timeout);
    request = match arguments.body {
        None | Some(Value::Null) => request,
        Some(Value::String(text)) => request.body(text),
        Some(body) => request.json(&body),
    };

    tracing::debug!(%method, %host, "core.http request");
    let mut response = request
        .send()
        .await
        .map_err(|error| redact_error(Error::from_reqwest(&error), &redactor))?;
    let status = response.status();
    tracing::debug!(%method, %host, status = status.as_u16(), "core.http response");
    if !status.is_success() {
        return Err(http::error_for_response(response, &redactor).await);
    }

    let response_headers = response_headers(response.headers());
    let is_json = http::is_json_content_type(response.headers());
    let bytes = http::read_body(&mut response, MAX_HTTP_RESPONSE_BYTES)
        .await
        .map_err(|error| redact_error(error, &redactor))?;
    let body = if is_json && !bytes.is_empty() {
        // A body that claims to be JSON but is not is still worth returning, as text.
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    } else if is_json {
        Value::Null
    } else {
        Value::String(String::from_utf8_lossy(&bytes).into_owned())
    };
    Ok(json!({
        "status": status.as_u16(),
        "headers": response_headers,
        "body": body,
    }))
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

fn redact_error(error: Error, redactor: &Redactor) -> Error {
    match error {
        Error::Retryable {
            code,
            message,
            retry_after,
        } => Error::Retryable {
            code,
            message: redactor.redact(&message),
            retry_after,
        },
        Error::Permanent { code, message } => Error::Permanent {
            code,
            message: redactor.redact(&message),
        },
    }
}

fn action_specs() -> Vec<ActionSpec> {
    // `properties: {}` is not redundant: without it jsonschema 0.61 reports an unknown
    // argument as "False schema does not allow value", without the argument's name.
    let empty_object = json!({"type": "object", "properties": {}, "additionalProperties": false});
    vec![
        ActionSpec {
            name: "noop".to_owned(),
            description: "Does nothing and outputs {}.".to_owned(),
            arguments: empty_object.clone(),
            output: empty_object,
        },
        ActionSpec {
            name: "echo".to_owned(),
            description: "Outputs its arguments unchanged.".to_owned(),
            arguments: json!({"type": "object"}),
            output: json!({"type": "object"}),
        },
        ActionSpec {
            name: "fail_until".to_owned(),
            description: "Fails retryably (code injected) on attempts 1 to attempts-1 and \
                          succeeds on attempt `attempts` with {attempt}."
                .to_owned(),
            arguments: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["attempts"],
                "properties": {
                    "attempts": {"type": "integer", "minimum": 1, "maximum": u32::MAX},
                    "key": {"type": "string"}
                }
            }),
            output: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["attempt"],
                "properties": {"attempt": {"type": "integer", "minimum": 1}}
            }),
        },
        ActionSpec {
            name: "fail".to_owned(),
            description: "Always fails with the given message (code injected), permanently \
                          unless retryable is true."
                .to_owned(),
            arguments: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["message"],
                "properties": {
                    "message": {"type": "string"},
                    "retryable": {"type": "boolean", "default": false}
                }
            }),
            output: json!({"not": {}}),
        },
        ActionSpec {
            name: "delay".to_owned(),
            description: "Takes ms milliseconds, then outputs {slept_ms}; not a durable sleep \
                          (use a sleep step for that)."
                .to_owned(),
            arguments: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["ms"],
                "properties": {"ms": {"type": "integer", "minimum": 0, "maximum": MAX_DELAY_MS}}
            }),
            output: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["slept_ms"],
                "properties": {"slept_ms": {"type": "integer", "minimum": 0}}
            }),
        },
        ActionSpec {
            name: "http".to_owned(),
            description: "Sends one HTTP request with an Idempotency-Key header and outputs \
                          {status, headers, body}; the body is parsed when the response is \
                          JSON. 408, 429 and 5xx fail retryably, other non-2xx permanently."
                .to_owned(),
            arguments: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["method", "url"],
                "properties": {
                    "method": {
                        "type": "string",
                        "enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
                    },
                    "url": {"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"},
                    "headers": {
                        "type": "object",
                        "additionalProperties": {"type": "string"}
                    },
                    "body": {
                        "description": "A string is sent as is; any other value as JSON."
                    },
                    "timeout_ms": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_HTTP_TIMEOUT_MS,
                        "default": DEFAULT_HTTP_TIMEOUT_MS
                    }
                }
            }),
            output: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["status", "headers", "body"],
                "properties": {
                    "status": {"type": "integer"},
                    "headers": {
                        "type": "object",
                        "additionalProperties": {"type": "string"}
                    },
                    "body": {}
                }
            }),
        },
    ]
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gridflow_core::{InstanceId, StepId};
    use serde_json::json;

    use super::*;
    use crate::Registry;

    fn invocation(action: &str, arguments: Value, attempt: u32) -> Invocation {
        Invocation::new(
            action,
            arguments,
            InstanceId::from("instance-1"),
            StepId::from("step"),
            None,
            attempt,
        )
    }

    async fn invoke(full_name: &str, arguments: Value, attempt: u32) -> Result<Value> {
        Registry::with_builtin()
            .invoke(full_name, invocation("", arguments, attempt))
            .await
    }

    #[tokio::test]
    async fn noop_outputs_empty_object() {
        assert_eq!(invoke("core.noop", json!({}), 1).await, Ok(json!({})));
    }

    #[tokio::test]
    async fn echo_outputs_its_arguments() {
        let arguments = json!({"a": 1, "nested": {"list": [true, null, "x"]}});
        assert_eq!(
            invoke("core.echo", arguments.clone(), 1).await,
            Ok(arguments)
        );
        assert_eq!(invoke("core.echo", json!({}), 1).await, Ok(json!({})));
    }

    #[tokio::test]
    async fn fail_until_fails_retryably_before_the_last_attempt() {
        for attempt in 1..=2 {
            let error = invoke(
                "core.fail_until",
                json!({"attempts": 3, "key": "k1"}),
                attempt,
            )
            .await
            .expect_err("attempts 1 and 2 fail");
            assert!(error.is_retryable(), "attempt {attempt}");
            assert_eq!(error.code(), INJECTED);
            assert_eq!(error.retry_after(), None);
            assert!(error.message().contains("k1"), "{error}");
        }
        assert_eq!(
            invoke("core.fail_until", json!({"attempts": 3}), 3).await,
            Ok(json!({"attempt": 3}))
        );
        // An attempt after the N-th (the runtime retried for another reason) still succeeds.
        assert_eq!(
            invoke("core.fail_until", json!({"attempts": 3}), 4).await,
            Ok(json!({"attempt": 4}))
        );
    }

    #[tokio::test]
    async fn fail_until_one_succeeds_at_once() {
        assert_eq!(
            invoke("core.fail_until", json!({"attempts": 1}), 1).await,
            Ok(json!({"attempt": 1}))
        );
    }

    #[tokio::test]
    async fn fail_until_rejects_zero_attempts() {
        let error = invoke("core.fail_until", json!({"attempts": 0}), 1)
            .await
            .expect_err("minimum is 1");
        assert_eq!(error.code(), "invalid_arguments");
        // Called directly, without the registry's schema check, the connector still refuses.
        let error = CoreConnector::new()
            .invoke(invocation("fail_until", json!({"attempts": 0}), 1))
            .await
            .expect_err("minimum is 1");
        assert_eq!(error.code(), "invalid_arguments");
    }

    #[tokio::test]
    async fn fail_is_permanent_unless_retryable() {
        let error = invoke("core.fail", json!({"message": "boom"}), 1)
            .await
            .expect_err("always fails");
        assert_eq!(error, Error::permanent(INJECTED, "boom"));
        let error = invoke(
            "core.fail",
            json!({"message": "flaky", "retryable": true}),
            5,
        )
        .await
        .expect_err("always fails");
        assert_eq!(error, Error::retryable(INJECTED, "flaky"));
    }

    #[tokio::test(start_paused = true)]
    async fn delay_takes_the_given_time() {
        let started_at = tokio::time::Instant::now();
        let output = invoke("core.delay", json!({"ms": 1500}), 1).await;
        assert_eq!(output, Ok(json!({"slept_ms": 1500})));
        assert!(started_at.elapsed() >= Duration::from_millis(1500));
    }

    #[tokio::test]
    async fn unknown_argument_names_are_rejected() {
        let cases = [
            ("core.noop", json!({"extra": 1}), "extra"),
            (
                "core.fail_until",
                json!({"attempts": 2, "tries": 3}),
                "tries",
            ),
            ("core.fail", json!({"message": "m", "retry": true}), "retry"),
            ("core.delay", json!({"ms": 1, "seconds": 1}), "seconds"),
            (
                "core.http",
                json!({"method": "GET", "url": "http://127.0.0.1/", "verb": "GET"}),
                "verb",
            ),
        ];
        for (action, arguments, name) in cases {
            let error = invoke(action, arguments, 1)
                .await
                .expect_err("unknown argument");
            assert_eq!(error.code(), "invalid_arguments", "{action}");
            assert!(!error.is_retryable(), "{action}");
            assert!(error.message().contains(name), "{action}: {error}");
        }
    }

    #[tokio::test]
    async fn arguments_of_the_wrong_shape_are_rejected() {
        let cases = [
            ("core.echo", json!([1, 2])),
            ("core.fail_until", json!({})),
            ("core.fail", json!({"message": 3})),
            ("core.delay", json!({"ms": -1})),
            (
                "core.http",
                json!({"method": "FETCH", "url": "http://127.0.0.1/"}),
            ),
            (
                "core.http",
                json!({"method": "GET", "url": "ftp://127.0.0.1/"}),
            ),
            (
                "core.http",
                json!({"method": "GET", "url": "http://127.0.0.1/", "timeout_ms": 0}),
            ),
        ];
        for (action, arguments) in cases {
            let error = invoke(action, arguments.clone(), 1)
                .await
                .expect_err("wrong shape");
            assert_eq!(error.code(), "invalid_arguments", "{action} {arguments}");
        }
    }

    #[tokio::test]
    async fn core_lists_every_designed_action() {
        let registry = Registry::with_builtin();
        for action in ["noop", "echo", "fail_until", "fail", "delay", "http"] {
            let full_name = format!("core.{action}");
            let (connector, spec) = registry.action(&full_name).expect("built-in action");
            assert_eq!(connector.name(), NAME);
            assert!(!spec.description.is_empty(), "{full_name}");
        }
        assert_eq!(registry.connectors().count(), 1);
    }

    #[tokio::test]
    async fn unknown_core_action_called_directly_is_permanent() {
        let connector: Arc<dyn Connector> = Arc::new(CoreConnector::new());
        let error = connector
            .invoke(invocation("teleport", json!({}), 1))
            .await
            .expect_err("no such action");
        assert_eq!(error.code(), "unknown_action");
    }

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
