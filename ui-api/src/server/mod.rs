//! `gridflow serve` and `gridflow sandbox`, step by step. `serve`: read the settings
//! ([`setup`]), build the connectors ([`connectors`]), listen at once and answer 503
//! while the store is opened and the engine built ([`engine`]), then the tokens of the
//! run ([`tokens`]), the application, the background work ([`background`]), and on the
//! shutdown signal ([`shutdown`]) everything stopped in reverse.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use gridflow::cli::{SandboxArgs, ServeArgs};
use gridflow::http::availability::Gate;
use gridflow::http::state::TokenSettings;
use gridflow::output;
use gridflow::{AppState, app};
use gridflow_connectors::config::HttpConfig;
use gridflow_connectors::sandbox::Sandbox;
use gridflow_connectors::simulator::{
    SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD, SANDBOX_USERNAME,
};
use gridflow_runtime::{Clock, SandboxClock, SystemClock};

mod background;
mod connectors;
mod engine;
mod setup;
mod shutdown;
mod tokens;

use background::Background;
use connectors::Connectors;

/// `gridflow serve`: the HTTP API and the engine, until Ctrl-C or SIGTERM.
pub(crate) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    setup::init_tracing();
    // Read before anything else so that a bad setting fails fast; a generated token is
    // printed once the server is about to listen, not before a failed start.
    let (admin_token, generated) = setup::admin_token()?;
    let mut config = setup::load_config(args.config.as_deref())?;
    if config.content.dir.is_none() {
        config.content.dir = Some(gridflow::cli::default_content_dir(&args.database_url));
    }
    let scheduler_options = setup::scheduler_options()?;
    let Connectors {
        registry,
        sandbox,
        mut event_secrets,
    } = connectors::connect(&config, args.sandbox).await?;
    let store_options = engine::store_options(&args);
    let engine_options = engine::engine_options(&args, &config)?;

    // Listen before the database is reached: until the engine is ready, every request is
    // answered 503 with Retry-After (a load balancer sees a node that is starting, not a
    // dead one), and the database is tried again and again.
    let (listener, address) = bind(&args.bind).await?;
    let gate = Gate::new();
    // The sandbox runs on a clock that `POST /sandbox/clock` moves forward; a real
    // server only ever on the system clock.
    let sandbox_clock = args.sandbox.then(|| Arc::new(SandboxClock::new()));
    let clock: Arc<dyn Clock> = match &sandbox_clock {
        Some(sandbox_clock) => sandbox_clock.clone(),
        None => Arc::new(SystemClock),
    };
    let mut server = spawn_server(listener, gate.clone(), config.http.clone());
    tracing::info!(%address, "listening; answering 503 until the database is ready");
    let opening = engine::open_engine(
        &args.database_url,
        store_options,
        Arc::new(registry),
        clock,
        engine_options,
    );
    let engine = tokio::select! {
        engine = opening => engine?,
        served = &mut server => {
            if let Some(sandbox) = sandbox {
                sandbox.shutdown().await;
            }
            served.context("the server task failed")?;
            tracing::info!("stopped before the database was ready");
            return Ok(());
        }
    };

    tracing::info!(%address, sandbox = args.sandbox, "serving");
    if generated {
        tokens::announce_admin_token(&admin_token);
    }
    let token_settings = TokenSettings::new(&config.tokens);
    tokens::revoke_earlier_demo_tokens(&engine, &token_settings).await?;
    if args.sandbox {
        tokens::create_demo_tokens(&engine, &token_settings).await?;
    }
    if let Some(sandbox) = &sandbox {
        connectors::subscribe_webhooks(sandbox, &mut event_secrets, address).await?;
    }
    // The application answers from here on; only then is the node announced as ready.
    let state = AppState {
        engine: engine.clone(),
        admin_token,
        event_secrets,
        tokens: token_settings.clone(),
        sandbox_clock,
        console: Default::default(),
    };
    gate.open(app(state));
    // Tests and scripts parse this line for the actual port (`--bind 127.0.0.1:0`).
    output::line(format!("gridflow listening on http://{address}"));

    let background = Background::start(&engine, scheduler_options);
    let served = server.await;
    if args.sandbox {
        tokens::revoke_own_demo_tokens(&engine, &token_settings).await;
    }
    background.stop().await;
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await;
    }
    served.context("the server task failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// Binds the listening socket; answers it with the address actually bound (port 0 picks
/// a free port).
async fn bind(bind: &str) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let address = listener
        .local_addr()
        .context("cannot read the bound address")?;
    Ok((listener, address))
}

/// Serves `gate` (503 until it opens) on `listener` under the limits of `[http]`, until
/// the shutdown signal.
fn spawn_server(listener: TcpListener, gate: Gate, http: HttpConfig) -> JoinHandle<()> {
    let gate_router = gate.router();
    tokio::spawn(async move {
        gridflow::http::serve::serve(listener, gate_router, &http, shutdown::shutdown_signal())
            .await;
    })
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
pub(crate) async fn sandbox(args: SandboxArgs) -> anyhow::Result<()> {
    setup::init_tracing();
    let config = setup::load_config(args.config.as_deref())?;
    let sandbox = Sandbox::start(Some(&config.sandbox.state_dir))
        .await
        .context("cannot start the simulators")?;
    print_simulators(&sandbox);
    output::error_line(format!(
        "simulator state in {}; client id {SANDBOX_CLIENT_ID}, client secret {SANDBOX_CLIENT_SECRET}, \
         user {SANDBOX_USERNAME}, password {SANDBOX_PASSWORD} (sandbox only)",
        config.sandbox.state_dir.display()
    ));
    shutdown::shutdown_signal().await;
    sandbox.shutdown().await;
    Ok(())
}
