//! Smint.io's row of the systems table: its connector from the environment, offline, and
//! against its simulator.

use super::{NAME, SmintioConnector, SmintioCredentials, simulator};
use crate::config::{Config, DEFAULT_TIMEOUT, SmintioConfig};
use crate::http::Secret;
use crate::simulator::{SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET};
use crate::systems::{Built, NOWHERE, System, built, offline_secret};

/// Smint.io in the systems table.
pub(crate) const SYSTEM: System = System {
    name: NAME,
    from_environment,
    offline,
    start_simulator: |options| Box::pin(simulator::start(options)),
    sandbox,
};

fn from_environment(config: &Config) -> Option<Built> {
    let Some(section) = &config.connectors.smintio else {
        return None;
    };
    Some(
        SmintioCredentials::from_environment(section).and_then(|credentials| {
            built(
                NAME,
                SmintioConnector::new(section, credentials)
                    .map(|connector| connector.with_content(config.content.store())),
            )
        }),
    )
}

fn offline() -> Built {
    let credentials = SmintioCredentials {
        client_id: offline_secret(),
        client_secret: offline_secret(),
        refresh_token: offline_secret(),
    };
    built(
        NAME,
        SmintioConnector::new(&sandbox_config(NOWHERE, NOWHERE), credentials),
    )
}

fn sandbox(config: &Config, base_url: &str) -> Built {
    let mut section = config
        .connectors
        .smintio
        .clone()
        .unwrap_or_else(|| sandbox_config(base_url, base_url));
    section.base_url = format!("{base_url}{}", simulator::API_ROOT);
    base_url.clone_into(&mut section.identity_url);
    let credentials = SmintioCredentials {
        client_id: Secret::new(SANDBOX_CLIENT_ID),
        client_secret: Secret::new(SANDBOX_CLIENT_SECRET),
        refresh_token: Secret::new(simulator::SANDBOX_REFRESH_TOKEN),
    };
    built(
        NAME,
        SmintioConnector::new(&section, credentials)
            .map(|connector| connector.with_content(config.content.store())),
    )
}

/// Smint.io settings pointing at `base_url` (CLAPI-C root) and `identity_url`.
fn sandbox_config(base_url: &str, identity_url: &str) -> SmintioConfig {
    SmintioConfig {
        base_url: base_url.to_owned(),
        identity_url: identity_url.to_owned(),
        client_id_env: String::new(),
        client_secret_env: String::new(),
        refresh_token_env: String::new(),
        timeout: DEFAULT_TIMEOUT,
        poll_interval: crate::simulator::SANDBOX_POLL_INTERVAL,
    }
}
