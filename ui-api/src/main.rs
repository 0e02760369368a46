//! The `gridflow` binary: the composition root.
//!
//! It parses the command line, and for `serve` wires the concrete store ([`SqlStore`]),
//! the connectors, the clock and the engine into the HTTP application. Every other
//! command is run by the library's `cli` module.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use tracing_subscriber::EnvFilter;

use gridflow::cli::{Cli, Command, SandboxArgs, ServeArgs, SqliteSync};
use gridflow::events::EventSecrets;
use gridflow::{AppState, app, output};
use gridflow_connectors::Registry;
use gridflow_connectors::config::Config;
use gridflow_connectors::http::Secret;
use gridflow_connectors::sandbox::{Sandbox, connectors_from_environment};
use gridflow_connectors::simulator::{
    SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD, SANDBOX_USERNAME,
};
use gridflow_runtime::{
    AuditKey, Engine, EngineOptions, Poller, PollerOptions, Scheduler, SchedulerOptions,
    SystemClock,
};
use gridflow_store::sql::SqliteSynchronous;
use gridflow_store::{SqlOptions, SqlStore};

/// mimalloc: the engine allocates and frees many small JSON values per commit, where the
/// system allocator spent about a fifth of the W1 benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The environment variable that holds the admin token of `serve`.
const ADMIN_TOKEN_VARIABLE: &str = "GRIDFLOW_ADMIN_TOKEN";

#[tokio::main]
async fn main() -> ExitCode {
    // Usage errors exit with clap's code 2.
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => match serve(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                output::error_line(format!("error: {}", output::error_chain(error.as_ref())));
                ExitCode::FAILURE
            }
        },
        Command::Validate(args) => gridflow::cli::validate_files(&args.files),
        Command::Sandbox(args) => match sandbox(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                output::error_line(format!("error: {}", output::error_chain(error.as_ref())));
                ExitCode::FAILURE
            }
        },
        Command::Audit(args) => gridflow::audit_cli::run(args).await,
        Command::Client(command) => gridflow::cli::run_client(command).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    // Read before anything else so that a bad setting fails fast; a generated token is
    // printed once the server is about to listen, not before a failed start.
    let (admin_token, generated) = admin_token()?;
    let config = load_config(args.config.as_deref())?;
    let mut registry = Registry::with_builtin();
    // Kept alive until the server stops: dropping it stops the simulators.
    let mut sandbox = None;
    let scheduler_options = scheduler_options()?;
    let mut event_secrets = EventSecrets::from_env();
    if args.sandbox {
        let started = Sandbox::start(Some(&config.sandbox.state_dir))
            .await
            .context("cannot start the simulators")?;
        for connector in started.connectors(&config)? {
            registry.register(connector);
        }
        // To stderr: tests and scripts read the listening line as stdout's first line.
        for simulator in started.simulators() {
            output::error_line(format!(
                "sandbox {} {}",
                simulator.name(),
                simulator.base_url()
            ));
        }
        sandbox = Some(started);
    } else {
        for connector in connectors_from_environment(&config)? {
            registry.register(connector);
        }
    }

    let options = SqlOptions {
        sqlite_synchronous: match args.sqlite_synchronous {
            SqliteSync::Full => SqliteSynchronous::Full,
            SqliteSync::Normal => SqliteSynchronous::Normal,
        },
        ..SqlOptions::default()
    };
    // The URL is not repeated in the context: it may carry a password (the store redacts
    // it in its own messages).
    let store = SqlStore::connect(&args.database_url, options)
        .await
        .context("cannot open the database")?;
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
    let engine = Engine::start(
        Arc::new(store),
        Arc::new(registry),
        Arc::new(SystemClock),
        EngineOptions {
            audit_key: Some(audit_key),
            checkpoint_interval: (!args.checkpoint_interval.is_zero())
                .then_some(args.checkpoint_interval),
            ..EngineOptions::default()
        },
    )
    .await
    .context("cannot start the engine")?;

    let listener = tokio::net::TcpListener::bind(&args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let address: SocketAddr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    tracing::info!(%address, sandbox = args.sandbox, "serving");
    if generated {
        output::error_line(format!("admin token: {admin_token}"));
        output::error_line(format!(
            "  use it with the CLI: export GRIDFLOW_TOKEN={admin_token}"
        ));
    }
    if args.sandbox {
        // Fresh demo tokens on every start: earlier ones cannot be shown again, since only
        // their hashes are stored. Printed once, to stderr, like a generated admin token.
        let demo_users = gridflow::tokens::create_sandbox_tokens(&engine)
            .await
            .map_err(|error| {
                anyhow::anyhow!("cannot create the sandbox users: {}", error.message())
            })?;
        output::error_line("sandbox users (tokens shown once):");
        for (user, token) in demo_users {
            let groups = if user.groups.is_empty() {
                String::new()
            } else {
                format!(" groups={}", user.groups.join(","))
            };
            output::error_line(format!(
                "  {:<5} role={:<8}{groups} token={token}",
                user.user, user.role
            ));
        }
    }
    if let Some(sandbox) = &sandbox {
        // The simulators that push changes (Canto, iconik) send their webhooks here, with
        // a secret made for this run unless GRIDFLOW_EVENT_SECRET_<SOURCE> sets one.
        let mut secret_of = |source: &str| {
            let made = hex::encode(rand::random::<[u8; 32]>());
            event_secrets = event_secrets.with_default(source, made.as_bytes());
            let secret = event_secrets.secret(source).unwrap_or_default();
            Secret::new(String::from_utf8_lossy(secret).into_owned())
        };
        let (canto_secret, iconik_secret) = (secret_of("canto"), secret_of("iconik"));
        // The simulators reach the server where it listens; on every interface, by loopback.
        let reachable = if address.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], address.port()))
        } else {
            address
        };
        let events_url = format!("http://{reachable}/api/v1/events");
        sandbox
            .subscribe_webhooks(&events_url, &canto_secret, &iconik_secret)
            .await
            .map_err(|error| anyhow::anyhow!(error))?;
        tracing::info!(%events_url, "sandbox simulators send their webhooks here");
    }
    // Tests and scripts parse this line for the actual port (`--bind 127.0.0.1:0`).
    output::line(format!("gridflow listening on http://{address}"));

    // The pollers share the scheduler's node name as lease holder; each lease outlives
    // a few of its poll intervals, so it lapses only when the node stops polling.
    let pollers: Vec<Poller> = engine
        .registry()
        .change_feeds()
        .into_iter()
        .map(|feed| {
            let options = PollerOptions {
                node: scheduler_options.node.clone(),
                lease_duration: (feed.poll_interval() * 3).max(Duration::from_secs(30)),
                ..PollerOptions::default()
            };
            Poller::new(engine.clone(), feed, options)
        })
        .collect();
    let poller_tasks: Vec<_> = pollers.iter().cloned().map(Poller::spawn).collect();
    let scheduler = Scheduler::new(engine.clone(), scheduler_options);
    let scheduler_task = scheduler.clone().spawn();
    let state = AppState {
        engine,
        admin_token,
        event_secrets,
    };
    let served = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await;
    scheduler_task.abort();
    for (poller, task) in pollers.iter().zip(poller_tasks) {
        task.abort();
        // Wait for the aborted pass to end before giving the lease away.
        let _ = task.await;
        if let Err(error) = poller.release().await {
            tracing::warn!(%error, lease = %poller.lease_name(), "cannot release the poll lease; another node takes over when it expires");
        }
    }
    if let Err(error) = scheduler.release().await {
        tracing::warn!(%error, "cannot release the cron lease; another node takes over when it expires");
    }
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await;
    }
    served.context("the server stopped")?;
    tracing::info!("stopped");
    Ok(())
}

/// Reads `gridflow.toml` (or the file named), or nothing when there is none.
fn load_config(named: Option<&std::path::Path>) -> anyhow::Result<Config> {
    match gridflow::cli::config_path(named) {
        Some(path) => Ok(Config::load(&path)?),
        None => Ok(Config::default()),
    }
}

/// One stdout line per simulator: `sandbox <name> http://127.0.0.1:<port>`.
fn print_simulators(sandbox: &Sandbox) {
    for simulator in sandbox.simulators() {
        output::line(format!(
            "sandbox {} {}",
            simulator.name(),
            simulator.base_url()
        ));
    }
}

/// `gridflow sandbox`: the simulators alone, until Ctrl-C or SIGTERM.
async fn sandbox(args: SandboxArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = load_config(args.config.as_deref())?;
    let sandbox = Sandbox::start(Some(&config.sandbox.state_dir))
        .await
        .context("cannot start the simulators")?;
    print_simulators(&sandbox);
    output::error_line(format!(
        "simulator state in {}; client id {SANDBOX_CLIENT_ID}, client secret {SANDBOX_CLIENT_SECRET}, \
         user {SANDBOX_USERNAME}, password {SANDBOX_PASSWORD} (sandbox only)",
        config.sandbox.state_dir.display()
    ));
    shutdown_signal().await;
    sandbox.shutdown().await;
    Ok(())
}

/// The admin token from the environment, or a new random one (then `true`: the caller
/// prints it once, to stderr, as stdout carries only the listening line). It is never
/// logged.
fn admin_token() -> anyhow::Result<(Arc<str>, bool)> {
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
fn scheduler_options() -> anyhow::Result<SchedulerOptions> {
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

/// Resolves on SIGINT (Ctrl-C) or SIGTERM; the server then finishes its requests.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested; finishing open requests");
}
