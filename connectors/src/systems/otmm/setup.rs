//! OTMM's row of the systems table: its connector from the environment, offline, and
//! against its simulator.

use super::{NAME, OtmmConnector, OtmmCredentials, simulator};
use crate::config::{Config, Error, OtmmConfig};
use crate::http::Secret;
use crate::simulator::{
    SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD, SANDBOX_USERNAME,
};
use crate::systems::{Built, System, built, offline_secret};

/// OTMM in the systems table.
pub(crate) const SYSTEM: System = System {
    name: NAME,
    from_environment,
    offline,
    start_simulator: |options| Box::pin(simulator::start(options)),
    sandbox,
};

fn from_environment(config: &Config) -> Option<Built> {
    let Some(section) = &config.connectors.otmm else {
        return None;
    };
    Some(
        OtmmCredentials::from_environment(section).and_then(|credentials| {
            built(
                NAME,
                OtmmConnector::new(section, credentials)
                    .map(|connector| connector.with_content(config.content.store())),
            )
        }),
    )
}

fn offline() -> Built {
    let section = sandbox_config()?;
    let credentials = OtmmCredentials {
        username: offline_secret(),
        password: offline_secret(),
        client_id: offline_secret(),
        client_secret: offline_secret(),
    };
    built(NAME, OtmmConnector::new(&section, credentials))
}

fn sandbox(config: &Config, base_url: &str) -> Built {
    let mut section = match config.connectors.otmm.clone() {
        Some(section) => section,
        None => sandbox_config()?,
    };
    section.base_url = format!("{base_url}{}", simulator::API_ROOT);
    let credentials = OtmmCredentials {
        username: Secret::new(SANDBOX_USERNAME),
        password: Secret::new(SANDBOX_PASSWORD),
        client_id: Secret::new(SANDBOX_CLIENT_ID),
        client_secret: Secret::new(SANDBOX_CLIENT_SECRET),
    };
    built(
        NAME,
        OtmmConnector::new(&section, credentials)
            .map(|connector| connector.with_content(config.content.store())),
    )
}

/// The OTMM settings of the sandbox: the defaults of `gridflow.toml` plus the seeded
/// model's rights-from field.
fn sandbox_config() -> Result<OtmmConfig, Error> {
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
