//! The first steps of `serve` and `sandbox`, before anything starts: logging, the admin
//! token, `gridflow.toml` and the cron scheduler's settings from the environment. Each
//! fails fast on a bad setting.

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::bail;
use tracing_subscriber::EnvFilter;

use gridflow_connectors::config::Config;
use gridflow_runtime::SchedulerOptions;

/// The environment variable that holds the admin token of `serve`.
const ADMIN_TOKEN_VARIABLE: &str = "GRIDFLOW_ADMIN_TOKEN";

/// What `serve` logs when `RUST_LOG` is unset: gridflow's own INFO lines (simulators,
/// listening, start-up), the libraries' chatter (each migration applied, each pool
/// connection, each statement) only from WARN up.
const DEFAULT_LOG_FILTER: &str = "info,sea_orm_migration=warn,sea_orm=warn,sqlx=warn";

/// Logs to stderr (stdout carries the listening line), filtered by `RUST_LOG`,
/// [`DEFAULT_LOG_FILTER`] by default.
pub(crate) fn init_tracing() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Reads `gridflow.toml` (or the file named), or nothing when there is none.
pub(crate) fn load_config(named: Option<&std::path::Path>) -> anyhow::Result<Config> {
    match gridflow::cli::config_path(named) {
        Some(path) => Ok(Config::load(&path)?),
        None => Ok(Config::default()),
    }
}

/// The admin token from the environment, or a new random one (then `true`: the caller
/// prints it once, to stderr, as stdout carries only the listening line). It is never
/// logged.
pub(crate) fn admin_token() -> anyhow::Result<(Arc<str>, bool)> {
    match std::env::var(ADMIN_TOKEN_VARIABLE) {
        Ok(token) if token.trim().is_empty() => {
            bail!("{ADMIN_TOKEN_VARIABLE} is set but empty; unset it to get a generated token")
        }
        Ok(token) => Ok((Arc::from(token.trim()), false)),
        Err(std::env::VarError::NotUnicode(_)) => {
            bail!("{ADMIN_TOKEN_VARIABLE} is not valid UTF-8")
        }
        Err(std::env::VarError::NotPresent) => {
            let token = hex::encode(rand::random::<[u8; 32]>());
            Ok((Arc::from(token), true))
        }
    }
}

/// The cron scheduler's settings, from the environment: `GRIDFLOW_NODE` (this node's
/// name as lease holder; unique by default), `GRIDFLOW_CRON_LEASE` (how long the cron lease
/// lasts, e.g. `15s`) and `GRIDFLOW_CRON_POLL` (how often the scheduler runs, e.g. `1s`).
pub(crate) fn scheduler_options() -> anyhow::Result<SchedulerOptions> {
    let mut options = SchedulerOptions::default();
    if let Ok(node) = std::env::var("GRIDFLOW_NODE")
        && !node.trim().is_empty()
    {
        options.node = node.trim().to_owned();
    }
    for (variable, setting) in [
        ("GRIDFLOW_CRON_LEASE", &mut options.lease_duration),
        ("GRIDFLOW_CRON_POLL", &mut options.poll_interval),
    ] {
        if let Ok(text) = std::env::var(variable) {
            *setting = gridflow_core::duration::parse(&text)
                .map_err(|error| anyhow::anyhow!("{variable}={text:?}: {error}"))?;
            if setting.is_zero() {
                bail!("{variable} must be more than zero");
            }
        }
    }
    if options.poll_interval >= options.lease_duration {
        bail!(
            "GRIDFLOW_CRON_POLL ({:?}) must be shorter than GRIDFLOW_CRON_LEASE ({:?}), or the lease lapses between passes",
            options.poll_interval,
            options.lease_duration
        );
    }
    Ok(options)
}
