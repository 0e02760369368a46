//! Building the configured connectors, for real or against the local simulators.
//!
//! [`connectors_from_environment`] builds every connector that `gridflow.toml` configures,
//! reading its credentials from the environment variables the file names.
//! [`Sandbox::start`] runs every simulator on loopback (state kept in
//! `[sandbox] state_dir`, one JSON file per system) and [`Sandbox::connectors`] builds
//! every connector against them, whatever the file says about base URLs and credentials:
//! the sandbox credentials are the simulators' own and are no secret.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::canto::{CantoConnector, CantoCredentials};
use crate::config::{
    CantoConfig, Config, DEFAULT_CANTO_UPLOAD_WAIT, DEFAULT_POLL_INTERVAL, DEFAULT_TIMEOUT, Error,
    IconikConfig, OtmmConfig, SmintioConfig, TradingGridConfig, VipConfig,
};
use crate::connector::Connector;
use crate::http::Secret;
use crate::iconik::{IconikConnector, IconikCredentials};
use crate::otmm::{OtmmConnector, OtmmCredentials};
use crate::simulator::{
    self, RunningSimulator, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD,
    SANDBOX_USERNAME, SimError, SimOptions,
};
use crate::smintio::{SmintioConnector, SmintioCredentials};
use crate::trading_grid::{TradingGridConnector, TradingGridCredentials};
use crate::vip::{VipConnector, VipCredentials};

/// How often the sandbox polls the OTMM and Trading Grid simulators when `gridflow.toml`
/// does not configure those systems: often, so that a change made while trying things
/// out starts its workflow within seconds.
pub const SANDBOX_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

fn build_error(name: &str, error: &crate::connector::Error) -> Error {
    Error {
        file: "gridflow.toml".to_owned(),
        key: format!("connectors.{name}"),
        message: format!("cannot build the connector: {error}"),
    }
}

/// Every connector `config` configures, with credentials from the environment.
///
/// Fails on the first credential variable that is unset or empty, naming the key.
pub fn connectors_from_environment(config: &Config) -> Result<Vec<Arc<dyn Connector>>, Error> {
    let mut connectors: Vec<Arc<dyn Connector>> = Vec::new();
    if let Some(tg) = &config.connectors.trading_grid {
        let credentials = TradingGridCredentials::from_environment(tg)?;
        let connector = TradingGridConnector::new(tg, credentials)
            .map_err(|error| build_error(crate::trading_grid::NAME, &error))?;
        connectors.push(Arc::new(connector));
    }
    if let Some(otmm) = &config.connectors.otmm {
        let credentials = OtmmCredentials::from_environment(otmm)?;
        let connector = OtmmConnector::new(otmm, credentials)
            .map_err(|error| build_error(crate::otmm::NAME, &error))?;
        connectors.push(Arc::new(connector));
    }
    if let Some(vip) = &config.connectors.vip {
        let credentials = VipCredentials::from_environment(vip)?;
        let connector = VipConnector::new(vip, credentials)
            .map_err(|error| build_error(crate::vip::NAME, &error))?;
        connectors.push(Arc::new(connector));
    }
    if let Some(iconik) = &config.connectors.iconik {
        let credentials = IconikCredentials::from_environment(iconik)?;
        let connector = IconikConnector::new(iconik, credentials)
            .map_err(|error| build_error(crate::iconik::NAME, &error))?;
        connectors.push(Arc::new(connector));
    }
    if let Some(canto) = &config.connectors.canto {
        let credentials = CantoCredentials::from_environment(canto)?;
        let connector = CantoConnector::new(canto, credentials)
            .map_err(|error| build_error(crate::canto::NAME, &error))?;
        connectors.push(Arc::new(connector));
    }
    if let Some(smintio) = &config.connectors.smintio {
        let credentials = SmintioCredentials::from_environment(smintio)?;
        let connector = SmintioConnector::new(smintio, credentials)
            .map_err(|error| build_error(crate::smintio::NAME, &error))?;
        connectors.push(Arc::new(connector));
    }
    Ok(connectors)
}

/// A registry of the built-in `core` connector and every system's connector, pointing
/// nowhere, so that `gridflow validate` checks actions and arguments of every connector
/// without configuration or network. Invoking its system actions fails as `unavailable`.
pub fn offline_catalog() -> crate::Registry {
    let mut registry = crate::Registry::with_builtin();
    let nowhere = "http://127.0.0.1:9";
    let client_id = Secret::new("offline");
    let client_secret = Secret::new("offline");
    let tg = TradingGridConfig {
        base_url: nowhere.to_owned(),
        company_id: "offline".to_owned(),
        client_id_env: String::new(),
        client_secret_env: String::new(),
        timeout: DEFAULT_TIMEOUT,
        poll_interval: DEFAULT_POLL_INTERVAL,
    };
    let credentials = TradingGridCredentials {
        client_id: client_id.clone(),
        client_secret: client_secret.clone(),
    };
    match TradingGridConnector::new(&tg, credentials) {
        Ok(connector) => registry.register(Arc::new(connector)),
        Err(error) => tracing::error!(%error, "trading_grid left out of the offline catalog"),
    }
    match sandbox_otmm_config() {
        Ok(otmm) => {
            let credentials = OtmmCredentials {
                username: client_id.clone(),
                password: client_secret.clone(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
            };
            match OtmmConnector::new(&otmm, credentials) {
                Ok(connector) => registry.register(Arc::new(connector)),
                Err(error) => tracing::error!(%error, "otmm left out of the offline catalog"),
            }
        }
        Err(error) => tracing::error!(%error, "otmm left out of the offline catalog"),
    }
    let vip = VipConfig {
        base_url: nowhere.to_owned(),
        client_id_env: String::new(),
        client_secret_env: String::new(),
        scope: String::new(),
        timeout: DEFAULT_TIMEOUT,
    };
    match VipConnector::new(
        &vip,
        VipCredentials {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
        },
    ) {
        Ok(connector) => registry.register(Arc::new(connector)),
        Err(error) => tracing::error!(%error, "vip left out of the offline catalog"),
    }
    let mut iconik = sandbox_iconik_config();
    iconik.base_url = nowhere.to_owned();
    match IconikConnector::new(
        &iconik,
        IconikCredentials {
            app_id: client_id.clone(),
            email: client_id.clone(),
            password: client_secret.clone(),
        },
    ) {
        Ok(connector) => registry.register(Arc::new(connector)),
        Err(error) => tracing::error!(%error, "iconik left out of the offline catalog"),
    }
    let mut canto = sandbox_canto_config();
    canto.base_url = nowhere.to_owned();
    canto.oauth_url = nowhere.to_owned();
    match CantoConnector::new(
        &canto,
        CantoCredentials {
            app_id: client_id.clone(),
            app_secret: client_secret.clone(),
        },
    ) {
        Ok(connector) => registry.register(Arc::new(connector)),
        Err(error) => tracing::error!(%error, "canto left out of the offline catalog"),
    }
    match SmintioConnector::new(
        &sandbox_smintio_config(nowhere, nowhere),
        SmintioCredentials {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            refresh_token: client_secret.clone(),
        },
    ) {
        Ok(connector) => registry.register(Arc::new(connector)),
        Err(error) => tracing::error!(%error, "smintio left out of the offline catalog"),
    }
    registry
}

/// The name of the iconik webhook that `serve --sandbox` registers.
const GRIDFLOW_WEBHOOK_NAME: &str = "gridflow";

/// Every simulator, running.
pub struct Sandbox {
    simulators: Vec<RunningSimulator>,
}

impl Sandbox {
    /// Starts every simulator on a free loopback port, persisting each one's state to
    /// `<state_dir>/<name>.json` (in memory when `state_dir` is `None`).
    pub async fn start(state_dir: Option<&Path>) -> Result<Self, SimError> {
        let options = |name: &str| SimOptions {
            state_file: state_dir.map(|directory| directory.join(format!("{name}.json"))),
            ..SimOptions::default()
        };
        let simulators = vec![
            simulator::trading_grid::start(options(simulator::trading_grid::NAME)).await?,
            simulator::otmm::start(options(simulator::otmm::NAME)).await?,
            simulator::vip::start(options(simulator::vip::NAME)).await?,
            simulator::iconik::start(options(simulator::iconik::NAME)).await?,
            simulator::canto::start(options(simulator::canto::NAME)).await?,
            simulator::smintio::start(options(simulator::smintio::NAME)).await?,
        ];
        Ok(Self { simulators })
    }

    /// Points the simulators that push changes at gridflow's event endpoint
    /// (`events_url`, e.g. `http://127.0.0.1:8080/api/v1/events`), as an administrator
    /// of each system would: Canto's webhooks (its admin UI, here `PUT
    /// /_sim/canto/webhooks`) for `Add New Version` and `Update Metadata`, sent as
    /// `canto.version_added` and `canto.metadata_updated` with `canto_secret` as their
    /// Secure Token; an iconik webhook on every asset change (`POST
    /// /notifications/v1/webhooks/`), sent as `iconik.asset_changed` with `iconik_secret`
    /// in the custom header `X-Gridflow-Token`.
    pub async fn subscribe_webhooks(
        &self,
        events_url: &str,
        canto_secret: &Secret,
        iconik_secret: &Secret,
    ) -> Result<(), String> {
        let client = reqwest::Client::new();
        let failed = |system: &str| {
            let system = system.to_owned();
            move |error: reqwest::Error| {
                format!("cannot subscribe to the {system} simulator: {error}")
            }
        };
        let canto_hooks = serde_json::json!([
            {"event": "Add New Version", "url": format!("{events_url}/canto?type=version_added"),
             "secure_token": canto_secret.expose()},
            {"event": "Update Metadata", "url": format!("{events_url}/canto?type=metadata_updated"),
             "secure_token": canto_secret.expose()},
        ]);
        client
            .put(format!(
                "{}/_sim/canto/webhooks",
                self.base_url(simulator::canto::NAME)
            ))
            .json(&canto_hooks)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(failed("canto"))?;

        let iconik = format!(
            "{}{}",
            self.base_url(simulator::iconik::NAME),
            simulator::iconik::API_ROOT
        );
        let login: serde_json::Value = client
            .post(format!("{iconik}/auth/v1/auth/simple/login/"))
            .header("App-ID", SANDBOX_CLIENT_ID)
            .json(&serde_json::json!({"email": SANDBOX_USERNAME, "password": SANDBOX_PASSWORD}))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(failed("iconik"))?
            .json()
            .await
            .map_err(failed("iconik"))?;
        let token = login["token"].as_str().unwrap_or_default();
        let signed_in = |request: reqwest::RequestBuilder| {
            request
                .header("App-ID", SANDBOX_CLIENT_ID)
                .header("Auth-Token", token)
        };
        // The simulator's state outlives the server: drop the subscription of an earlier
        // start (its port is gone) before making this one.
        let existing: serde_json::Value = signed_in(
            client
                .get(format!("{iconik}/notifications/v1/webhooks/"))
                .query(&[("per_page", "500")]),
        )
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(failed("iconik"))?
        .json()
        .await
        .map_err(failed("iconik"))?;
        for hook in existing["objects"].as_array().into_iter().flatten() {
            if hook["name"] != GRIDFLOW_WEBHOOK_NAME {
                continue;
            }
            let id = hook["id"].as_str().unwrap_or_default();
            signed_in(client.delete(format!("{iconik}/notifications/v1/webhooks/{id}/")))
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(failed("iconik"))?;
        }
        signed_in(client.post(format!("{iconik}/notifications/v1/webhooks/")))
            .json(&serde_json::json!({
                "name": GRIDFLOW_WEBHOOK_NAME, "url": format!("{events_url}/iconik?type=asset_changed"),
                "event_type": "assets", "status": "ENABLED",
                "headers": {"X-Gridflow-Token": iconik_secret.expose()},
            }))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(failed("iconik"))?;
        Ok(())
    }

    /// The running simulators.
    pub fn simulators(&self) -> &[RunningSimulator] {
        &self.simulators
    }

    /// The simulator of system `name`.
    pub fn simulator(&self, name: &str) -> Option<&RunningSimulator> {
        self.simulators
            .iter()
            .find(|simulator| simulator.name() == name)
    }

    fn base_url(&self, name: &str) -> String {
        self.simulator(name)
            .map(RunningSimulator::base_url)
            .unwrap_or_default()
    }

    /// Every connector, pointed at its simulator with the sandbox credentials. Settings
    /// that are not about reaching the system (OTMM's approval fields, timeouts) are
    /// taken from `config` when it configures the system.
    pub fn connectors(&self, config: &Config) -> Result<Vec<Arc<dyn Connector>>, Error> {
        let client_id = Secret::new(SANDBOX_CLIENT_ID);
        let client_secret = Secret::new(SANDBOX_CLIENT_SECRET);

        let mut tg = config
            .connectors
            .trading_grid
            .clone()
            .unwrap_or_else(|| TradingGridConfig {
                base_url: String::new(),
                company_id: String::new(),
                client_id_env: String::new(),
                client_secret_env: String::new(),
                timeout: DEFAULT_TIMEOUT,
                poll_interval: SANDBOX_POLL_INTERVAL,
            });
        tg.base_url = self.base_url(simulator::trading_grid::NAME);
        tg.company_id = simulator::trading_grid::SANDBOX_COMPANY_ID.to_owned();
        let trading_grid = TradingGridConnector::new(
            &tg,
            TradingGridCredentials {
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
            },
        )
        .map_err(|error| build_error(crate::trading_grid::NAME, &error))?;

        let mut otmm = match config.connectors.otmm.clone() {
            Some(otmm) => otmm,
            None => sandbox_otmm_config()?,
        };
        otmm.base_url = format!(
            "{}{}",
            self.base_url(simulator::otmm::NAME),
            simulator::otmm::API_ROOT
        );
        let otmm_connector = OtmmConnector::new(
            &otmm,
            OtmmCredentials {
                username: Secret::new(SANDBOX_USERNAME),
                password: Secret::new(SANDBOX_PASSWORD),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
            },
        )
        .map_err(|error| build_error(crate::otmm::NAME, &error))?;

        let mut vip = config.connectors.vip.clone().unwrap_or_else(|| VipConfig {
            base_url: String::new(),
            client_id_env: String::new(),
            client_secret_env: String::new(),
            scope: "distribution.read distribution.write".to_owned(),
            timeout: DEFAULT_TIMEOUT,
        });
        vip.base_url = self.base_url(simulator::vip::NAME);
        let vip_connector = VipConnector::new(
            &vip,
            VipCredentials {
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
            },
        )
        .map_err(|error| build_error(crate::vip::NAME, &error))?;

        let mut iconik = config
            .connectors
            .iconik
            .clone()
            .unwrap_or_else(sandbox_iconik_config);
        iconik.base_url = format!(
            "{}{}",
            self.base_url(simulator::iconik::NAME),
            simulator::iconik::API_ROOT
        );
        iconik.metadata_view_id = simulator::iconik::SANDBOX_VIEW_ID.to_owned();
        let iconik_connector = IconikConnector::new(
            &iconik,
            IconikCredentials {
                app_id: client_id.clone(),
                email: Secret::new(SANDBOX_USERNAME),
                password: Secret::new(SANDBOX_PASSWORD),
            },
        )
        .map_err(|error| build_error(crate::iconik::NAME, &error))?;

        let mut canto = config
            .connectors
            .canto
            .clone()
            .unwrap_or_else(sandbox_canto_config);
        canto.base_url = self.base_url(simulator::canto::NAME);
        canto.oauth_url = self.base_url(simulator::canto::NAME);
        let canto_connector = CantoConnector::new(
            &canto,
            CantoCredentials {
                app_id: client_id.clone(),
                app_secret: client_secret.clone(),
            },
        )
        .map_err(|error| build_error(crate::canto::NAME, &error))?;

        let smintio_base = self.base_url(simulator::smintio::NAME);
        let mut smintio = config
            .connectors
            .smintio
            .clone()
            .unwrap_or_else(|| sandbox_smintio_config(&smintio_base, &smintio_base));
        smintio.base_url = format!("{smintio_base}{}", simulator::smintio::API_ROOT);
        smintio.identity_url = smintio_base;
        let smintio_connector = SmintioConnector::new(
            &smintio,
            SmintioCredentials {
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                refresh_token: Secret::new(simulator::smintio::SANDBOX_REFRESH_TOKEN),
            },
        )
        .map_err(|error| build_error(crate::smintio::NAME, &error))?;

        Ok(vec![
            Arc::new(trading_grid),
            Arc::new(otmm_connector),
            Arc::new(vip_connector),
            Arc::new(iconik_connector),
            Arc::new(canto_connector),
            Arc::new(smintio_connector),
        ])
    }

    /// Stops every simulator.
    pub async fn shutdown(self) {
        for simulator in self.simulators {
            simulator.shutdown().await;
        }
    }
}

/// The Canto settings of the sandbox: the default rights fields, which the seed uses, and
/// a status poll close to the simulator's processing delay.
fn sandbox_canto_config() -> CantoConfig {
    CantoConfig {
        base_url: String::new(),
        oauth_url: String::new(),
        app_id_env: String::new(),
        app_secret_env: String::new(),
        valid_from_field: "Usage Start".to_owned(),
        valid_until_field: "Usage Expiry".to_owned(),
        timeout: DEFAULT_TIMEOUT,
        upload_wait: DEFAULT_CANTO_UPLOAD_WAIT,
        upload_poll_interval: Duration::from_millis(250),
    }
}

/// Smint.io settings pointing at `base_url` (CLAPI-C root) and `identity_url`.
fn sandbox_smintio_config(base_url: &str, identity_url: &str) -> SmintioConfig {
    SmintioConfig {
        base_url: base_url.to_owned(),
        identity_url: identity_url.to_owned(),
        client_id_env: String::new(),
        client_secret_env: String::new(),
        refresh_token_env: String::new(),
        timeout: DEFAULT_TIMEOUT,
    }
}

/// The iconik settings of the sandbox: the seeded metadata view and the default rights fields.
fn sandbox_iconik_config() -> IconikConfig {
    IconikConfig {
        base_url: String::new(),
        app_id_env: String::new(),
        email_env: String::new(),
        password_env: String::new(),
        metadata_view_id: simulator::iconik::SANDBOX_VIEW_ID.to_owned(),
        valid_from_field: "rights_valid_from".to_owned(),
        valid_until_field: "rights_valid_until".to_owned(),
        timeout: DEFAULT_TIMEOUT,
    }
}

/// The OTMM settings of the sandbox: the defaults of `gridflow.toml` plus the seeded
/// model's rights-from field.
fn sandbox_otmm_config() -> Result<OtmmConfig, Error> {
    let text = "[connectors.otmm]\nbase_url = \"http://127.0.0.1\"\nusername_env = \"UNUSED\"\n\
                password_env = \"UNUSED\"\nclient_id_env = \"UNUSED\"\nclient_secret_env = \"UNUSED\"\n\
                valid_from_field = \"CUSTOM.FIELD.RIGHTS_FROM\"\npoll_interval = \"2s\"\n";
    let config = Config::parse(text, "(sandbox defaults)")?;
    config.connectors.otmm.ok_or_else(|| Error {
        file: "(sandbox defaults)".to_owned(),
        key: "connectors.otmm".to_owned(),
        message: "missing".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Registry;
    use crate::connector::Invocation;
    use gridflow_core::{InstanceId, StepId};

    #[tokio::test]
    async fn sandbox_connectors_reach_their_simulators() {
        let directory = tempfile::tempdir().unwrap();
        let sandbox = Sandbox::start(Some(directory.path())).await.unwrap();
        let mut registry = Registry::with_builtin();
        for connector in sandbox.connectors(&Config::default()).unwrap() {
            registry.register(connector);
        }
        for (action, arguments) in [
            ("trading_grid.list_communities", json!({})),
            ("otmm.search_assets", json!({"query": "citrus"})),
            ("vip.list_recipients", json!({})),
            ("iconik.search_assets", json!({"query": "citrus"})),
            ("canto.search_assets", json!({"keyword": "citrus"})),
            ("smintio.sync_assets", json!({})),
        ] {
            let (connector, _) = registry.action(action).unwrap();
            let name = action.split_once('.').unwrap().1;
            let invocation = Invocation::new(
                name,
                arguments,
                InstanceId::from("i"),
                StepId::from("s"),
                None,
                1,
            );
            connector
                .invoke(invocation)
                .await
                .unwrap_or_else(|error| panic!("{action}: {error}"));
        }
        for name in ["trading_grid", "otmm", "vip", "iconik", "canto", "smintio"] {
            assert!(
                directory.path().join(format!("{name}.json")).exists(),
                "{name} state file"
            );
        }
        sandbox.shutdown().await;
    }

    #[test]
    fn offline_catalog_checks_arguments_of_every_system() {
        let catalog = offline_catalog();
        for action in [
            "core.noop",
            "trading_grid.post_message",
            "otmm.get_asset",
            "vip.publish_package",
            "iconik.get_asset",
            "canto.get_asset",
            "smintio.get_asset",
        ] {
            assert!(catalog.action(action).is_some(), "{action}");
        }
        let error = catalog
            .validate_arguments("vip.publish_package", &json!({"package": "p-1"}))
            .unwrap_err();
        assert_eq!(error.code(), "invalid_arguments");
    }

    #[test]
    fn missing_credential_variable_is_named() {
        let text = "[connectors.vip]\nbase_url = \"https://vip.example.com\"\n\
                    client_id_env = \"GRIDFLOW_TEST_UNSET_VIP_ID\"\nclient_secret_env = \"GRIDFLOW_TEST_UNSET_VIP_SECRET\"\n";
        let config = Config::parse(text, "gridflow.toml").unwrap();
        let error = connectors_from_environment(&config).err().unwrap();
        assert_eq!(error.key, "connectors.vip.client_id_env");
        assert!(
            error.to_string().contains("GRIDFLOW_TEST_UNSET_VIP_ID"),
            "{error}"
        );
    }
}
