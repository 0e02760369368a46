//! Whether the database answers: a gate, set by the database watch (`database_watch`), so
//! that callers are told "unavailable" at once during an outage instead of each waiting
//! for a connection.
//!
//! While the last check failed, `Engine::database_reachable` is false: the HTTP layer
//! answers 503 without touching the store, and `Engine::health` fails at once. Nothing
//! else stops: the driver keeps its inputs and feeds them again (see the driver's
//! `recovery`), and the first successful check reopens the gate, so recovery needs no
//! operator.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

/// The last known reachability of the database.
#[derive(Debug)]
pub(crate) struct Availability {
    unreachable: AtomicBool,
    /// Wakes the watching task for a check now (a commit just failed).
    check_now: Notify,
    /// Wakes every caller waiting for a write when the database is found unreachable.
    went_down: Notify,
}

impl Default for Availability {
    fn default() -> Self {
        Self {
            unreachable: AtomicBool::new(false),
            check_now: Notify::new(),
            went_down: Notify::new(),
        }
    }
}

impl Availability {
    /// Whether the last check succeeded.
    pub(crate) fn reachable(&self) -> bool {
        !self.unreachable.load(Ordering::Acquire)
    }

    /// Asks for a check now, instead of at the next tick: an operation just failed.
    pub(crate) fn suspect(&self) {
        self.check_now.notify_one();
    }

    /// Completes when a check is asked for ([`Availability::suspect`]).
    pub(crate) fn check_requested(&self) -> Notified<'_> {
        self.check_now.notified()
    }

    /// Resolves once the database is known to be unreachable (at once if it is now).
    ///
    /// A caller waiting for its write to be confirmed races this, so that it is told
    /// "unavailable" as soon as the outage is known instead of waiting for a commit that
    /// is itself waiting for a connection.
    pub(crate) async fn unreachable(&self) {
        loop {
            let went_down = self.went_down.notified();
            tokio::pin!(went_down);
            // Registered before the check, so a change between the two is not missed.
            went_down.as_mut().enable();
            if !self.reachable() {
                return;
            }
            went_down.await;
        }
    }

    /// Records a check's outcome; returns whether it changed.
    pub(crate) fn record(&self, reachable: bool) -> bool {
        let changed = self.unreachable.swap(!reachable, Ordering::AcqRel) == reachable;
        if changed && !reachable {
            self.went_down.notify_waiters();
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_reported_once() {
        let availability = Availability::default();
        assert!(availability.reachable());
        assert!(!availability.record(true));
        assert!(availability.record(false));
        assert!(!availability.reachable());
        assert!(!availability.record(false));
        assert!(availability.record(true));
        assert!(availability.reachable());
    }

    #[tokio::test]
    async fn a_waiter_learns_of_an_outage_when_it_is_found() {
        let availability = std::sync::Arc::new(Availability::default());
        let waiter = tokio::spawn({
            let availability = availability.clone();
            async move { availability.unreachable().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "the database is reachable");
        availability.record(false);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the waiter is woken when the outage is found")
            .expect("the waiter does not panic");
        // Once known, at once.
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            availability.unreachable(),
        )
        .await
        .expect("an outage already known resolves at once");
    }
}
