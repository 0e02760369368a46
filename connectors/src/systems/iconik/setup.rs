//! iconik's row of the systems table: its connector from the environment, offline, and
//! against its simulator.

use super::{IconikConnector, IconikCredentials, NAME, simulator};
use crate::config::{Config, DEFAULT_TIMEOUT, IconikConfig};
use crate::http::Secret;
use crate::simulator::{SANDBOX_CLIENT_ID, SANDBOX_PASSWORD, SANDBOX_USERNAME};
use crate::systems::{Built, NOWHERE, System, built, offline_secret};

/// iconik in the systems table.
pub(crate) const SYSTEM: System = System {
    name: NAME,
    from_environment,
    offline,
    start_simulator: |options| Box::pin(simulator::start(options)),
    sandbox,
};

fn from_environment(config: &Config) -> Option<Built> {
    let Some(section) = &config.connectors.iconik else {
        return None;
    };
    Some(
        IconikCredentials::from_environment(section).and_then(|credentials| {
            built(
                NAME,
                IconikConnector::new(section, credentials)
                    .map(|connector| connector.with_content(config.content.store())),
            )
        }),
    )
}

fn offline() -> Built {
    let mut section = sandbox_config();
    NOWHERE.clone_into(&mut section.base_url);
    let credentials = IconikCredentials {
        app_id: offline_secret(),
        email: offline_secret(),
        password: offline_secret(),
    };
    built(NAME, IconikConnector::new(&section, credentials))
}

fn sandbox(config: &Config, base_url: &str) -> Built {
    let mut section = config
        .connectors
        .iconik
        .clone()
        .unwrap_or_else(sandbox_config);
    section.base_url = format!("{base_url}{}", simulator::API_ROOT);
    simulator::SANDBOX_VIEW_ID.clone_into(&mut section.metadata_view_id);
    let credentials = IconikCredentials {
        app_id: Secret::new(SANDBOX_CLIENT_ID),
        email: Secret::new(SANDBOX_USERNAME),
        password: Secret::new(SANDBOX_PASSWORD),
    };
    built(
        NAME,
        IconikConnector::new(&section, credentials)
            .map(|connector| connector.with_content(config.content.store())),
    )
}

/// The iconik settings of the sandbox: the seeded metadata view and the default rights fields.
fn sandbox_config() -> IconikConfig {
    IconikConfig {
        base_url: String::new(),
        app_id_env: String::new(),
        email_env: String::new(),
        password_env: String::new(),
        metadata_view_id: simulator::SANDBOX_VIEW_ID.to_owned(),
        valid_from_field: "rights_valid_from".to_owned(),
        valid_until_field: "rights_valid_until".to_owned(),
        timeout: DEFAULT_TIMEOUT,
    }
}
