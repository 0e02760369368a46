//! The external systems, one folder each, and the table that lists them.
//!
//! `systems/<name>/` holds everything about one system: its connector (`mod.rs`, split by
//! concern where it is big), its `gridflow.toml` section (`config.rs`), its simulator
//! (`simulator.rs`) with its seed data as JSON (`seed.json`), its change feed (`feed.rs`)
//! where it has one, and its row of `SYSTEMS` (`setup.rs`): how gridflow checks its
//! section, builds its connector (from the environment, offline, against its simulator)
//! and starts its simulator. Adding a system is one folder and one row.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::config::{Config, Error};
use crate::connector::Connector;
use crate::http::Secret;
use crate::simulator::{RunningSimulator, SimError, SimOptions};

pub mod canto;
pub mod iconik;
pub mod otmm;
pub mod smintio;
pub mod trading_grid;
pub mod vip;

/// A connector built, or why it could not be, naming the configuration key.
pub(crate) type Built = Result<Arc<dyn Connector>, Error>;

/// A simulator starting.
pub(crate) type Starting = Pin<Box<dyn Future<Output = Result<RunningSimulator, SimError>> + Send>>;

/// One external system: what gridflow does with it, whatever the system.
pub(crate) struct System {
    /// The connector's and the simulator's name (`vip`).
    pub(crate) name: &'static str,
    /// Its connector as `gridflow.toml` configures it, with credentials from the
    /// environment; `None` when the file has no section for it.
    pub(crate) from_environment: fn(&Config) -> Option<Built>,
    /// Its connector pointing nowhere, for the offline catalog.
    pub(crate) offline: fn() -> Built,
    /// Starts its simulator.
    pub(crate) start_simulator: fn(SimOptions) -> Starting,
    /// Its connector pointing at its simulator (root `http://<address>`) with the sandbox
    /// credentials, taking the other settings from `config` when it configures the system.
    pub(crate) sandbox: fn(&Config, &str) -> Built,
}

/// Every external system, in the order the sandbox starts them and the registry lists them.
pub(crate) const SYSTEMS: [System; 6] = [
    trading_grid::setup::SYSTEM,
    otmm::setup::SYSTEM,
    vip::setup::SYSTEM,
    iconik::setup::SYSTEM,
    canto::setup::SYSTEM,
    smintio::setup::SYSTEM,
];

/// Where the offline catalog's connectors point: a port nothing listens on.
pub(crate) const NOWHERE: &str = "http://127.0.0.1:9";

/// The placeholder credential of the offline catalog's connectors.
pub(crate) fn offline_secret() -> Secret {
    Secret::new("offline")
}

/// A built connector as a shared one, or the reason it could not be built, naming the key.
pub(crate) fn built<C: Connector + 'static>(
    name: &str,
    connector: crate::connector::Result<C>,
) -> Built {
    match connector {
        Ok(connector) => Ok(Arc::new(connector)),
        Err(error) => Err(Error {
            file: "gridflow.toml".to_owned(),
            key: format!("connectors.{name}"),
            message: format!("cannot build the connector: {error}"),
        }),
    }
}
