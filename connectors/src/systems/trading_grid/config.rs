//! `[connectors.trading_grid]`: where Trading Grid lives and how to reach it, and its checks.

use std::time::Duration;

use serde::Deserialize;

use crate::config::checks::Checks;
use crate::config::common::Error;

/// `[connectors.trading_grid]`: OpenText Trading Grid (Community Management and `/hub/v1`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradingGridConfig {
    /// The API host root (`https://apigrid.opentext.com`).
    pub base_url: String,
    /// Our company's id (BUID) on the network.
    pub company_id: String,
    /// The variable holding the OAuth consumer key.
    pub client_id_env: String,
    /// The variable holding the OAuth consumer secret.
    pub client_secret_env: String,
    /// Per-request timeout.
    #[serde(
        default = "crate::config::common::default_timeout",
        deserialize_with = "crate::config::common::duration"
    )]
    pub timeout: Duration,
    /// How often the poller asks for changes.
    #[serde(
        default = "crate::config::common::default_poll_interval",
        deserialize_with = "crate::config::common::duration"
    )]
    pub poll_interval: Duration,
}

impl TradingGridConfig {
    /// Checks the section; errors name `connectors.trading_grid.<key>`.
    pub(crate) fn check(&self, checks: &Checks<'_>) -> Result<(), Error> {
        let at = |field: &str| format!("connectors.trading_grid.{field}");
        checks.url(&at("base_url"), &self.base_url)?;
        checks.env(&at("client_id_env"), &self.client_id_env)?;
        checks.env(&at("client_secret_env"), &self.client_secret_env)?;
        checks.positive(&at("timeout"), self.timeout)?;
        checks.positive(&at("poll_interval"), self.poll_interval)?;
        if self.company_id.trim().is_empty() {
            return Err(checks.error(at("company_id"), "must not be empty".to_owned()));
        }
        Ok(())
    }
}
