//! Trading Grid's row of the systems table: its connector from the environment, offline,
//! and against its simulator.

use super::{NAME, TradingGridConnector, TradingGridCredentials, simulator};
use crate::config::{Config, DEFAULT_POLL_INTERVAL, DEFAULT_TIMEOUT, TradingGridConfig};
use crate::http::Secret;
use crate::simulator::SANDBOX_POLL_INTERVAL;
use crate::simulator::{SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET};
use crate::systems::{Built, NOWHERE, System, built, offline_secret};

/// Trading Grid in the systems table.
pub(crate) const SYSTEM: System = System {
    name: NAME,
    from_environment,
    offline,
    start_simulator: |options| Box::pin(simulator::start(options)),
    sandbox,
};

fn from_environment(config: &Config) -> Option<Built> {
    let Some(section) = &config.connectors.trading_grid else {
        return None;
    };
    Some(
        TradingGridCredentials::from_environment(section).and_then(|credentials| {
            built(
                NAME,
                TradingGridConnector::new(section, credentials)
                    .map(|connector| connector.with_content(config.content.store())),
            )
        }),
    )
}

fn offline() -> Built {
    let section = TradingGridConfig {
        base_url: NOWHERE.to_owned(),
        company_id: "offline".to_owned(),
        client_id_env: String::new(),
        client_secret_env: String::new(),
        timeout: DEFAULT_TIMEOUT,
        poll_interval: DEFAULT_POLL_INTERVAL,
    };
    let credentials = TradingGridCredentials {
        client_id: offline_secret(),
        client_secret: offline_secret(),
    };
    built(NAME, TradingGridConnector::new(&section, credentials))
}

fn sandbox(config: &Config, base_url: &str) -> Built {
    let mut section = config
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
    base_url.clone_into(&mut section.base_url);
    simulator::SANDBOX_COMPANY_ID.clone_into(&mut section.company_id);
    let credentials = TradingGridCredentials {
        client_id: Secret::new(SANDBOX_CLIENT_ID),
        client_secret: Secret::new(SANDBOX_CLIENT_SECRET),
    };
    built(
        NAME,
        TradingGridConnector::new(&section, credentials)
            .map(|connector| connector.with_content(config.content.store())),
    )
}
