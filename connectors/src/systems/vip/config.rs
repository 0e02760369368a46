//! `[connectors.vip]`: where VIP lives and how to reach it, and its checks.

use std::time::Duration;

use serde::Deserialize;

use crate::config::checks::Checks;
use crate::config::common::Error;

/// `[connectors.vip]`: the VIP distribution API (our generic design).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VipConfig {
    /// The host root; paths start with `/v1`.
    pub base_url: String,
    /// The variable holding the OAuth client id.
    pub client_id_env: String,
    /// The variable holding the OAuth client secret.
    pub client_secret_env: String,
    /// The OAuth scope to ask for.
    #[serde(default = "default_vip_scope")]
    pub scope: String,
    /// Per-request timeout.
    #[serde(
        default = "crate::config::common::default_timeout",
        deserialize_with = "crate::config::common::duration"
    )]
    pub timeout: Duration,
}

fn default_vip_scope() -> String {
    "distribution.read distribution.write".to_owned()
}

impl VipConfig {
    /// Checks the section; errors name `connectors.vip.<key>`.
    pub(crate) fn check(&self, checks: &Checks<'_>) -> Result<(), Error> {
        let at = |field: &str| format!("connectors.vip.{field}");
        checks.url(&at("base_url"), &self.base_url)?;
        checks.env(&at("client_id_env"), &self.client_id_env)?;
        checks.env(&at("client_secret_env"), &self.client_secret_env)?;
        checks.positive(&at("timeout"), self.timeout)?;
        Ok(())
    }
}
