//! The `gridflow` binary: the composition root.
//!
//! It parses the command line, and for `serve` wires the concrete store ([`SqlStore`]),
//! the connectors, the clock and the engine into the HTTP application. Every other
//! command is run by the library's `cli` module.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use tracing_subscriber::EnvFilter;

use gridflow::cli::{Cli, Command, ServeArgs, SqliteSync};
use gridflow::{AppState, app, output};
use gridflow_connectors::Registry;
use gridflow_runtime::{AuditKey, Engine, EngineOptions, SystemClock};
use gridflow_store::sql::SqliteSynchronous;
use gridflow_store::{SqlOptions, SqlStore};

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
    if args.sandbox {
        output::error_line(
            "sandbox: no connector simulators exist yet (they come with the connectors); \
             running with the built-in `core` connector only",
        );
    }
    let registry = Registry::with_builtin();

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
    // Tests and scripts parse this line for the actual port (`--bind 127.0.0.1:0`).
    output::line(format!("gridflow listening on http://{address}"));

    let state = AppState {
        engine,
        admin_token,
    };
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the server stopped")?;
    tracing::info!("stopped");
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
