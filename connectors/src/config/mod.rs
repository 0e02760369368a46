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
//! [limits]                              # see `gridflow_core::limits` for every key
//! max_signal_bytes = 1048576
//!
//! [tokens]                              # see `tokens.rs`
//! default_lifetime = "90d"
//!
//! [http]                                # see `http_edge.rs`
//! header_read_timeout = "10s"
//! request_timeout = "60s"
//! max_connections = 1024
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
//!
//! [webhooks.sources.iconik]             # see `webhooks.rs`
//! plain_secret = "header"
//!
//! [core_http]                           # see `core_http.rs`
//! allow = ["127.0.0.1/32"]
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::http::Secret;

mod http_edge;
mod tokens;

pub use http_edge::HttpConfig;
pub use tokens::TokensConfig;

pub(crate) mod checks;
pub(crate) mod common;
mod content;
mod core_http;
mod webhooks;

pub use crate::systems::canto::config::{
    CantoConfig, DEFAULT_CANTO_UPLOAD_POLL_INTERVAL, DEFAULT_CANTO_UPLOAD_WAIT,
};
pub use crate::systems::iconik::config::IconikConfig;
pub use crate::systems::otmm::config::OtmmConfig;
pub use crate::systems::smintio::config::SmintioConfig;
pub use crate::systems::trading_grid::config::TradingGridConfig;
pub use crate::systems::vip::config::VipConfig;
pub(crate) use checks::Checks;
pub use common::{DEFAULT_POLL_INTERVAL, DEFAULT_TIMEOUT, Error};

pub use content::{ContentConfig, DEFAULT_DIR_NAME as DEFAULT_CONTENT_DIR_NAME};
pub use core_http::{CoreHttpConfig, DEFAULT_MAX_RESPONSE_BYTES};
pub use webhooks::{DEFAULT_MAX_BODY_BYTES, PlainSecret, SourceConfig, WebhooksConfig};

/// The file read when none is named.
pub const DEFAULT_FILE: &str = "gridflow.toml";

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
    /// `[limits]`: bounds on what one input may cost (see [`gridflow_core::limits`]).
    #[serde(default)]
    pub limits: gridflow_core::limits::Limits,
    /// `[tokens]`: API token lifetimes.
    #[serde(default)]
    pub tokens: TokensConfig,
    /// `[http]`: the server's HTTP edge (timeouts, connection limit).
    #[serde(default)]
    pub http: HttpConfig,
    /// `[webhooks]`: how inbound webhooks authenticate, per source.
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    /// `[core_http]`: where `core.http` may connect.
    #[serde(default)]
    pub core_http: CoreHttpConfig,
    /// `[content]`: the content-addressed store of fetched bytes.
    #[serde(default)]
    pub content: ContentConfig,
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

impl ConnectorsConfig {
    /// Checks each system's section the file has.
    fn check(&self, checks: &Checks<'_>) -> Result<(), Error> {
        let Self {
            trading_grid,
            otmm,
            vip,
            iconik,
            canto,
            smintio,
        } = self;
        trading_grid.as_ref().map_or(Ok(()), |s| s.check(checks))?;
        otmm.as_ref().map_or(Ok(()), |s| s.check(checks))?;
        vip.as_ref().map_or(Ok(()), |s| s.check(checks))?;
        iconik.as_ref().map_or(Ok(()), |s| s.check(checks))?;
        canto.as_ref().map_or(Ok(()), |s| s.check(checks))?;
        smintio.as_ref().map_or(Ok(()), |s| s.check(checks))
    }
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
        for section in [self.tokens.check(), self.http.check(), self.content.check()] {
            if let Err((key, message)) = section {
                return Err(error(key, message));
            }
        }
        self.webhooks
            .validate()
            .and_then(|()| self.core_http.validate())
            .map_err(|(key, message)| error(key, message))?;
        self.connectors.check(&Checks { file })
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
    use std::time::Duration;

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
    fn limits_have_defaults_and_name_their_key() {
        let config =
            Config::parse("[limits]\ncel_budget = 5000\nmax_steps = 20000\n", "g.toml").unwrap();
        assert_eq!(config.limits.cel_budget.get(), 5000);
        assert_eq!(config.limits.max_steps.get(), 20_000);
        assert_eq!(
            Config::parse("", "g.toml").unwrap().limits,
            gridflow_core::limits::Limits::default()
        );
        let error = Config::parse("[limits]\nmax_steps = 0\n", "g.toml").unwrap_err();
        assert_eq!(error.key, "limits.max_steps", "{error}");
        let error = Config::parse("[limits]\ncel_budjet = 1\n", "g.toml").unwrap_err();
        assert!(error.to_string().contains("cel_budjet"), "{error}");
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
