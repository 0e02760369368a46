//! How a connector call fails: [`Error`], retryable or permanent, with a stable `code`
//! and the system's message, and how it is classified from an HTTP status or a transport
//! error. A leaf: the connector boundary and the change feeds both return [`Result`].

use std::time::Duration;

use gridflow_core::ErrorInfo;

/// The result of a connector call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

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
    /// The same error with its message passed through `change`; its class, code and
    /// retry-after hint stay as they are.
    pub(crate) fn map_message(self, change: impl FnOnce(String) -> String) -> Self {
        match self {
            Self::Retryable {
                code,
                message,
                retry_after,
            } => Self::Retryable {
                code,
                message: change(message),
                retry_after,
            },
            Self::Permanent { code, message } => Self::Permanent {
                code,
                message: change(message),
            },
        }
    }

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
    fn error_converts_to_history_error_info() {
        let info = ErrorInfo::from(Error::from_status(429, None, "slow down".to_owned()));
        assert_eq!(info.code, "rate_limited");
        assert_eq!(info.message, "slow down");
        assert!(info.retryable);
    }
}
