//! What every section of `gridflow.toml` shares: the [`Error`] naming file and key, the
//! default durations, and the duration format. A leaf, so each system's own section
//! (`systems/<name>/config.rs`) can use it without depending on the whole file's type.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The default poll interval of systems without webhooks.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(60);

/// A configuration error, naming the file and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct Error {
    /// The configuration file (or `environment`).
    pub file: String,
    /// The dotted key (`connectors.vip.base_url`), or `(file)` for the file as a whole.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

pub(crate) fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

pub(crate) fn default_poll_interval() -> Duration {
    DEFAULT_POLL_INTERVAL
}

/// A duration written as `"30s"`, `"1m"`, `"500ms"` (humantime).
pub(crate) fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text)
        .map_err(|error| serde::de::Error::custom(format!("invalid duration {text:?}: {error}")))
}
