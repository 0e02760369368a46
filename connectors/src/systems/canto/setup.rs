//! Canto's row of the systems table: its connector from the environment, offline, and
//! against its simulator.

use std::time::Duration;

use super::{CantoConnector, CantoCredentials, NAME, simulator};
use crate::config::{CantoConfig, Config, DEFAULT_CANTO_UPLOAD_WAIT, DEFAULT_TIMEOUT};
use crate::http::Secret;
use crate::simulator::{SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET};
use crate::systems::{Built, NOWHERE, System, built, offline_secret};

/// Canto in the systems table.
pub(crate) const SYSTEM: System = System {
    name: NAME,
    from_environment,
    offline,
    start_simulator: |options| Box::pin(simulator::start(options)),
    sandbox,
};

fn from_environment(config: &Config) -> Option<Built> {
    let Some(section) = &config.connectors.canto else {
        return None;
    };
    Some(
        CantoCredentials::from_environment(section).and_then(|credentials| {
            built(
                NAME,
                CantoConnector::new(section, credentials)
                    .map(|connector| connector.with_content(config.content.store())),
            )
        }),
    )
}

fn offline() -> Built {
    let mut section = sandbox_config();
    NOWHERE.clone_into(&mut section.base_url);
    NOWHERE.clone_into(&mut section.oauth_url);
    let credentials = CantoCredentials {
        app_id: offline_secret(),
        app_secret: offline_secret(),
    };
    built(NAME, CantoConnector::new(&section, credentials))
}

fn sandbox(config: &Config, base_url: &str) -> Built {
    let mut section = config
        .connectors
        .canto
        .clone()
        .unwrap_or_else(sandbox_config);
    base_url.clone_into(&mut section.base_url);
    base_url.clone_into(&mut section.oauth_url);
    let credentials = CantoCredentials {
        app_id: Secret::new(SANDBOX_CLIENT_ID),
        app_secret: Secret::new(SANDBOX_CLIENT_SECRET),
    };
    built(
        NAME,
        CantoConnector::new(&section, credentials)
            .map(|connector| connector.with_content(config.content.store())),
    )
}

/// The Canto settings of the sandbox: the default rights fields, which the seed uses, and
/// a status poll close to the simulator's processing delay.
fn sandbox_config() -> CantoConfig {
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
