//! VIP's row of the systems table: its connector from the environment, offline, and
//! against its simulator.

use super::{NAME, VipConnector, VipCredentials, simulator};
use crate::config::{Config, DEFAULT_TIMEOUT, VipConfig};
use crate::http::Secret;
use crate::simulator::{SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET};
use crate::systems::{Built, NOWHERE, System, built, offline_secret};

/// VIP in the systems table.
pub(crate) const SYSTEM: System = System {
    name: NAME,
    from_environment,
    offline,
    start_simulator: |options| Box::pin(simulator::start(options)),
    sandbox,
};

fn from_environment(config: &Config) -> Option<Built> {
    let Some(section) = &config.connectors.vip else {
        return None;
    };
    Some(
        VipCredentials::from_environment(section).and_then(|credentials| {
            built(
                NAME,
                VipConnector::new(section, credentials)
                    .map(|connector| connector.with_content(config.content.store())),
            )
        }),
    )
}

fn offline() -> Built {
    let section = VipConfig {
        base_url: NOWHERE.to_owned(),
        client_id_env: String::new(),
        client_secret_env: String::new(),
        scope: String::new(),
        timeout: DEFAULT_TIMEOUT,
    };
    let credentials = VipCredentials {
        client_id: offline_secret(),
        client_secret: offline_secret(),
    };
    built(NAME, VipConnector::new(&section, credentials))
}

fn sandbox(config: &Config, base_url: &str) -> Built {
    let mut section = config.connectors.vip.clone().unwrap_or_else(|| VipConfig {
        base_url: String::new(),
        client_id_env: String::new(),
        client_secret_env: String::new(),
        scope: "distribution.read distribution.write".to_owned(),
        timeout: DEFAULT_TIMEOUT,
    });
    base_url.clone_into(&mut section.base_url);
    let credentials = VipCredentials {
        client_id: Secret::new(SANDBOX_CLIENT_ID),
        client_secret: Secret::new(SANDBOX_CLIENT_SECRET),
    };
    built(
        NAME,
        VipConnector::new(&section, credentials)
            .map(|connector| connector.with_content(config.content.store())),
    )
}
