//! The connector boundary: the [`Connector`] trait, what an action looks like
//! ([`ActionSpec`]), what one attempt of it receives ([`Invocation`]), and how it fails
//! ([`Error`]).
//!
//! A connector performs one attempt and reports the outcome.
//! It never retries on its own: the core decides from the step's retry policy, using
//! [`Error::is_retryable`] and the [`Error::retry_after`] hint.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gridflow_core::{ErrorInfo, InstanceId, StepId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The result of a connector call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One external system (or the built-in `core`), seen as a set of named actions.
///
/// Implementations are shared between tasks behind an `Arc` and must be cheap to call
/// concurrently: keep one HTTP client per connector and no per-call locks.
/// They must never log credentials, request headers that carry them, or raw arguments.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The connector's name, the prefix of its actions in definitions (`core`, `iconik`).
    ///
    /// It must not contain a `.`, which separates the connector from the action.
    fn name(&self) -> &str;

    /// Every action this connector offers, with its argument and output schemas.
    ///
    /// The [`Registry`](crate::Registry) reads the list once, when the connector is
    /// registered.
    fn actions(&self) -> &[ActionSpec];

    /// Runs one attempt of an action and returns its output.
    ///
    /// Through the [`Registry`](crate::Registry), `invocation.arguments` has already been
    /// checked against the action's argument schema; a direct caller gets no such
    /// guarantee, so implementations still reject arguments they cannot use with a
    /// permanent `invalid_arguments` error rather than panic.
    async fn invoke(&self, invocation: Invocation) -> Result<Value>;

    /// The system's change feed, when gridflow polls it for changes (systems without
    /// webhooks); `None` for the others.
    fn change_feed(self: Arc<Self>) -> Option<crate::feed::SharedFeed> {
        None
    }
}

/// One action of a connector, as listed by `GET /api/v1/connectors` and checked by
/// `gridflow validate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionSpec {
    /// The action's name without the connector prefix (`search_assets`).
    pub name: String,
    /// One sentence for analysts: what the action does.
    pub description: String,
    /// JSON Schema (2020-12) of the `with` arguments; objects close it with
    /// `additionalProperties: false` so that a misspelt argument is rejected.
    pub arguments: Value,
    /// JSON Schema (2020-12) of the output.
    pub output: Value,
}

/// What the runtime appends to the key of a compensation's attempt.
const COMPENSATE_SUFFIX: &str = ":compensate";

/// Everything one attempt of an action receives.
#[derive(Clone, PartialEq)]
pub struct Invocation {
    /// The action's name without the connector prefix.
    pub action: String,
    /// The evaluated `with` arguments.
    pub arguments: Value,
    /// `<instance>:<step>[:<item>]:<attempt>` (DESIGN.md §3), passed on to systems that
    /// honour an idempotency key.
    pub idempotency_key: String,
    /// The attempt number, starting at 1.
    pub attempt: u32,
    /// The instance the step belongs to.
    pub instance_id: InstanceId,
    /// The step being run.
    pub step_id: StepId,
    /// The fan-out item's index, when the step runs `for_each`.
    pub item: Option<u32>,
}

impl Invocation {
    /// An invocation whose idempotency key is derived from its ids and attempt.
    pub fn new(
        action: impl Into<String>,
        arguments: Value,
        instance_id: InstanceId,
        step_id: StepId,
        item: Option<u32>,
        attempt: u32,
    ) -> Self {
        let idempotency_key = Self::idempotency_key_for(&instance_id, &step_id, item, attempt);
        Self {
            action: action.into(),
            arguments,
            idempotency_key,
            attempt,
            instance_id,
            step_id,
            item,
        }
    }

    /// The key connectors send to the system as its idempotency key:
    /// `<instance>:<step>[:<item>]`, the attempt's key without the attempt.
    ///
    /// It is the same on every attempt of one action, so when an attempt's effect took
    /// place but its response was lost (a timeout, a dropped connection), the retry is
    /// answered from the system's stored reply instead of taking effect twice: one effect
    /// per logical action. Systems that honour a key store the replies of requests that
    /// took effect only, so a retry after a 429 or 5xx still runs (ARCHITECTURE.md,
    /// "Idempotency keys").
    pub fn action_key(&self) -> String {
        let (key, compensation) = match self.idempotency_key.strip_suffix(COMPENSATE_SUFFIX) {
            Some(key) => (key, COMPENSATE_SUFFIX),
            None => (self.idempotency_key.as_str(), ""),
        };
        let action = key
            .rsplit_once(':')
            .map_or(key, |(action, _attempt)| action);
        format!("{action}{compensation}")
    }

    /// The idempotency key of one attempt: `<instance>:<step>[:<item>]:<attempt>`.
    pub fn idempotency_key_for(
        instance_id: &InstanceId,
        step_id: &StepId,
        item: Option<u32>,
        attempt: u32,
    ) -> String {
        match item {
            Some(item) => format!("{instance_id}:{step_id}:{item}:{attempt}"),
            None => format!("{instance_id}:{step_id}:{attempt}"),
        }
    }
}

/// Arguments may hold credentials (an `Authorization` header for `core.http`), so the
/// debug form leaves them out.
impl fmt::Debug for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invocation")
            .field("action", &self.action)
            .field("idempotency_key", &self.idempotency_key)
            .field("attempt", &self.attempt)
            .field("instance_id", &self.instance_id)
            .field("step_id", &self.step_id)
            .field("item", &self.item)
            .finish_non_exhaustive()
    }
}

/// Why an attempt failed, and whether another attempt could succeed.
///
/// `code` is a stable, machine-readable class (`rate_limited`, `not_found`) that a step's
/// `retry.non_retryable` list can name; `message` is the system's own message.
/// Neither may contain credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Another attempt may succeed: timeouts, rate limits, server errors, lost connections.
    #[error("{code}: {message}")]
    Retryable {
        /// Machine-readable class.
        code: String,
        /// The system's message.
        message: String,
        /// How long the system asked us to wait (`Retry-After`), if it did.
        retry_after: Option<Duration>,
    },
    /// Retrying the same request cannot help: bad arguments, missing objects, refused
    /// credentials.
    #[error("{code}: {message}")]
    Permanent {
        /// Machine-readable class.
        code: String,
        /// The system's message.
        message: String,
    },
}

impl Error {
    /// A retryable failure without a retry-after hint.
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Retryable {
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// A failure that retrying cannot mend.
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Permanent {
            code: code.into(),
            message: message.into(),
        }
    }

    /// The arguments do not fit the action: permanent, code `invalid_arguments`.
    pub fn invalid_arguments(message: impl Into<String>) -> Self {
        Self::permanent("invalid_arguments", message)
    }

    /// Whether another attempt could succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }

    /// The machine-readable class.
    pub fn code(&self) -> &str {
        match self {
            Self::Retryable { code, .. } | Self::Permanent { code, .. } => code,
        }
    }

    /// The system's message.
    pub fn message(&self) -> &str {
        match self {
            Self::Retryable { message, .. } | Self::Permanent { message, .. } => message,
        }
    }

    /// How long the system asked us to wait before the next attempt.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Retryable { retry_after, .. } => *retry_after,
            Self::Permanent { .. } => None,
        }
    }

    /// Classifies an HTTP status that is not a success.
    ///
    /// 408 (`timeout`), 429 (`rate_limited`) and 5xx (`server_error`) are retryable and keep
    /// `retry_after`; 401 `unauthorized`, 403 `forbidden`, 404 `not_found`, 409 `conflict`,
    /// 400 and 422 `invalid`, any other 4xx `client_error` and anything else
    /// `unexpected_status` are permanent.
    pub fn from_status(status: u16, retry_after: Option<Duration>, message: String) -> Self {
        let retryable_code = match status {
            408 => Some("timeout"),
            429 => Some("rate_limited"),
            500..=599 => Some("server_error"),
            _ => None,
        };
        if let Some(code) = retryable_code {
            return Self::Retryable {
                code: code.to_owned(),
                message,
                retry_after,
            };
        }
        let code = match status {
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            409 => "conflict",
            400 | 422 => "invalid",
            402..=499 => "client_error",
            _ => "unexpected_status",
        };
        Self::permanent(code, message)
    }

    /// Classifies a transport failure.
    ///
    /// Timeouts (`timeout`), failed connections (`unavailable`) and connections lost
    /// mid-request (`transport`) are retryable; a request that cannot be built
    /// (`invalid_request`), too many redirects (`redirect`) and an undecodable response
    /// (`invalid_response`) are permanent.
    /// The message never contains the URL, whose query string may carry credentials; it
    /// names the host instead.
    pub fn from_reqwest(error: &reqwest::Error) -> Self {
        if let Some(status) = error.status() {
            return Self::from_status(status.as_u16(), None, describe_reqwest(error));
        }
        let message = describe_reqwest(error);
        if error.is_timeout() {
            Self::retryable("timeout", message)
        } else if error.is_connect() {
            Self::retryable("unavailable", message)
        } else if error.is_builder() {
            Self::permanent("invalid_request", message)
        } else if error.is_redirect() {
            Self::permanent("redirect", message)
        } else if error.is_decode() {
            Self::permanent("invalid_response", message)
        } else {
            // Request and body errors: the connection broke while the request or the
            // response was in flight, which a later attempt may not meet.
            Self::retryable("transport", message)
        }
    }
}

/// The reqwest error's kind and source chain, with the host instead of the full URL.
fn describe_reqwest(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "request timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_builder() {
        "could not build request"
    } else if error.is_redirect() {
        "too many redirects"
    } else if error.is_decode() {
        "could not decode response"
    } else if error.is_body() {
        "request or response body failed"
    } else {
        "request failed"
    };
    let mut message = match error.url().and_then(|url| url.host_str()) {
        Some(host) => format!("{kind} (host {host})"),
        None => kind.to_owned(),
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

impl From<&Error> for ErrorInfo {
    fn from(error: &Error) -> Self {
        Self {
            code: error.code().to_owned(),
            message: error.message().to_owned(),
            retryable: error.is_retryable(),
        }
    }
}

impl From<Error> for ErrorInfo {
    fn from(error: Error) -> Self {
        Self::from(&error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_status_classifies_every_class() {
        let hint = Some(Duration::from_secs(3));
        let cases: &[(u16, &str, bool)] = &[
            (400, "invalid", false),
            (401, "unauthorized", false),
            (402, "client_error", false),
            (403, "forbidden", false),
            (404, "not_found", false),
            (408, "timeout", true),
            (409, "conflict", false),
            (410, "client_error", false),
            (422, "invalid", false),
            (429, "rate_limited", true),
            (500, "server_error", true),
            (503, "server_error", true),
            (599, "server_error", true),
            (302, "unexpected_status", false),
        ];
        for &(status, code, retryable) in cases {
            let error = Error::from_status(status, hint, format!("status {status}"));
            assert_eq!(error.code(), code, "status {status}");
            assert_eq!(error.is_retryable(), retryable, "status {status}");
            assert_eq!(error.message(), format!("status {status}"));
            let expected_hint = if retryable { hint } else { None };
            assert_eq!(error.retry_after(), expected_hint, "status {status}");
        }
    }

    #[test]
    fn idempotency_key_includes_item_only_in_fan_out() {
        let instance_id = InstanceId::from("i-1");
        let step_id = StepId::from("deliver");
        assert_eq!(
            Invocation::idempotency_key_for(&instance_id, &step_id, None, 2),
            "i-1:deliver:2"
        );
        assert_eq!(
            Invocation::idempotency_key_for(&instance_id, &step_id, Some(7), 1),
            "i-1:deliver:7:1"
        );
        let invocation = Invocation::new(
            "noop",
            serde_json::json!({}),
            instance_id,
            step_id,
            Some(0),
            3,
        );
        assert_eq!(invocation.idempotency_key, "i-1:deliver:0:3");
        assert_eq!(invocation.action_key(), "i-1:deliver:0");
        let retry = Invocation::new(
            "noop",
            serde_json::json!({}),
            InstanceId::from("i-1"),
            StepId::from("deliver"),
            Some(0),
            4,
        );
        assert_eq!(
            retry.action_key(),
            invocation.action_key(),
            "every attempt of one action sends the same key"
        );
        let mut compensation = retry.clone();
        compensation.idempotency_key = "i-1:deliver:0:4:compensate".to_owned();
        assert_eq!(compensation.action_key(), "i-1:deliver:0:compensate");
    }

    #[test]
    fn invocation_debug_leaves_out_arguments() {
        let invocation = Invocation::new(
            "http",
            serde_json::json!({"headers": {"Authorization": "Bearer s3cr3t"}}),
            InstanceId::from("i-1"),
            StepId::from("call"),
            None,
            1,
        );
        let debug = format!("{invocation:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(debug.contains("i-1:call:1"), "{debug}");
    }

    #[test]
    fn error_converts_to_history_error_info() {
        let info = ErrorInfo::from(Error::from_status(429, None, "slow down".to_owned()));
        assert_eq!(info.code, "rate_limited");
        assert_eq!(info.message, "slow down");
        assert!(info.retryable);
    }
}
