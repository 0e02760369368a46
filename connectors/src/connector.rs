//! The connector boundary: the [`Connector`] trait, what an action looks like
//! ([`ActionSpec`]), what one attempt of it receives ([`Invocation`]), and how it fails
//! ([`Error`]).
//!
//! A connector performs one attempt and reports the outcome.
//! It never retries on its own: the core decides from the step's retry policy, using
//! [`Error::is_retryable`] and the [`Error::retry_after`] hint.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use gridflow_core::{InstanceId, StepId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::effects::Effects;
pub use crate::error::{Error, Result};

/// One external system (or the built-in `core`), seen as a set of named actions.
///
/// Implementations are shared between tasks behind an `Arc` and must be cheap to call
/// concurrently: keep one HTTP client per connector and no per-call locks.
/// They must never log credentials, request headers that carry them, or raw arguments.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The connector's name, the prefix of its actions in definitions (`core`, `iconik`).
    ///
    /// It must not contain a `.`, which separates the connector from the action.
    fn name(&self) -> &str;

    /// One sentence for analysts: what system this connector speaks to, as
    /// `GET /api/v1/connectors` lists it.
    fn description(&self) -> &str {
        ""
    }

    /// Every action this connector offers, with its argument and output schemas.
    ///
    /// The [`Registry`](crate::Registry) reads the list once, when the connector is
    /// registered.
    fn actions(&self) -> &[ActionSpec];

    /// Runs one attempt of an action and returns its output.
    ///
    /// Through the [`Registry`](crate::Registry), `invocation.arguments` has already been
    /// checked against the action's argument schema; a direct caller gets no such
    /// guarantee, so implementations still reject arguments they cannot use with a
    /// permanent `invalid_arguments` error rather than panic.
    async fn invoke(&self, invocation: Invocation) -> Result<Value>;

    /// The system's change feed, when gridflow polls it for changes (systems without
    /// webhooks); `None` for the others.
    fn change_feed(self: Arc<Self>) -> Option<crate::feed::SharedFeed> {
        None
    }

    /// Every event this system emits, through its webhooks or its change feed, as
    /// `<connector>.<event>` (`trading_grid.post_acknowledged`); empty for a system that
    /// emits none. `validate` refuses a trigger or wait on an event of this connector
    /// that is not listed here.
    fn events(&self) -> &[EventSpec] {
        &[]
    }

    /// Reads a webhook body in this system's own format (the hub's `X-Hub-Signature`
    /// callbacks, VIP's `X-Signature` events) once its signature has been verified: the
    /// event's id, its name without the connector prefix and its payload, shaped as the
    /// change feed shapes the same event. `None`: the system has no format of its own, and
    /// the body is read the generic way (DESIGN.md §5).
    fn read_webhook(&self, body: &Value) -> Option<Result<InboundEvent>> {
        let _ = body;
        None
    }

    /// What event `event` (without the connector prefix) with `payload` means for the
    /// distribution ledger and the rights timers, whether it came by webhook or feed.
    fn event_effects(&self, event: &str, payload: &Value) -> EventEffects {
        let _ = (event, payload);
        EventEffects::default()
    }
}

/// One event read from a system's own webhook format.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundEvent {
    /// The id that makes a redelivery a duplicate.
    pub id: String,
    /// The event's name without the connector prefix (`document_downloaded`).
    pub name: String,
    /// The payload, in scope as `event`.
    pub payload: Value,
}

/// What one event changes in the ledger and the rights timers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventEffects {
    /// Ledger changes (deliveries it reports, or status changes of earlier ones).
    pub ledger: Vec<crate::effects::LedgerChange>,
    /// Rights windows it reports.
    pub rights: Vec<crate::effects::ObservedRights>,
}

/// One event a system emits, as listed by `GET /api/v1/connectors`: the `event` of a
/// trigger's templates and the payload of the signal of the same name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventSpec {
    /// The event's name without the connector prefix (`asset_changed`).
    pub name: String,
    /// One sentence for analysts: when the event comes.
    pub description: String,
    /// JSON Schema (2020-12) of the payload, in scope as `event`. Open (no
    /// `additionalProperties: false`): systems may add fields.
    pub payload: Value,
    /// What the event means for the ledger and the rights timers.
    #[serde(default, skip_serializing_if = "Effects::is_none")]
    pub effects: Effects,
}

/// One action of a connector, as listed by `GET /api/v1/connectors` and checked by
/// `gridflow validate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionSpec {
    /// The action's name without the connector prefix (`search_assets`).
    pub name: String,
    /// One sentence for analysts: what the action does.
    pub description: String,
    /// JSON Schema (2020-12) of the `with` arguments; objects close it with
    /// `additionalProperties: false` so that a misspelt argument is rejected.
    pub arguments: Value,
    /// JSON Schema (2020-12) of the output.
    pub output: Value,
    /// What the action does beyond its output: content it delivers, ledger changes,
    /// rights windows it sees.
    #[serde(default, skip_serializing_if = "Effects::is_none")]
    pub effects: Effects,
}

impl ActionSpec {
    /// The same action, declaring `effects`.
    pub fn with_effects(mut self, effects: Effects) -> Self {
        self.effects = effects;
        self
    }
}

impl EventSpec {
    /// The same event, declaring `effects`.
    pub fn with_effects(mut self, effects: Effects) -> Self {
        self.effects = effects;
        self
    }
}

/// What the runtime appends to the key of a compensation's attempt.
const COMPENSATE_SUFFIX: &str = ":compensate";

/// Everything one attempt of an action receives.
#[derive(Clone, PartialEq)]
pub struct Invocation {
    /// The action's name without the connector prefix.
    pub action: String,
    /// The evaluated `with` arguments.
    pub arguments: Value,
    /// `<instance>:<step>[:<item>]:<attempt>` (DESIGN.md §3), passed on to systems that
    /// honour an idempotency key.
    pub idempotency_key: String,
    /// The attempt number, starting at 1.
    pub attempt: u32,
    /// The instance the step belongs to.
    pub instance_id: InstanceId,
    /// The step being run.
    pub step_id: StepId,
    /// The fan-out item's index, when the step runs `for_each`.
    pub item: Option<u32>,
}

impl Invocation {
    /// An invocation whose idempotency key is derived from its ids and attempt.
    pub fn new(
        action: impl Into<String>,
        arguments: Value,
        instance_id: InstanceId,
        step_id: StepId,
        item: Option<u32>,
        attempt: u32,
    ) -> Self {
        let idempotency_key = Self::idempotency_key_for(&instance_id, &step_id, item, attempt);
        Self {
            action: action.into(),
            arguments,
            idempotency_key,
            attempt,
            instance_id,
            step_id,
            item,
        }
    }

    /// The key connectors send to the system as its idempotency key:
    /// `<instance>:<step>[:<item>]`, the attempt's key without the attempt.
    ///
    /// It is the same on every attempt of one action, so when an attempt's effect took
    /// place but its response was lost (a timeout, a dropped connection), the retry is
    /// answered from the system's stored reply instead of taking effect twice: one effect
    /// per logical action. Systems that honour a key store the replies of requests that
    /// took effect only, so a retry after a 429 or 5xx still runs (ARCHITECTURE.md,
    /// "Idempotency keys").
    pub fn action_key(&self) -> String {
        let (key, compensation) = match self.idempotency_key.strip_suffix(COMPENSATE_SUFFIX) {
            Some(key) => (key, COMPENSATE_SUFFIX),
            None => (self.idempotency_key.as_str(), ""),
        };
        let action = key
            .rsplit_once(':')
            .map_or(key, |(action, _attempt)| action);
        format!("{action}{compensation}")
    }

    /// The idempotency key of one attempt: `<instance>:<step>[:<item>]:<attempt>`.
    pub fn idempotency_key_for(
        instance_id: &InstanceId,
        step_id: &StepId,
        item: Option<u32>,
        attempt: u32,
    ) -> String {
        match item {
            Some(item) => format!("{instance_id}:{step_id}:{item}:{attempt}"),
            None => format!("{instance_id}:{step_id}:{attempt}"),
        }
    }
}

/// Arguments may hold credentials (an `Authorization` header for `core.http`), so the
/// debug form leaves them out.
impl fmt::Debug for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invocation")
            .field("action", &self.action)
            .field("idempotency_key", &self.idempotency_key)
            .field("attempt", &self.attempt)
            .field("instance_id", &self.instance_id)
            .field("step_id", &self.step_id)
            .field("item", &self.item)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_key_includes_item_only_in_fan_out() {
        let instance_id = InstanceId::from("i-1");
        let step_id = StepId::from("deliver");
        assert_eq!(
            Invocation::idempotency_key_for(&instance_id, &step_id, None, 2),
            "i-1:deliver:2"
        );
        assert_eq!(
            Invocation::idempotency_key_for(&instance_id, &step_id, Some(7), 1),
            "i-1:deliver:7:1"
        );
        let invocation = Invocation::new(
            "noop",
            serde_json::json!({}),
            instance_id,
            step_id,
            Some(0),
            3,
        );
        assert_eq!(invocation.idempotency_key, "i-1:deliver:0:3");
        assert_eq!(invocation.action_key(), "i-1:deliver:0");
        let retry = Invocation::new(
            "noop",
            serde_json::json!({}),
            InstanceId::from("i-1"),
            StepId::from("deliver"),
            Some(0),
            4,
        );
        assert_eq!(
            retry.action_key(),
            invocation.action_key(),
            "every attempt of one action sends the same key"
        );
        let mut compensation = retry.clone();
        compensation.idempotency_key = "i-1:deliver:0:4:compensate".to_owned();
        assert_eq!(compensation.action_key(), "i-1:deliver:0:compensate");
    }

    #[test]
    fn invocation_debug_leaves_out_arguments() {
        let invocation = Invocation::new(
            "http",
            serde_json::json!({"headers": {"Authorization": "Bearer s3cr3t"}}),
            InstanceId::from("i-1"),
            StepId::from("call"),
            None,
            1,
        );
        let debug = format!("{invocation:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(debug.contains("i-1:call:1"), "{debug}");
    }
}
