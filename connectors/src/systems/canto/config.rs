//! `[connectors.canto]`: where Canto lives and how to reach it, and its checks.

use std::time::Duration;

use serde::Deserialize;

use crate::config::checks::Checks;
use crate::config::common::Error;

/// `[connectors.canto]`: the Canto DAM REST API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CantoConfig {
    /// The tenant's host root (`https://acme.canto.com`); paths start with `/api/v1`.
    pub base_url: String,
    /// The OAuth server's root (`https://oauth.canto.com`).
    pub oauth_url: String,
    /// The variable holding the App ID.
    pub app_id_env: String,
    /// The variable holding the App Secret.
    pub app_secret_env: String,
    /// The custom (`additional`) field holding the start of the usage rights.
    #[serde(default = "default_canto_valid_from_field")]
    pub valid_from_field: String,
    /// The custom (`additional`) field holding the end of the usage rights.
    #[serde(default = "default_canto_valid_until_field")]
    pub valid_until_field: String,
    /// Per-request timeout.
    #[serde(
        default = "crate::config::common::default_timeout",
        deserialize_with = "crate::config::common::duration"
    )]
    pub timeout: Duration,
    /// How long `create_version` waits for Canto to process an upload before it fails
    /// (retryable) naming the upload.
    #[serde(
        default = "default_canto_upload_wait",
        deserialize_with = "crate::config::common::duration"
    )]
    pub upload_wait: Duration,
    /// How often `create_version` asks Canto for the upload's status meanwhile.
    #[serde(
        default = "default_canto_upload_poll_interval",
        deserialize_with = "crate::config::common::duration"
    )]
    pub upload_poll_interval: Duration,
}

/// The default of `connectors.canto.upload_wait`.
pub const DEFAULT_CANTO_UPLOAD_WAIT: Duration = Duration::from_secs(120);

/// The default of `connectors.canto.upload_poll_interval`.
pub const DEFAULT_CANTO_UPLOAD_POLL_INTERVAL: Duration = Duration::from_secs(2);

fn default_canto_valid_from_field() -> String {
    "Usage Start".to_owned()
}

fn default_canto_valid_until_field() -> String {
    "Usage Expiry".to_owned()
}

fn default_canto_upload_wait() -> Duration {
    DEFAULT_CANTO_UPLOAD_WAIT
}

fn default_canto_upload_poll_interval() -> Duration {
    DEFAULT_CANTO_UPLOAD_POLL_INTERVAL
}

impl CantoConfig {
    /// Checks the section; errors name `connectors.canto.<key>`.
    pub(crate) fn check(&self, checks: &Checks<'_>) -> Result<(), Error> {
        let at = |field: &str| format!("connectors.canto.{field}");
        checks.url(&at("base_url"), &self.base_url)?;
        checks.url(&at("oauth_url"), &self.oauth_url)?;
        checks.env(&at("app_id_env"), &self.app_id_env)?;
        checks.env(&at("app_secret_env"), &self.app_secret_env)?;
        checks.positive(&at("timeout"), self.timeout)?;
        checks.positive(&at("upload_wait"), self.upload_wait)?;
        checks.positive(&at("upload_poll_interval"), self.upload_poll_interval)?;
        Ok(())
    }
}
