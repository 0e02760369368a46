//! The injected clock. The runtime reads time only through [`Clock`], so tests can
//! drive timers and retries by moving a [`ManualClock`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SubsecRound, Utc};

/// A source of the current time.
///
/// Implementations return microsecond precision: that is what the store keeps and what
/// history hashes, so a state folded from stored events equals the state built live.
pub trait Clock: Send + Sync + 'static {
    /// Now, in UTC, truncated to microseconds.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

/// A clock that only moves when told to.
///
/// A std `Mutex` suffices: it is held for a copy, never across an `.await`.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(now),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, duration: std::time::Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
    }

    /// Sets the clock.
    pub fn set(&self, instant: DateTime<Utc>) {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = instant;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The clock of `serve --sandbox`: the system clock plus an offset that only grows, so a
/// person or a test can move a running sandbox forward ("two days later") and watch
/// reminders, due dates and effective dates happen. Never used outside the sandbox.
#[derive(Debug, Default)]
pub struct SandboxClock {
    /// Microseconds added to the system clock.
    offset_micros: AtomicI64,
}

impl SandboxClock {
    /// A clock at the system time.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `duration` and answers the new time.
    pub fn advance(&self, duration: std::time::Duration) -> DateTime<Utc> {
        let micros = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
        self.offset_micros.fetch_add(micros, Ordering::SeqCst);
        self.now()
    }

    /// How far ahead of the system clock this clock is.
    pub fn offset(&self) -> chrono::Duration {
        chrono::Duration::microseconds(self.offset_micros.load(Ordering::SeqCst))
    }
}

impl Clock for SandboxClock {
    fn now(&self) -> DateTime<Utc> {
        SystemClock.now() + self.offset()
    }
}
