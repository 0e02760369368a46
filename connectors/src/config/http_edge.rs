//! `[http]` of `gridflow.toml`: the limits of the server's HTTP edge.
//!
//! ```toml
//! [http]
//! header_read_timeout = "10s"   # a connection that sends no complete request head is closed
//! request_timeout = "60s"       # a request not answered by then gets 408
//! max_connections = 1024        # more wait in the listen queue
//! ```

use std::time::Duration;

use serde::Deserialize;

/// How long a client may take to send a request's head.
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request may take until its response starts.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Open connections served at once.
const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// A connection whose request head (request line and headers) is not complete within
    /// this time is closed: half-open and slow-header connections cannot pile up.
    #[serde(
        default = "header_read_timeout",
        deserialize_with = "super::common::duration"
    )]
    pub header_read_timeout: Duration,
    /// A request whose response has not started within this time is answered 408. A
    /// streamed body (the audit export) may take longer once started.
    #[serde(
        default = "request_timeout",
        deserialize_with = "super::common::duration"
    )]
    pub request_timeout: Duration,
    /// Connections served at once; further ones wait in the listen queue until one closes.
    #[serde(default = "max_connections")]
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

fn header_read_timeout() -> Duration {
    DEFAULT_HEADER_READ_TIMEOUT
}

fn request_timeout() -> Duration {
    DEFAULT_REQUEST_TIMEOUT
}

fn max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}

impl HttpConfig {
    /// `(key, message)` of the first problem.
    pub(super) fn check(&self) -> Result<(), (String, String)> {
        for (key, value) in [
            ("http.header_read_timeout", self.header_read_timeout),
            ("http.request_timeout", self.request_timeout),
        ] {
            if value.is_zero() {
                return Err((key.to_owned(), "must be greater than zero".to_owned()));
            }
        }
        if self.max_connections == 0 {
            return Err((
                "http.max_connections".to_owned(),
                "must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    #[test]
    fn defaults_apply_and_bad_values_are_named() {
        let config = Config::parse("", "gridflow.toml").unwrap();
        assert_eq!(config.http, HttpConfig::default());
        let config = Config::parse(
            "[http]\nheader_read_timeout = \"300ms\"\nmax_connections = 8\n",
            "gridflow.toml",
        )
        .unwrap();
        assert_eq!(config.http.header_read_timeout, Duration::from_millis(300));
        assert_eq!(config.http.max_connections, 8);
        assert_eq!(config.http.request_timeout, DEFAULT_REQUEST_TIMEOUT);
        for (text, key) in [
            (
                "[http]\nheader_read_timeout = \"0s\"\n",
                "http.header_read_timeout",
            ),
            ("[http]\nrequest_timeout = \"0s\"\n", "http.request_timeout"),
            ("[http]\nmax_connections = 0\n", "http.max_connections"),
        ] {
            let error = Config::parse(text, "gridflow.toml").unwrap_err();
            assert_eq!(error.key, key, "{error}");
        }
        let error = Config::parse("[http]\nrequest_timeout = \"soon\"\n", "g.toml").unwrap_err();
        assert!(error.to_string().contains("request_timeout"), "{error}");
    }
}
