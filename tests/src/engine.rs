//! In-process engines for the suites: the real runtime on a real store, with the built-in
//! connectors, a clock and options of the suite's choice.

use std::sync::Arc;

use gridflow_connectors::Registry;
use gridflow_core::limits::Limits;
use gridflow_runtime::{Clock, Engine, EngineOptions, SystemClock};
use gridflow_store::Store;
use gridflow_store::sql::{SqlOptions, SqlStore};

/// Starts an engine on the database at `url` (default store options).
pub async fn engine_on(
    url: &str,
    clock: Arc<dyn Clock>,
    options: EngineOptions,
) -> anyhow::Result<Engine> {
    let store = SqlStore::connect(url, SqlOptions::default()).await?;
    engine_with_store(Arc::new(store), clock, options).await
}

/// Starts an engine on `store`.
pub async fn engine_with_store(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    options: EngineOptions,
) -> anyhow::Result<Engine> {
    Ok(Engine::start(store, Arc::new(Registry::with_builtin()), clock, options).await?)
}

/// Starts an engine on the database at `url` with the system clock and `limits`.
pub async fn engine_with_limits(url: &str, limits: Limits) -> anyhow::Result<Engine> {
    let options = EngineOptions {
        limits,
        ..EngineOptions::default()
    };
    engine_on(url, Arc::new(SystemClock), options).await
}
