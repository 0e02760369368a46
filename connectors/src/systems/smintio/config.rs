//! `[connectors.smintio]`: where Smint.io lives and how to reach it, and its checks.

use std::time::Duration;

use serde::Deserialize;

use crate::config::checks::Checks;
use crate::config::common::Error;

/// `[connectors.smintio]`: Smint.io's Content Licensing API (consumer, read-only).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmintioConfig {
    /// The CLAPI-C root (`https://acme.clapi.smint.io/consumer/v1`).
    pub base_url: String,
    /// The identity server's root (`https://acme.smint.io`); the token path is `/connect/token`.
    pub identity_url: String,
    /// The variable holding the OAuth client id.
    pub client_id_env: String,
    /// The variable holding the OAuth client secret.
    pub client_secret_env: String,
    /// The variable holding the refresh token obtained once through the authorization code flow.
    pub refresh_token_env: String,
    /// Per-request timeout.
    #[serde(
        default = "crate::config::common::default_timeout",
        deserialize_with = "crate::config::common::duration"
    )]
    pub timeout: Duration,
    /// How often the poller reads the change feed.
    #[serde(
        default = "crate::config::common::default_poll_interval",
        deserialize_with = "crate::config::common::duration"
    )]
    pub poll_interval: Duration,
}

impl SmintioConfig {
    /// Checks the section; errors name `connectors.smintio.<key>`.
    pub(crate) fn check(&self, checks: &Checks<'_>) -> Result<(), Error> {
        let at = |field: &str| format!("connectors.smintio.{field}");
        checks.url(&at("base_url"), &self.base_url)?;
        checks.url(&at("identity_url"), &self.identity_url)?;
        checks.env(&at("client_id_env"), &self.client_id_env)?;
        checks.env(&at("client_secret_env"), &self.client_secret_env)?;
        checks.env(&at("refresh_token_env"), &self.refresh_token_env)?;
        checks.positive(&at("timeout"), self.timeout)?;
        checks.positive(&at("poll_interval"), self.poll_interval)?;
        Ok(())
    }
}
