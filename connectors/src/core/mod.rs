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
//! | `http` | `{method, url, headers?, body?, timeout_ms?}`: one HTTP request, output `{status, headers, body}`; only to destinations `[core_http]` permits, with `${secrets.NAME}` references resolved when it runs (see `http_action.rs`) |
//!
//! `fail_until` counts with the invocation's attempt number, so it keeps no state and
//! behaves the same after a restart.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::config::CoreHttpConfig;
use crate::connector::{ActionSpec, Connector, Error, Invocation, Result};

mod http_action;

use http_action::{DEFAULT_HTTP_TIMEOUT_MS, HttpAction, MAX_HTTP_TIMEOUT_MS};
pub use http_action::{
    SECRET_VARIABLE_PREFIX, SecretLookup, secret_variable, secrets_from_environment,
};

/// The connector's name.
pub const NAME: &str = "core";

/// The error code of every failure that `fail` and `fail_until` inject.
pub const INJECTED: &str = "injected";

/// The longest `core.delay`: one day.
const MAX_DELAY_MS: u64 = 86_400_000;

/// The built-in connector. Cheap to share: it holds the action list and one HTTP client.
#[derive(Debug)]
pub struct CoreConnector {
    actions: Vec<ActionSpec>,
    http: HttpAction,
}

impl CoreConnector {
    /// The connector with the default `[core_http]` settings (no private destination) and
    /// secrets from the environment.
    pub fn new() -> Self {
        Self::with_config(&CoreHttpConfig::default())
    }

    /// The connector with `[core_http]` settings and secrets from the environment.
    pub fn with_config(config: &CoreHttpConfig) -> Self {
        Self::with_secrets(config, http_action::secrets_from_environment())
    }

    /// The connector with `[core_http]` settings and secrets from `secrets`.
    pub fn with_secrets(config: &CoreHttpConfig, secrets: SecretLookup) -> Self {
        Self {
            actions: action_specs(),
            http: HttpAction::new(config, secrets),
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

    fn description(&self) -> &str {
        "Built into gridflow, needs no configuration: no-op, echo, failures and delays for tests and glue, and a generic HTTP request."
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
            "http" => self.http.invoke(&invocation).await,
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
            effects: crate::effects::Effects::default(),
        },
        ActionSpec {
            name: "echo".to_owned(),
            description: "Outputs its arguments unchanged.".to_owned(),
            arguments: json!({"type": "object"}),
            output: json!({"type": "object"}),
            effects: crate::effects::Effects::default(),
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
            effects: crate::effects::Effects::default(),
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
            effects: crate::effects::Effects::default(),
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
            effects: crate::effects::Effects::default(),
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
            effects: crate::effects::Effects::default(),
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
}
