//! `[connectors.iconik]`: where iconik lives and how to reach it, and its checks.

use std::time::Duration;

use serde::Deserialize;

use crate::config::checks::Checks;
use crate::config::common::Error;

/// `[connectors.iconik]`: the iconik MAM REST API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IconikConfig {
    /// The API root including `/API` (`https://app.iconik.io/API`).
    pub base_url: String,
    /// The variable holding the application id (`App-ID`).
    pub app_id_env: String,
    /// The variable holding the e-mail of the integration user.
    pub email_env: String,
    /// The variable holding that user's password.
    pub password_env: String,
    /// The metadata view read and written by default.
    pub metadata_view_id: String,
    /// The metadata field holding the start of the usage rights.
    #[serde(default = "default_iconik_valid_from_field")]
    pub valid_from_field: String,
    /// The metadata field holding the end of the usage rights.
    #[serde(default = "default_iconik_valid_until_field")]
    pub valid_until_field: String,
    /// Per-request timeout.
    #[serde(
        default = "crate::config::common::default_timeout",
        deserialize_with = "crate::config::common::duration"
    )]
    pub timeout: Duration,
}

fn default_iconik_valid_from_field() -> String {
    "rights_valid_from".to_owned()
}

fn default_iconik_valid_until_field() -> String {
    "rights_valid_until".to_owned()
}

impl IconikConfig {
    /// Checks the section; errors name `connectors.iconik.<key>`.
    pub(crate) fn check(&self, checks: &Checks<'_>) -> Result<(), Error> {
        let at = |field: &str| format!("connectors.iconik.{field}");
        checks.url(&at("base_url"), &self.base_url)?;
        checks.env(&at("app_id_env"), &self.app_id_env)?;
        checks.env(&at("email_env"), &self.email_env)?;
        checks.env(&at("password_env"), &self.password_env)?;
        checks.positive(&at("timeout"), self.timeout)?;
        if self.metadata_view_id.trim().is_empty() {
            return Err(checks.error(at("metadata_view_id"), "must not be empty".to_owned()));
        }
        Ok(())
    }
}
