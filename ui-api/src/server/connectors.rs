//! The connectors of `serve`: the built-in ones, `core.http` with `[core_http]`, and
//! either the systems configured from the environment or, with `--sandbox`, the local
//! simulators (started here, and subscribed to the server's webhooks once it listens).
//! Also the event sources' secrets, which the sandbox completes.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;

use gridflow::http::event_secrets::EventSecrets;
use gridflow::output;
use gridflow_connectors::Registry;
use gridflow_connectors::config::Config;
use gridflow_connectors::http::Secret;
use gridflow_connectors::sandbox::{Sandbox, connectors_from_environment};

/// What the connector step yields.
pub(crate) struct Connectors {
    /// Every connector the engine may invoke.
    pub(crate) registry: Registry,
    /// The simulators of `--sandbox`; kept alive until the server stops (dropping them
    /// stops them).
    pub(crate) sandbox: Option<Sandbox>,
    /// The webhook secret of each event source.
    pub(crate) event_secrets: EventSecrets,
}

/// Builds the registry and, with `sandbox`, starts the simulators.
pub(crate) async fn connect(config: &Config, sandbox: bool) -> anyhow::Result<Connectors> {
    let mut registry = Registry::with_builtin();
    // `core.http` with the destinations and response cap of `[core_http]`.
    registry.register(Arc::new(
        gridflow_connectors::core::CoreConnector::with_config(&config.core_http),
    ));
    // The sandbox's iconik and Canto cannot sign their webhooks: they send the plain
    // secret; the hub signs with X-Hub-Signature. As configured here unless
    // gridflow.toml says otherwise.
    let webhooks = if sandbox {
        config.webhooks.clone().with_sandbox_sources()
    } else {
        config.webhooks.clone()
    };
    let event_secrets = EventSecrets::from_env().with_settings(webhooks);
    if !sandbox {
        for connector in connectors_from_environment(config)? {
            registry.register(connector);
        }
        return Ok(Connectors {
            registry,
            sandbox: None,
            event_secrets,
        });
    }
    let started = Sandbox::start(Some(&config.sandbox.state_dir))
        .await
        .context("cannot start the simulators")?;
    for connector in started.connectors(config)? {
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
    Ok(Connectors {
        registry,
        sandbox: Some(started),
        event_secrets,
    })
}

/// Points the simulators that push changes (Canto, iconik, the Trading Grid hub, VIP) at the server listening on
/// `address`, with a secret made for this run unless GRIDFLOW_EVENT_SECRET_<SOURCE> sets
/// one; `event_secrets` then holds those secrets.
pub(crate) async fn subscribe_webhooks(
    sandbox: &Sandbox,
    event_secrets: &mut EventSecrets,
    address: SocketAddr,
) -> anyhow::Result<()> {
    let mut secret_of = |source: &str| {
        let made = hex::encode(rand::random::<[u8; 32]>());
        *event_secrets = event_secrets.with_default(source, made.as_bytes());
        let secret = event_secrets.secret(source).unwrap_or_default();
        Secret::new(String::from_utf8_lossy(secret).into_owned())
    };
    let (canto_secret, iconik_secret) = (secret_of("canto"), secret_of("iconik"));
    let hub_secret = secret_of("trading_grid");
    let vip_secret = secret_of("vip");
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
    // The hub calls back signed with X-Hub-Signature; its poller still reads the feed, and
    // the two share one claim per event id.
    sandbox
        .subscribe_hub_webhooks(&events_url, &hub_secret)
        .await
        .map_err(|error| anyhow::anyhow!(error))?;
    // VIP signs its events with X-Signature (`[webhooks.sources.vip]`).
    sandbox
        .subscribe_vip(&events_url, &vip_secret)
        .await
        .map_err(|error| anyhow::anyhow!(error))?;
    tracing::info!(%events_url, "sandbox simulators send their webhooks here");
    Ok(())
}
