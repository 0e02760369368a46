//! The tokens of a server run: the generated admin token, shown once, and the sandbox's
//! demo tokens, which end with the run (those of earlier runs are revoked at start-up,
//! this run's at a graceful shutdown).

use gridflow::http::sandbox_tokens;
use gridflow::http::state::TokenSettings;
use gridflow::output;
use gridflow_runtime::Engine;

/// Prints a generated admin token once, to stderr (stdout carries only the listening
/// line).
pub(crate) fn announce_admin_token(admin_token: &str) {
    output::error_line(format!("admin token: {admin_token}"));
    output::error_line(format!(
        "  use it with the CLI: export GRIDFLOW_TOKEN={admin_token}"
    ));
}

/// Revokes the demo tokens of earlier runs. They are refused already (they name another
/// run); revoking them also shows it in `token list` and the audit log, after a SIGKILL
/// too.
pub(crate) async fn revoke_earlier_demo_tokens(
    engine: &Engine,
    settings: &TokenSettings,
) -> anyhow::Result<()> {
    let ended = sandbox_tokens::revoke_sandbox_tokens(engine, settings, false)
        .await
        .map_err(|error| {
            anyhow::anyhow!(
                "cannot revoke the demo tokens of earlier runs: {}",
                error.message()
            )
        })?;
    if ended > 0 {
        tracing::info!(
            tokens = ended,
            "demo tokens of earlier sandbox runs revoked"
        );
    }
    Ok(())
}

/// Fresh demo tokens on every sandbox start: earlier ones cannot be shown again, since
/// only their hashes are stored. Printed once, to stderr, like a generated admin token.
/// They end with this run.
pub(crate) async fn create_demo_tokens(
    engine: &Engine,
    settings: &TokenSettings,
) -> anyhow::Result<()> {
    let demo_users = sandbox_tokens::create_sandbox_tokens(engine, settings)
        .await
        .map_err(|error| anyhow::anyhow!("cannot create the sandbox users: {}", error.message()))?;
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
    Ok(())
}

/// Revokes this run's demo tokens at a graceful shutdown; a failure is only logged, since
/// any other run refuses them anyway.
pub(crate) async fn revoke_own_demo_tokens(engine: &Engine, settings: &TokenSettings) {
    match sandbox_tokens::revoke_sandbox_tokens(engine, settings, true).await {
        Ok(revoked) => tracing::info!(tokens = revoked, "demo tokens of this run revoked"),
        // They are refused by any other run anyway.
        Err(error) => {
            tracing::warn!(error = %error.message(), "cannot revoke this run's demo tokens")
        }
    }
}
