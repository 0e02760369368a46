//! The database watch: a small background task that asks the store's health check a few
//! times a second with a short timeout and sets the availability gate (`availability`).

use std::sync::Weak;
use std::time::Duration;

use crate::shared::Shared;

/// How often the database is checked.
const CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// How long one check may take before the database counts as unreachable.
const CHECK_TIMEOUT: Duration = Duration::from_millis(500);
/// How many checks in a row must time out before the database counts as unreachable.
const SLOW_CHECKS: u32 = 2;

/// Starts the watching task; it ends when the engine is dropped.
pub(crate) fn spawn_monitor(shared: Weak<Shared>) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(CHECK_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A check that errs (connection refused, authentication, I/O) counts at once; one
        // that is merely slow counts only when the one before it was slow too, so a busy
        // machine (a check starved of CPU for half a second) does not turn a healthy node
        // away.
        let mut slow_checks = 0_u32;
        loop {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            tokio::select! {
                _ = interval.tick() => {}
                () = shared.availability.check_requested() => {}
            }
            let checked = tokio::time::timeout(CHECK_TIMEOUT, shared.store.health()).await;
            let timed_out = checked.is_err();
            let problem = match checked {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(error.to_string()),
                Err(_elapsed) => {
                    slow_checks += 1;
                    if slow_checks < SLOW_CHECKS && shared.availability.reachable() {
                        continue;
                    }
                    Some(format!(
                        "no answer within {CHECK_TIMEOUT:?}, {slow_checks} checks in a row"
                    ))
                }
            };
            if !timed_out {
                slow_checks = 0;
            }
            if shared.availability.record(problem.is_none()) {
                match problem {
                    Some(problem) => {
                        tracing::error!(%problem, "the database is unreachable; requests are answered 503 until it is back")
                    }
                    None => tracing::warn!("the database is reachable again; resuming"),
                }
            }
        }
    });
}
