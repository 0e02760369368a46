//! Inputs that cannot be applied now because the database is away: fed again later.
//!
//! Action outcomes and timer firings are facts that nobody else will report again: an
//! outcome dropped while the database is unreachable would leave its instance waiting for
//! good (its outbox row is only re-run at the next start-up). So when the instance cannot
//! be loaded, or the batch that carried the input failed, the input goes back to the
//! driver's inbox after a delay, until it is applied.

use std::sync::Arc;
use std::time::Duration;

use gridflow_core::InstanceId;
use gridflow_core::machine::Input;

use crate::message::Message;
use crate::shared::Shared;

/// The delay before the first retry after a failure; it doubles with each failure in a
/// row, up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest wait between two tries while the database stays away.
const MAX_DELAY: Duration = Duration::from_secs(2);

/// How long to wait after `failures` failures in a row (at least one).
pub(super) fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(8);
    (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY)
}

/// Sends `inputs` to the driver again after `delay`.
pub(super) fn feed_later(shared: &Arc<Shared>, inputs: Vec<(InstanceId, Input)>, delay: Duration) {
    if inputs.is_empty() {
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        for (instance, input) in inputs {
            shared.send(Message::Input {
                instance,
                input,
                reply: None,
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_bound() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(4), Duration::from_millis(800));
        assert_eq!(backoff(5), Duration::from_millis(1600));
        assert_eq!(backoff(6), MAX_DELAY);
        assert_eq!(backoff(1000), MAX_DELAY);
    }
}
