//! `gridflow.toml`: where each external system lives and how to reach it.
//!
//! The file names the environment variables that hold credentials, never the credentials
//! themselves. It is read and validated once at start; every error names the file and
//! the key (`gridflow.toml: connectors.vip.base_url: …`).
//!
//! ```toml
//! [sandbox]
//! state_dir = "gridflow-sandbox"        # where `--sandbox` keeps simulator state
//!
//! [connectors.trading_grid]
//! base_url = "https://apigrid.opentext.com"
//! company_id = "GC00804444LX"
//! client_id_env = "TG_CONSUMER_KEY"
//! client_secret_env = "TG_CONSUMER_SECRET"
//! timeout = "30s"
//! poll_interval = "1m"
//!
//! [connectors.otmm]
//! base_url = "https://dam.example.com/otmmapi/v6"
//! username_env = "OTMM_USERNAME"
//! password_env = "OTMM_PASSWORD"
//! client_id_env = "OTMM_CLIENT_ID"
//! client_secret_env = "OTMM_CLIENT_SECRET"
//! approval_field = "CUSTOM.FIELD.STATUS"
//! approved_values = ["Approved"]
//! valid_from_field = "CUSTOM.FIELD.RIGHTS_FROM"
//! valid_until_field = "ARTESIA.FIELD.EXPIRATIONDATE"
//!
//! [connectors.vip]
//! base_url = "https://vip.example.com"
//! client_id_env = "VIP_CLIENT_ID"
//! client_secret_env = "VIP_CLIENT_SECRET"
//! scope = "distribution.read distribution.write"
//!
//! [connectors.iconik]
//! base_url = "https://app.iconik.io/API"
//! app_id_env = "ICONIK_APP_ID"
//! email_env = "ICONIK_EMAIL"
//! password_env = "ICONIK_PASSWORD"
//! metadata_view_id = "7c1e5a90-3b2d-4f61-9a8e-0d4c2b1a6f01"
//!
//! [connectors.canto]
//! base_url = "https://acme.canto.com"
//! oauth_url = "https://oauth.canto.com"
//! app_id_env = "CANTO_APP_ID"
//! app_secret_env = "CANTO_APP_SECRET"
//! upload_wait = "2m"                    # create_version: how long to wait for processing
//! upload_poll_interval = "2s"
//!
//! [connectors.smintio]
//! base_url = "https://acme.clapi.smint.io/consumer/v1"
//! identity_url = "https://acme.smint.io"
//! client_id_env = "SMINTIO_CLIENT_ID"
//! client_secret_env = "SMINTIO_CLIENT_SECRET"
//! refresh_token_env = "SMINTIO_REFRESH_TOKEN"
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::http::Secret;

/// The file read when none is named.
pub const DEFAULT_FILE: &str = "gridflow.toml";

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

/// The whole `gridflow.toml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Sandbox settings.
    #[serde(default)]
    pub sandbox: SandboxConfig,
    /// One table per configured system.
    #[serde(default)]
    pub connectors: ConnectorsConfig,
}

/// `[sandbox]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// Where the simulators keep their state files.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            state_dir: default_state_dir(),
        }
    }
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("gridflow-sandbox")
}

/// `[connectors.*]`: a system without a table is not configured.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorsConfig {
    /// `[connectors.trading_grid]`.
    pub trading_grid: Option<TradingGridConfig>,
    /// `[connectors.otmm]`.
    pub otmm: Option<OtmmConfig>,
    /// `[connectors.vip]`.
    pub vip: Option<VipConfig>,
    /// `[connectors.iconik]`.
    pub iconik: Option<IconikConfig>,
    /// `[connectors.canto]`.
    pub canto: Option<CantoConfig>,
    /// `[connectors.smintio]`.
    pub smintio: Option<SmintioConfig>,
}

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
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// How often the poller asks for changes.
    #[serde(default = "default_poll_interval", deserialize_with = "duration")]
    pub poll_interval: Duration,
}

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
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// How often the poller asks for changes.
    #[serde(default = "default_poll_interval", deserialize_with = "duration")]
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
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

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
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

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
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// How long `create_version` waits for Canto to process an upload before it fails
    /// (retryable) naming the upload.
    #[serde(default = "default_canto_upload_wait", deserialize_with = "duration")]
    pub upload_wait: Duration,
    /// How often `create_version` asks Canto for the upload's status meanwhile.
    #[serde(
        default = "default_canto_upload_poll_interval",
        deserialize_with = "duration"
    )]
    pub upload_poll_interval: Duration,
}

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
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

fn default_canto_valid_from_field() -> String {
    "Usage Start".to_owned()
}

fn default_canto_valid_until_field() -> String {
    "Usage Expiry".to_owned()
}

fn default_iconik_valid_from_field() -> String {
    "rights_valid_from".to_owned()
}

fn default_iconik_valid_until_field() -> String {
    "rights_valid_until".to_owned()
}

fn default_vip_scope() -> String {
    "distribution.read distribution.write".to_owned()
}

/// The default of `connectors.canto.upload_wait`.
pub const DEFAULT_CANTO_UPLOAD_WAIT: Duration = Duration::from_secs(120);

/// The default of `connectors.canto.upload_poll_interval`.
pub const DEFAULT_CANTO_UPLOAD_POLL_INTERVAL: Duration = Duration::from_secs(2);

fn default_canto_upload_wait() -> Duration {
    DEFAULT_CANTO_UPLOAD_WAIT
}

fn default_canto_upload_poll_interval() -> Duration {
    DEFAULT_CANTO_UPLOAD_POLL_INTERVAL
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

fn default_poll_interval() -> Duration {
    DEFAULT_POLL_INTERVAL
}

/// A duration written as `"30s"`, `"1m"`, `"500ms"` (humantime).
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text)
        .map_err(|error| serde::de::Error::custom(format!("invalid duration {text:?}: {error}")))
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| Error {
            file: file.clone(),
            key: "(file)".to_owned(),
            message: format!("cannot read: {error}"),
        })?;
        Self::parse(&text, &file)
    }

    /// Parses and validates TOML text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, Error> {
        let config: Self = toml::from_str(text).map_err(|error| Error {
            file: file.to_owned(),
            key: error
                .span()
                .map(|span| key_at(text, span.start))
                .unwrap_or_else(|| "(file)".to_owned()),
            message: error.message().to_owned(),
        })?;
        config.validate(file)?;
        Ok(config)
    }

    fn validate(&self, file: &str) -> Result<(), Error> {
        let error = |key: String, message: String| Error {
            file: file.to_owned(),
            key,
            message,
        };
        let check_url = |key: &str, url: &str| -> Result<(), Error> {
            match reqwest::Url::parse(url) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(()),
                Ok(_) => Err(error(
                    key.to_owned(),
                    format!("{url:?} is not an http(s) URL"),
                )),
                Err(cause) => Err(error(
                    key.to_owned(),
                    format!("{url:?} is not a URL: {cause}"),
                )),
            }
        };
        let check_env = |key: &str, name: &str| -> Result<(), Error> {
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if valid {
                Ok(())
            } else {
                Err(error(
                    key.to_owned(),
                    format!(
                        "{name:?} is not an environment variable name (A-Z, 0-9, _); \
                         name the variable, never put the secret here"
                    ),
                ))
            }
        };
        let check_positive = |key: &str, value: Duration| -> Result<(), Error> {
            if value.is_zero() {
                Err(error(
                    key.to_owned(),
                    "must be greater than zero".to_owned(),
                ))
            } else {
                Ok(())
            }
        };
        if let Some(tg) = &self.connectors.trading_grid {
            let at = |field: &str| format!("connectors.trading_grid.{field}");
            check_url(&at("base_url"), &tg.base_url)?;
            check_env(&at("client_id_env"), &tg.client_id_env)?;
            check_env(&at("client_secret_env"), &tg.client_secret_env)?;
            check_positive(&at("timeout"), tg.timeout)?;
            check_positive(&at("poll_interval"), tg.poll_interval)?;
            if tg.company_id.trim().is_empty() {
                return Err(error(at("company_id"), "must not be empty".to_owned()));
            }
        }
        if let Some(otmm) = &self.connectors.otmm {
            let at = |field: &str| format!("connectors.otmm.{field}");
            check_url(&at("base_url"), &otmm.base_url)?;
            check_env(&at("username_env"), &otmm.username_env)?;
            check_env(&at("password_env"), &otmm.password_env)?;
            check_env(&at("client_id_env"), &otmm.client_id_env)?;
            check_env(&at("client_secret_env"), &otmm.client_secret_env)?;
            check_positive(&at("timeout"), otmm.timeout)?;
            check_positive(&at("poll_interval"), otmm.poll_interval)?;
            if otmm.approved_values.is_empty() {
                return Err(error(
                    at("approved_values"),
                    "must list at least one value".to_owned(),
                ));
            }
        }
        if let Some(vip) = &self.connectors.vip {
            let at = |field: &str| format!("connectors.vip.{field}");
            check_url(&at("base_url"), &vip.base_url)?;
            check_env(&at("client_id_env"), &vip.client_id_env)?;
            check_env(&at("client_secret_env"), &vip.client_secret_env)?;
            check_positive(&at("timeout"), vip.timeout)?;
        }
        if let Some(iconik) = &self.connectors.iconik {
            let at = |field: &str| format!("connectors.iconik.{field}");
            check_url(&at("base_url"), &iconik.base_url)?;
            check_env(&at("app_id_env"), &iconik.app_id_env)?;
            check_env(&at("email_env"), &iconik.email_env)?;
            check_env(&at("password_env"), &iconik.password_env)?;
            check_positive(&at("timeout"), iconik.timeout)?;
            if iconik.metadata_view_id.trim().is_empty() {
                return Err(error(
                    at("metadata_view_id"),
                    "must not be empty".to_owned(),
                ));
            }
        }
        if let Some(canto) = &self.connectors.canto {
            let at = |field: &str| format!("connectors.canto.{field}");
            check_url(&at("base_url"), &canto.base_url)?;
            check_url(&at("oauth_url"), &canto.oauth_url)?;
            check_env(&at("app_id_env"), &canto.app_id_env)?;
            check_env(&at("app_secret_env"), &canto.app_secret_env)?;
            check_positive(&at("timeout"), canto.timeout)?;
            check_positive(&at("upload_wait"), canto.upload_wait)?;
            check_positive(&at("upload_poll_interval"), canto.upload_poll_interval)?;
        }
        if let Some(smintio) = &self.connectors.smintio {
            let at = |field: &str| format!("connectors.smintio.{field}");
            check_url(&at("base_url"), &smintio.base_url)?;
            check_url(&at("identity_url"), &smintio.identity_url)?;
            check_env(&at("client_id_env"), &smintio.client_id_env)?;
            check_env(&at("client_secret_env"), &smintio.client_secret_env)?;
            check_env(&at("refresh_token_env"), &smintio.refresh_token_env)?;
            check_positive(&at("timeout"), smintio.timeout)?;
        }
        Ok(())
    }
}

/// The dotted key of the TOML line holding `offset`: the nearest table header above it
/// plus the key on that line, for parse errors whose message does not name the key.
fn key_at(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |index| index + 1);
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |index| line_start + index);
    let line = text[line_start..line_end].trim();
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|candidate| candidate.starts_with('['))
        .map(|header| {
            header
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned()
        });
    let key = line
        .split_once('=')
        .map(|(key, _)| key.trim().to_owned())
        .filter(|key| !key.starts_with('['));
    match (table, key) {
        (Some(table), Some(key)) => format!("{table}.{key}"),
        (Some(table), None) => table,
        (None, Some(key)) => key,
        (None, None) => format!("line {}", before.lines().count().max(1)),
    }
}

/// Reads the credential in the environment variable `variable`, named in errors by the
/// configuration `key` that names it. The value never appears in an error.
pub fn credential(key: &str, variable: &str) -> Result<Secret, Error> {
    match std::env::var(variable) {
        Ok(value) if !value.trim().is_empty() => Ok(Secret::new(value.trim())),
        Ok(_) => Err(Error {
            file: "environment".to_owned(),
            key: key.to_owned(),
            message: format!("environment variable {variable} is empty"),
        }),
        Err(_) => Err(Error {
            file: "environment".to_owned(),
            key: key.to_owned(),
            message: format!("environment variable {variable} is not set (or not UTF-8)"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
[sandbox]
state_dir = "sim-state"

[connectors.trading_grid]
base_url = "https://apigrid.opentext.com"
company_id = "GC00804444LX"
client_id_env = "TG_CONSUMER_KEY"
client_secret_env = "TG_CONSUMER_SECRET"
timeout = "20s"

[connectors.otmm]
base_url = "https://dam.example.com/otmmapi/v6"
username_env = "OTMM_USERNAME"
password_env = "OTMM_PASSWORD"
client_id_env = "OTMM_CLIENT_ID"
client_secret_env = "OTMM_CLIENT_SECRET"

[connectors.vip]
base_url = "https://vip.example.com"
client_id_env = "VIP_CLIENT_ID"
client_secret_env = "VIP_CLIENT_SECRET"
"#;

    #[test]
    fn full_file_parses_with_defaults() {
        let config = Config::parse(FULL, "gridflow.toml").unwrap();
        let tg = config.connectors.trading_grid.unwrap();
        assert_eq!(tg.timeout, Duration::from_secs(20));
        assert_eq!(tg.poll_interval, DEFAULT_POLL_INTERVAL);
        let otmm = config.connectors.otmm.unwrap();
        assert_eq!(otmm.approval_field, "CUSTOM.FIELD.STATUS");
        assert_eq!(config.sandbox.state_dir, PathBuf::from("sim-state"));
        assert!(config.connectors.vip.is_some());
    }

    #[test]
    fn empty_file_configures_nothing() {
        let config = Config::parse("", "gridflow.toml").unwrap();
        assert_eq!(config.connectors, ConnectorsConfig::default());
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let cases = [
            (
                FULL.replace("https://vip.example.com", "vip.example.com"),
                "gridflow.toml: connectors.vip.base_url: ",
            ),
            (
                FULL.replace("\"VIP_CLIENT_SECRET\"", "\"hunter2 secret\""),
                "gridflow.toml: connectors.vip.client_secret_env: ",
            ),
            (
                FULL.replace("timeout = \"20s\"", "timeout = \"soon\""),
                "gridflow.toml: connectors.trading_grid.timeout: ",
            ),
            (
                FULL.replace("company_id = ", "compnay_id = "),
                "gridflow.toml: connectors.trading_grid.compnay_id: ",
            ),
        ];
        for (text, prefix) in cases {
            let error = Config::parse(&text, "gridflow.toml")
                .unwrap_err()
                .to_string();
            assert!(error.starts_with(prefix), "{error}");
        }
    }

    #[test]
    fn missing_credential_names_the_variable_not_a_value() {
        let error = credential(
            "connectors.vip.client_secret_env",
            "GRIDFLOW_TEST_SURELY_UNSET_VARIABLE",
        )
        .unwrap_err();
        assert_eq!(error.key, "connectors.vip.client_secret_env");
        assert!(
            error
                .message
                .contains("GRIDFLOW_TEST_SURELY_UNSET_VARIABLE")
        );
    }

    #[test]
    fn dam_tables_parse_and_bad_values_name_their_key() {
        let text = "[connectors.iconik]\nbase_url = \"https://app.iconik.io/API\"\napp_id_env = \"ICONIK_APP_ID\"\n\
                    email_env = \"ICONIK_EMAIL\"\npassword_env = \"ICONIK_PASSWORD\"\nmetadata_view_id = \"v-1\"\n\
                    [connectors.canto]\nbase_url = \"https://acme.canto.com\"\noauth_url = \"https://oauth.canto.com\"\n\
                    app_id_env = \"CANTO_APP_ID\"\napp_secret_env = \"CANTO_APP_SECRET\"\n\
                    [connectors.smintio]\nbase_url = \"https://acme.clapi.smint.io/consumer/v1\"\n\
                    identity_url = \"https://acme.smint.io\"\nclient_id_env = \"SMINTIO_CLIENT_ID\"\n\
                    client_secret_env = \"SMINTIO_CLIENT_SECRET\"\nrefresh_token_env = \"SMINTIO_REFRESH_TOKEN\"\n";
        let config = Config::parse(text, "gridflow.toml").unwrap();
        let iconik = config.connectors.iconik.unwrap();
        assert_eq!(iconik.valid_until_field, "rights_valid_until");
        assert_eq!(
            config.connectors.canto.unwrap().valid_until_field,
            "Usage Expiry"
        );
        assert!(config.connectors.smintio.is_some());
        for (bad, key) in [
            (
                text.replace("\"v-1\"", "\" \""),
                "connectors.iconik.metadata_view_id",
            ),
            (
                text.replace("https://oauth.canto.com", "oauth.canto.com"),
                "connectors.canto.oauth_url",
            ),
            (
                text.replace("\"SMINTIO_REFRESH_TOKEN\"", "\"rt secret\""),
                "connectors.smintio.refresh_token_env",
            ),
        ] {
            let error = Config::parse(&bad, "gridflow.toml").unwrap_err();
            assert_eq!(error.key, key, "{error}");
        }
    }
}
