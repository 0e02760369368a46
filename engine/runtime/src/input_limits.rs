//! What the driver does to an input before the core sees it: refuse a signal that the
//! instance could only keep beyond `[limits]`, and draw the jittered start of a retry.

use chrono::{DateTime, Utc};

use gridflow_core::limits::{Limits, pending_signals_check};
use gridflow_core::machine::{Input, InputBody};
use gridflow_core::{Definition, InstanceState};

use crate::error::{Error, Result};

/// Checks `input` against the limits and completes what the runtime decides for it. A
/// refused input has touched nothing: the state is as before, and nothing is written.
pub(crate) fn prepare(
    input: &mut Input,
    state: &InstanceState,
    definition: &Definition,
    limits: &Limits,
) -> Result<()> {
    match &mut input.body {
        InputBody::ActionFailed { work, retry_at, .. } => {
            *retry_at = Some(jittered_retry_at(definition, work, input.at, *retry_at));
        }
        InputBody::Signal { name, payload, .. } => {
            let size = limits
                .check_signal(name, payload)
                .map_err(Error::LimitExceeded)?;
            pending_signals_check(limits, state, name, size).map_err(Error::LimitExceeded)?;
        }
        InputBody::Start { .. }
        | InputBody::StartChild { .. }
        | InputBody::ChildStarted { .. }
        | InputBody::ActionStarted { .. }
        | InputBody::ActionSucceeded { .. }
        | InputBody::TimerFired { .. }
        | InputBody::Cancel { .. }
        | InputBody::RetryStep { .. }
        | InputBody::Decide { .. }
        | InputBody::Delegate { .. }
        | InputBody::Rerun { .. }
        | InputBody::Migrate { .. } => {}
    }
    Ok(())
}

/// When the next attempt after a failure starts: the policy's base delay, jittered into
/// its upper half with tokio-retry's jitter when the policy asks for it, and never before
/// a `Retry-After` the system gave.
fn jittered_retry_at(
    definition: &Definition,
    work: &gridflow_core::WorkKey,
    at: DateTime<Utc>,
    hint: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    let policy = definition
        .step(&work.step)
        .map(|step| step.retry_policy())
        .unwrap_or_default();
    let base = policy.base_delay(work.attempt);
    let delay = if policy.jitter {
        let half = base / 2;
        half + tokio_retry::strategy::jitter(base - half)
    } else {
        base
    };
    let computed = at + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
    match hint {
        Some(hint) if hint > computed => hint,
        Some(_) | None => computed,
    }
}
