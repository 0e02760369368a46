//! Opening the store and building the engine: the store's options, the audit signing
//! key, the engine's options, and the start itself, tried again while the database is
//! unreachable. The only room that names the concrete store ([`SqlStore`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use gridflow::cli::{ServeArgs, SqliteSync};
use gridflow_connectors::Registry;
use gridflow_connectors::config::Config;
use gridflow_runtime::{AuditKey, Clock, Engine, EngineOptions};
use gridflow_store::sql::SqliteSynchronous;
use gridflow_store::{SqlOptions, SqlStore};

/// The store's options from `serve`'s arguments.
pub(crate) fn store_options(args: &ServeArgs) -> SqlOptions {
    SqlOptions {
        sqlite_synchronous: match args.sqlite_synchronous {
            SqliteSync::Full => SqliteSynchronous::Full,
            SqliteSync::Normal => SqliteSynchronous::Normal,
        },
        ..SqlOptions::default()
    }
}

/// The engine's options: the audit signing key (loaded, or created on first start), the
/// checkpoint interval and the limits of `gridflow.toml`.
pub(crate) fn engine_options(args: &ServeArgs, config: &Config) -> anyhow::Result<EngineOptions> {
    let key_path = args
        .audit_key
        .clone()
        .unwrap_or_else(|| gridflow::cli::default_audit_key(&args.database_url));
    let (audit_key, created) =
        AuditKey::load_or_create(&key_path).context("cannot load the audit signing key")?;
    tracing::info!(
        path = %key_path.display(),
        created,
        public_key = %audit_key.public_key(),
        "audit signing key ready"
    );
    Ok(EngineOptions {
        audit_key: Some(audit_key),
        checkpoint_interval: (!args.checkpoint_interval.is_zero())
            .then_some(args.checkpoint_interval),
        limits: config.limits.clone(),
        ..EngineOptions::default()
    })
}

/// Connects to the database and starts the engine, trying again while the database is
/// unreachable (at start-up it may come up after the node), with a log line per attempt
/// that names the database (without its password) and when the next attempt is.
pub(crate) async fn open_engine(
    url: &str,
    options: SqlOptions,
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
    engine_options: EngineOptions,
) -> anyhow::Result<Engine> {
    let database = gridflow_store::sql::redact(url);
    let mut delay = Duration::from_millis(500);
    let mut attempt: u32 = 1;
    loop {
        // The URL is not repeated in the contexts: it may carry a password (the store
        // redacts it in its own messages).
        let problem = match SqlStore::connect(url, options.clone()).await {
            Ok(store) => match Engine::start(
                Arc::new(store),
                registry.clone(),
                clock.clone(),
                engine_options.clone(),
            )
            .await
            {
                Ok(engine) => {
                    if attempt > 1 {
                        tracing::warn!(%database, attempt, "the database answers; the engine is ready");
                    }
                    return Ok(engine);
                }
                Err(gridflow_runtime::Error::Unavailable(message)) => message,
                Err(error) => return Err(error).context("cannot start the engine"),
            },
            Err(gridflow_store::Error::Unavailable { message, .. }) => message,
            Err(error) => return Err(error).context("cannot open the database"),
        };
        tracing::warn!(
            %database,
            attempt,
            next_attempt_in = ?delay,
            %problem,
            "cannot reach the database; serving 503 meanwhile"
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
        attempt = attempt.saturating_add(1);
    }
}
