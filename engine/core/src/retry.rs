//! Retry arithmetic on a policy. Pure: the runtime adds the jitter and records the result.

use std::time::Duration;

use crate::definition::RetryPolicy;
use crate::event::ErrorInfo;

impl RetryPolicy {
    /// Whether a failure of attempt `failed_attempt` gets another attempt.
    pub fn allows_retry(&self, failed_attempt: u32, error: &ErrorInfo) -> bool {
        error.retryable
            && failed_attempt < self.max_attempts
            && !self.non_retryable.iter().any(|code| code == &error.code)
    }

    /// The un-jittered delay after attempt `failed_attempt` failed:
    /// `initial_interval × multiplier^(failed_attempt − 1)`, capped at `max_interval`.
    pub fn base_delay(&self, failed_attempt: u32) -> Duration {
        let exponent = failed_attempt.saturating_sub(1).min(64) as i32;
        let growth = if self.multiplier.is_finite() && self.multiplier >= 1.0 {
            self.multiplier.powi(exponent)
        } else {
            1.0
        };
        let seconds = self.initial_interval.as_secs_f64() * growth;
        let capped = seconds.min(self.max_interval.as_secs_f64());
        if capped.is_finite() && capped >= 0.0 {
            Duration::from_secs_f64(capped)
        } else {
            self.max_interval
        }
    }

    /// The range a jittered delay falls in: the upper half of the base delay with jitter
    /// ("equal jitter": never a near-zero delay), the base delay itself without.
    pub fn delay_bounds(&self, failed_attempt: u32) -> (Duration, Duration) {
        let base = self.base_delay(failed_attempt);
        if self.jitter {
            (base / 2, base)
        } else {
            (base, base)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            initial_interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: true,
            non_retryable: vec!["not_found".to_owned()],
        }
    }

    #[test]
    fn base_delay_grows_by_multiplier_and_caps_at_max_interval() {
        let policy = policy();
        let delays: Vec<u64> = (1..=7)
            .map(|attempt| policy.base_delay(attempt).as_secs())
            .collect();
        assert_eq!(delays, vec![2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn jitter_bounds_are_the_upper_half_of_the_base_delay() {
        let policy = policy();
        assert_eq!(
            policy.delay_bounds(3),
            (Duration::from_secs(4), Duration::from_secs(8))
        );
        let exact = RetryPolicy {
            jitter: false,
            ..policy
        };
        assert_eq!(
            exact.delay_bounds(3),
            (Duration::from_secs(8), Duration::from_secs(8))
        );
    }

    #[test]
    fn retry_stops_at_max_attempts_and_on_non_retryable_codes() {
        let policy = policy();
        let transient = ErrorInfo {
            code: "server_error".into(),
            message: "503".into(),
            retryable: true,
        };
        assert!(policy.allows_retry(4, &transient));
        assert!(!policy.allows_retry(5, &transient));
        let missing = ErrorInfo {
            code: "not_found".into(),
            ..transient.clone()
        };
        assert!(!policy.allows_retry(1, &missing));
        let permanent = ErrorInfo {
            retryable: false,
            ..transient
        };
        assert!(!policy.allows_retry(1, &permanent));
    }
}
