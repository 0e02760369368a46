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

use crate::config::{Config, Error};
use crate::connector::Connector;
use crate::http::Secret;
use crate::simulator::{
    self, RunningSimulator, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD,
    SANDBOX_USERNAME, SimError, SimOptions,
};
use crate::systems::SYSTEMS;

pub use crate::simulator::SANDBOX_POLL_INTERVAL;

/// Every connector `config` configures, with credentials from the environment.
///
/// Fails on the first credential variable that is unset or empty, naming the key.
pub fn connectors_from_environment(config: &Config) -> Result<Vec<Arc<dyn Connector>>, Error> {
    let mut connectors: Vec<Arc<dyn Connector>> = Vec::new();
    for system in &SYSTEMS {
        if let Some(connector) = (system.from_environment)(config) {
            connectors.push(connector?);
        }
    }
    Ok(connectors)
}

/// A registry of the built-in `core` connector, the `ledger` catalogue entry and every system's connector, pointing
/// nowhere, so that `gridflow validate` checks actions and arguments of every connector
/// without configuration or network. Invoking its system actions fails as `unavailable`.
pub fn offline_catalog() -> crate::Registry {
    let mut registry = crate::Registry::with_builtin();
    registry.register(std::sync::Arc::new(
        crate::ledger::LedgerCatalogue::default(),
    ));
    for system in &SYSTEMS {
        match (system.offline)() {
            Ok(connector) => registry.register(connector),
            Err(error) => {
                tracing::error!(%error, system = system.name, "system left out of the offline catalog");
            }
        }
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
        let mut simulators = Vec::with_capacity(SYSTEMS.len());
        for system in &SYSTEMS {
            simulators.push((system.start_simulator)(options(system.name)).await?);
        }
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
        sent(
            client
                .put(format!(
                    "{}/_sim/canto/webhooks",
                    self.base_url(simulator::canto::NAME)
                ))
                .json(&canto_hooks),
        )
        .await
        .map_err(failed("canto"))?;

        let iconik = format!(
            "{}{}",
            self.base_url(simulator::iconik::NAME),
            simulator::iconik::API_ROOT
        );
        let login = answer(
            client
                .post(format!("{iconik}/auth/v1/auth/simple/login/"))
                .header("App-ID", SANDBOX_CLIENT_ID)
                .json(
                    &serde_json::json!({"email": SANDBOX_USERNAME, "password": SANDBOX_PASSWORD}),
                ),
        )
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
        drop_earlier(
            signed_in(
                client
                    .get(format!("{iconik}/notifications/v1/webhooks/"))
                    .query(&[("per_page", "500")]),
            ),
            ("objects", "id"),
            |hook| hook["name"] == GRIDFLOW_WEBHOOK_NAME,
            |id| signed_in(client.delete(format!("{iconik}/notifications/v1/webhooks/{id}/"))),
        )
        .await
        .map_err(failed("iconik"))?;
        sent(
            signed_in(client.post(format!("{iconik}/notifications/v1/webhooks/"))).json(
                &serde_json::json!({
                    "name": GRIDFLOW_WEBHOOK_NAME, "url": format!("{events_url}/iconik?type=asset_changed"),
                    "event_type": "assets", "status": "ENABLED",
                    "headers": {"X-Gridflow-Token": iconik_secret.expose()},
                }),
            ),
        )
        .await
        .map_err(failed("iconik"))?;
        Ok(())
    }

    /// Subscribes `events_url` (gridflow's `.../api/v1/events`) to the Trading Grid hub
    /// simulator's signed callbacks, as an administrator of the hub would: every event is
    /// POSTed to `<events_url>/trading_grid` with `X-Hub-Signature` under `secret`. A
    /// subscription of an earlier start to the same path (its port is gone) is dropped.
    pub async fn subscribe_hub_webhooks(
        &self,
        events_url: &str,
        secret: &Secret,
    ) -> Result<(), String> {
        let failed = |error: reqwest::Error| {
            format!("cannot subscribe to the trading_grid simulator: {error}")
        };
        let client = reqwest::Client::new();
        let hub = self.base_url(simulator::trading_grid::NAME);
        let token = answer(
            client
                .post(format!(
                    "{hub}/v1/oauth2/tokens?grant_type=client_credentials"
                ))
                .basic_auth(SANDBOX_CLIENT_ID, Some(simulator::SANDBOX_CLIENT_SECRET)),
        )
        .await
        .map_err(failed)?;
        let bearer = token["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let url = format!("{events_url}/trading_grid");
        let path_of = |url: &str| {
            reqwest::Url::parse(url)
                .map(|url| url.path().to_owned())
                .ok()
        };
        let subscriptions = format!("{hub}/hub/v1/subscriptions");
        drop_earlier(
            client.get(&subscriptions).bearer_auth(&bearer),
            ("subscriptions", "subscription_id"),
            |subscription| {
                path_of(subscription["url"].as_str().unwrap_or_default()) == path_of(&url)
            },
            |id| {
                client
                    .delete(format!("{subscriptions}/{id}"))
                    .bearer_auth(&bearer)
            },
        )
        .await
        .map_err(failed)?;
        sent(
            client
                .post(&subscriptions)
                .bearer_auth(&bearer)
                .json(&serde_json::json!({"url": url, "secret": secret.expose()})),
        )
        .await
        .map_err(failed)?;
        Ok(())
    }

    /// Points the VIP simulator's webhooks at gridflow's event endpoint for VIP
    /// (`<events_url>/vip`), as VIP's API lets a client do (`POST /v1/webhooks`): every
    /// event type, signed with `secret` in `X-Signature` (`[webhooks.sources.vip]
    /// signature_header = "X-Signature"` on gridflow's side). Subscriptions of an earlier
    /// start to an endpoint for VIP are removed first (their port is gone).
    pub async fn subscribe_vip(&self, events_url: &str, secret: &Secret) -> Result<(), String> {
        let base = self.base_url(simulator::vip::NAME);
        let failed = |error: reqwest::Error| {
            format!(
                "cannot subscribe to the vip simulator: {}",
                error.without_url()
            )
        };
        let client = reqwest::Client::new();
        let token = answer(client.post(format!("{base}/v1/oauth2/token")).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", SANDBOX_CLIENT_ID),
            ("client_secret", SANDBOX_CLIENT_SECRET),
        ]))
        .await
        .map_err(failed)?;
        let bearer = format!(
            "Bearer {}",
            token["access_token"].as_str().unwrap_or_default()
        );
        let webhooks = format!("{base}/v1/webhooks");
        drop_earlier(
            client
                .get(&webhooks)
                .query(&[("limit", "200")])
                .header(reqwest::header::AUTHORIZATION, &bearer),
            ("data", "id"),
            |hook| {
                hook["url"]
                    .as_str()
                    .is_some_and(|url| url.ends_with("/events/vip"))
            },
            |id| {
                client
                    .delete(format!("{webhooks}/{id}"))
                    .header(reqwest::header::AUTHORIZATION, &bearer)
            },
        )
        .await
        .map_err(failed)?;
        sent(
            client
                .post(&webhooks)
                .header(reqwest::header::AUTHORIZATION, &bearer)
                .json(&serde_json::json!({
                    "url": format!("{}/vip", events_url.trim_end_matches('/')),
                    "events": simulator::vip::webhooks::EVENT_TYPES,
                    "secret": secret.expose(),
                })),
        )
        .await
        .map_err(failed)?;
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
        SYSTEMS
            .iter()
            .map(|system| (system.sandbox)(config, &self.base_url(system.name)))
            .collect()
    }

    /// Stops every simulator.
    pub async fn shutdown(self) {
        for simulator in self.simulators {
            simulator.shutdown().await;
        }
    }
}

/// Sends `request` and reads its JSON answer; an error status is an error.
async fn answer(request: reqwest::RequestBuilder) -> reqwest::Result<serde_json::Value> {
    request.send().await?.error_for_status()?.json().await
}

/// Sends `request`; an error status is an error.
async fn sent(request: reqwest::RequestBuilder) -> reqwest::Result<()> {
    request.send().await?.error_for_status()?;
    Ok(())
}

/// Removes the webhook subscriptions an earlier start left at a simulator (the state
/// outlives the server, their port is gone): lists them with `list`, whose answer holds
/// them in the array `items` with their id in `id_field`, and sends the request `delete`
/// makes of the id of each one `earlier` picks.
async fn drop_earlier(
    list: reqwest::RequestBuilder,
    (items, id_field): (&str, &str),
    earlier: impl Fn(&serde_json::Value) -> bool,
    delete: impl Fn(&str) -> reqwest::RequestBuilder,
) -> reqwest::Result<()> {
    let listed = answer(list).await?;
    for subscription in listed[items].as_array().into_iter().flatten() {
        if earlier(subscription) {
            sent(delete(subscription[id_field].as_str().unwrap_or_default())).await?;
        }
    }
    Ok(())
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
