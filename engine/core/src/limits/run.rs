//! Checks of the run-time limits: sizes of signals and outputs, signals kept per instance.
//!
//! Sizes are bytes of the compact JSON text (what the store writes), counted without
//! building the text.

use serde_json::Value;

use super::Limits;
use crate::state::{InstanceState, StepState, Work};

/// A refusal by one limit: what was too large or too many, and the limit's key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} is {size} {unit}, over limits.{limit} ({max})")]
pub struct LimitExceeded {
    /// The limit's key in `[limits]` (`max_signal_bytes`).
    pub limit: &'static str,
    /// What exceeded it (`signal "approved" payload`).
    pub what: String,
    /// The size or count it would have had.
    pub size: u64,
    /// The configured maximum.
    pub max: u64,
    /// `bytes` or `signals`.
    pub unit: &'static str,
}

impl LimitExceeded {
    /// The limit's full name, `limits.<key>`.
    pub fn key(&self) -> String {
        format!("limits.{}", self.limit)
    }
}

/// The size of `value` as compact JSON text, in bytes.
pub fn serialized_size(value: &Value) -> u64 {
    struct Counter(u64);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing a `Value` to a writer that never fails cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

impl Limits {
    /// Refuses a signal payload over `max_signal_bytes`.
    pub fn check_signal(&self, name: &str, payload: &Value) -> Result<u64, LimitExceeded> {
        let size = serialized_size(payload);
        let max = self.max_signal_bytes.get();
        if size > max {
            return Err(LimitExceeded {
                limit: "max_signal_bytes",
                what: format!("the payload of signal \"{name}\""),
                size,
                max,
                unit: "bytes",
            });
        }
        Ok(size)
    }

    /// Refuses an action output over `max_output_bytes`.
    pub fn check_output(&self, output: &Value) -> Result<(), LimitExceeded> {
        let size = serialized_size(output);
        let max = self.max_output_bytes.get();
        if size > max {
            return Err(LimitExceeded {
                limit: "max_output_bytes",
                what: "the action's output".to_owned(),
                size,
                max,
                unit: "bytes",
            });
        }
        Ok(())
    }
}

/// Refuses signal `name` (of `payload_size` bytes) if no active wait step consumes it now
/// and keeping it would pass `max_pending_signals` or `max_pending_signal_bytes`.
///
/// A wait step that is active for `name` consumes a new signal at once, so such a signal
/// is never refused here.
pub fn pending_signals_check(
    limits: &Limits,
    state: &InstanceState,
    name: &str,
    payload_size: u64,
) -> Result<(), LimitExceeded> {
    let consumed_now = state.steps.values().any(|step| {
        matches!(step, StepState::Active { work: Work::Wait { signal, .. } } if signal == name)
    });
    if consumed_now {
        return Ok(());
    }
    let count = state.signals.len() as u64 + 1;
    let max_count = u64::from(limits.max_pending_signals.get());
    if count > max_count {
        return Err(LimitExceeded {
            limit: "max_pending_signals",
            what: format!(
                "keeping signal \"{name}\", which no step waits for now, the number of kept signals"
            ),
            size: count,
            max: max_count,
            unit: "signals",
        });
    }
    let bytes = state
        .signals
        .iter()
        .map(|kept| serialized_size(&kept.payload))
        .sum::<u64>()
        + payload_size;
    let max_bytes = limits.max_pending_signal_bytes.get();
    if bytes > max_bytes {
        return Err(LimitExceeded {
            limit: "max_pending_signal_bytes",
            what: format!(
                "keeping signal \"{name}\", which no step waits for now, the kept signals' payloads"
            ),
            size: bytes,
            max: max_bytes,
            unit: "bytes",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn serialized_size_counts_compact_json() {
        let value = json!({"a": [1, "é", null]});
        assert_eq!(
            serialized_size(&value),
            serde_json::to_vec(&value).unwrap().len() as u64
        );
    }

    #[test]
    fn oversized_signal_names_the_limit_and_the_size() {
        let limits = Limits {
            max_signal_bytes: std::num::NonZeroU64::new(10).unwrap(),
            ..Limits::default()
        };
        let error = limits.check_signal("go", &json!("0123456789")).unwrap_err();
        assert_eq!(error.key(), "limits.max_signal_bytes");
        assert_eq!(
            error.to_string(),
            "the payload of signal \"go\" is 12 bytes, over limits.max_signal_bytes (10)"
        );
        assert_eq!(limits.check_signal("go", &json!("01234567")), Ok(10));
    }

    #[test]
    fn oversized_output_names_the_limit() {
        let limits = Limits {
            max_output_bytes: std::num::NonZeroU64::new(4).unwrap(),
            ..Limits::default()
        };
        let error = limits.check_output(&json!({"a": 1})).unwrap_err();
        assert_eq!(error.limit, "max_output_bytes");
        assert_eq!(error.size, 7);
        assert!(limits.check_output(&json!([])).is_ok());
    }
}
