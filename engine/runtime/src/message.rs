//! The driver's inbox: what the engine handle and the background tasks ask the driver to
//! do, and how a caller waits for the answer.
//!
//! A leaf: it names no task and no handle, so the driver, the executor and the engine's
//! methods all speak through it without importing one another.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::oneshot;

use gridflow_core::command::ChildStart;
use gridflow_core::machine::Input;
use gridflow_core::{Definition, InstanceId};

use crate::availability::Availability;
use crate::error::{Error, Result};

/// Where the driver answers a caller, once what the caller asked for is durable.
pub(crate) type Reply = oneshot::Sender<Result<()>>;

/// A message to the driver.
pub(crate) enum Message {
    /// Create and start a new instance.
    Start {
        instance: InstanceId,
        definition: Arc<Definition>,
        version: u32,
        input: Value,
        actor: String,
        reply: Reply,
    },
    /// Feed an input to an existing instance.
    Input {
        instance: InstanceId,
        input: Input,
        reply: Option<Reply>,
    },
    /// Look at the timers now (the clock moved); the reply comes after that cycle's commit.
    Wake(Option<Reply>),
    /// Start the child of a parent's workflow unit, unless it exists (see `children`).
    StartChild {
        parent: InstanceId,
        start: ChildStart,
        /// `None` when the runner found the child stored already.
        resolved: Option<crate::children::Resolved>,
    },
    /// Remove a settled outbox row (a child's cancel) in the next commit.
    WorkDone(String),
}

/// Waits for the driver's answer to a message, or until the database is found unreachable:
/// then the caller hears "unavailable" at once instead of waiting for a commit that waits
/// for a connection. The write may still land; it was not acknowledged, and a retry with
/// the same idempotency key finds it.
pub(crate) async fn wait(
    availability: &Availability,
    answer: oneshot::Receiver<Result<()>>,
) -> Result<()> {
    tokio::select! {
        answer = answer => {
            answer.map_err(|_| Error::Unavailable("the engine is shutting down".to_owned()))?
        }
        () = availability.unreachable() => Err(Error::Unavailable(
            "the database became unreachable before the write was confirmed".to_owned(),
        )),
    }
}
