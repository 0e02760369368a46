//! `[limits]` of `gridflow.toml`: bounds on what one input may cost.
//!
//! Every limit has a default and is named in the error that refuses what exceeds it
//! (`limits.cel_budget`, `limits.max_signal_bytes`). Limits are configuration, not history:
//! a refused input never becomes an event, and an expression refused by its budget fails
//! its step with an event that records the refusal, so replay never needs them.
//!
//! ```toml
//! [limits]
//! cel_budget = 1000000                # cost units of the expressions of one field (docs/design/limits.md)
//! max_steps = 1000                    # steps of one definition
//! max_signal_bytes = 1048576          # one signal's payload (API, webhooks, pollers)
//! max_pending_signals = 100           # signals kept per instance that no step waits for
//! max_pending_signal_bytes = 4194304  # their payloads together
//! max_output_bytes = 1048576          # one action attempt's output
//! max_page_size = 500                 # the largest `limit` of a list request
//! ```

use std::num::{NonZeroU32, NonZeroU64};

use serde::Deserialize;

use crate::expr::Budget;

mod run;

pub use run::{LimitExceeded, pending_signals_check, serialized_size};

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    // ---- Expression and validation limits (issue 10, item 4: CEL budget, steps). ----
    /// The work budget of the expressions of one field of a step, a trigger or the output,
    /// in cost units (`limits.cel_budget`, see [`Budget`]); an expression that could
    /// exceed it fails its step permanently without running.
    #[serde(default = "default_cel_budget")]
    pub cel_budget: NonZeroU64,
    /// The most steps a definition may have (`limits.max_steps`); a larger one is refused
    /// by validation and deploy.
    #[serde(default = "default_max_steps")]
    pub max_steps: NonZeroU32,
    // ---- End of the expression and validation limits. ----
    // ---- Run-time limits (issue 10, item 4: signals, outputs, lists). ----
    /// The largest signal payload, in bytes of its JSON text (`limits.max_signal_bytes`).
    #[serde(default = "default_max_signal_bytes")]
    pub max_signal_bytes: NonZeroU64,
    /// How many signals an instance keeps that no active wait step consumes
    /// (`limits.max_pending_signals`); one more is refused.
    #[serde(default = "default_max_pending_signals")]
    pub max_pending_signals: NonZeroU32,
    /// The total size of those kept signals' payloads (`limits.max_pending_signal_bytes`).
    #[serde(default = "default_max_pending_signal_bytes")]
    pub max_pending_signal_bytes: NonZeroU64,
    /// The largest output of one action attempt (`limits.max_output_bytes`); a larger one
    /// fails the attempt permanently with code `output_too_large`.
    #[serde(default = "default_max_output_bytes")]
    pub max_output_bytes: NonZeroU64,
    /// The largest page of a list request (`limits.max_page_size`); a larger `limit` is 422.
    #[serde(default = "default_max_page_size")]
    pub max_page_size: NonZeroU32,
    // ---- End of the run-time limits. ----
}

impl Limits {
    /// The work budget of expressions, as [`crate::expr::Scope::within`] takes it.
    pub fn budget(&self) -> Budget {
        Budget::new(self.cel_budget.get())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cel_budget: default_cel_budget(),
            max_steps: default_max_steps(),
            max_signal_bytes: default_max_signal_bytes(),
            max_pending_signals: default_max_pending_signals(),
            max_pending_signal_bytes: default_max_pending_signal_bytes(),
            max_output_bytes: default_max_output_bytes(),
            max_page_size: default_max_page_size(),
        }
    }
}

fn default_cel_budget() -> NonZeroU64 {
    NonZeroU64::new(Budget::DEFAULT.units()).expect("the default budget is not zero")
}

fn default_max_steps() -> NonZeroU32 {
    NonZeroU32::new(1000).expect("1000 is not zero")
}

const MIB: u64 = 1024 * 1024;

fn default_max_signal_bytes() -> NonZeroU64 {
    NonZeroU64::new(MIB).expect("1 MiB is not zero")
}

fn default_max_pending_signals() -> NonZeroU32 {
    NonZeroU32::new(100).expect("100 is not zero")
}

fn default_max_pending_signal_bytes() -> NonZeroU64 {
    NonZeroU64::new(4 * MIB).expect("4 MiB is not zero")
}

fn default_max_output_bytes() -> NonZeroU64 {
    NonZeroU64::new(MIB).expect("1 MiB is not zero")
}

fn default_max_page_size() -> NonZeroU32 {
    NonZeroU32::new(500).expect("500 is not zero")
}
