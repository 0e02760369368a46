//! `[connectors.otmm]`: where OTMM lives and how to reach it, and its checks.

use std::time::Duration;

use serde::Deserialize;

use crate::config::checks::Checks;
use crate::config::common::Error;

/// `[connectors.otmm]`: OpenText Media Management, REST `otmmapi` v6.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtmmConfig {
    /// The API root including `/otmmapi/v6`.
    pub base_url: String,
    /// The variable holding the user name.
    pub username_env: String,
    /// The variable holding the password.
    pub password_env: String,
    /// The variable holding the OAuth client id.
    pub client_id_env: String,
    /// The variable holding the OAuth client secret.
    pub client_secret_env: String,
    /// The metadata field that carries the approval state.
    #[serde(default = "default_approval_field")]
    pub approval_field: String,
    /// Values of that field that mean approved.
    #[serde(default = "default_approved_values")]
    pub approved_values: Vec<String>,
    /// Values that mean pending.
    #[serde(default = "default_pending_values")]
    pub pending_values: Vec<String>,
    /// Values that mean rejected.
    #[serde(default = "default_rejected_values")]
    pub rejected_values: Vec<String>,
    /// Values that mean restricted.
    #[serde(default = "default_restricted_values")]
    pub restricted_values: Vec<String>,
    /// The field holding the start of the usage rights, if the model has one.
    #[serde(default)]
    pub valid_from_field: Option<String>,
    /// The field holding the end of the usage rights.
    #[serde(default = "default_valid_until_field")]
    pub valid_until_field: Option<String>,
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

fn default_approval_field() -> String {
    "CUSTOM.FIELD.STATUS".to_owned()
}

fn default_approved_values() -> Vec<String> {
    vec!["Approved".to_owned()]
}

fn default_pending_values() -> Vec<String> {
    vec!["Pending".to_owned(), "In Review".to_owned()]
}

fn default_rejected_values() -> Vec<String> {
    vec!["Rejected".to_owned()]
}

fn default_restricted_values() -> Vec<String> {
    vec!["Restricted".to_owned()]
}

fn default_valid_until_field() -> Option<String> {
    Some("ARTESIA.FIELD.EXPIRATIONDATE".to_owned())
}

impl OtmmConfig {
    /// Checks the section; errors name `connectors.otmm.<key>`.
    pub(crate) fn check(&self, checks: &Checks<'_>) -> Result<(), Error> {
        let at = |field: &str| format!("connectors.otmm.{field}");
        checks.url(&at("base_url"), &self.base_url)?;
        checks.env(&at("username_env"), &self.username_env)?;
        checks.env(&at("password_env"), &self.password_env)?;
        checks.env(&at("client_id_env"), &self.client_id_env)?;
        checks.env(&at("client_secret_env"), &self.client_secret_env)?;
        checks.positive(&at("timeout"), self.timeout)?;
        checks.positive(&at("poll_interval"), self.poll_interval)?;
        if self.approved_values.is_empty() {
            return Err(checks.error(
                at("approved_values"),
                "must list at least one value".to_owned(),
            ));
        }
        Ok(())
    }
}
