//! The workflow definition model (DESIGN.md §2), as parsed from YAML or JSON.
//!
//! Parsing only builds these types; [`crate::validate`] checks them against the JSON Schema
//! and the semantic rules (DAG, actions, expressions) and lists every error with its path.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::duration;
use crate::id::{DefinitionId, StepId};

mod index;

/// A workflow definition: a DAG of steps with an input schema, triggers and an output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// Stable id across versions, `[a-z0-9-]+`.
    pub id: DefinitionId,
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the start input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// Cron, event and rights triggers that start instances.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<Trigger>,
    /// The steps, in definition order (which is also the order ready steps are scheduled in).
    pub steps: Vec<StepDefinition>,
    /// Template of the instance output, evaluated when the instance completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Positions and dependents of the steps, built on first use.
    #[serde(skip)]
    index: index::StepIndex,
}

impl Definition {
    /// The step with this id, if the definition has one.
    pub fn step(&self, step_id: &StepId) -> Option<&StepDefinition> {
        self.position(step_id).map(|position| &self.steps[position])
    }

    /// The position of step `step_id` in [`Definition::steps`].
    pub fn position(&self, step_id: &StepId) -> Option<usize> {
        let position = *self.index().position.get(step_id)?;
        // The index is built from these very steps; the check keeps a lookup right even
        // if the steps were changed in place after it was built.
        match self.steps.get(position) {
            Some(step) if &step.id == step_id => Some(position),
            Some(_) | None => self.steps.iter().position(|step| &step.id == step_id),
        }
    }

    /// The positions of the steps that need the step at `position`, ascending.
    pub fn dependents(&self, position: usize) -> &[usize] {
        self.index()
            .dependents
            .get(position)
            .map_or(&[], Vec::as_slice)
    }

    /// The positions of the steps that no step needs, ascending.
    pub fn sinks(&self) -> &[usize] {
        &self.index().sinks
    }

    /// Whether any approval step binds artifacts (`approval.bind`): then the instance's
    /// deliveries are checked against its approved artifacts.
    pub fn binds_artifacts(&self) -> bool {
        self.steps.iter().any(|step| {
            step.approval
                .as_ref()
                .is_some_and(|approval| approval.bind.is_some())
        })
    }

    fn index(&self) -> &index::Built {
        self.index.get(&self.steps)
    }
}

/// A trigger that starts instances on a schedule, on an inbound event, or when an asset's
/// rights window is about to end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// Cron expression with seconds (cron crate syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// IANA time zone of the cron expression; UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Inbound event name (`<source>.<event>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Input template of the started instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// What to do when a tick comes while the previous instance still runs
    /// ([`Overlap::Skip`] when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<Overlap>,
    /// Which missed ticks to fire after downtime ([`CatchUp::Last`] when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<CatchUp>,
    /// Event and rights triggers only: a condition over `event`
    /// (`"${event.created_by != 'gridflow'}"`); an event for which it is false, or fails,
    /// starts nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Starts the definition once per asset and window end when a rights window is about
    /// to end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rights: Option<RightsTrigger>,
}

/// A `rights` trigger: `{expiring_within: 7d, system?: otmm}`. It starts the definition
/// once per (asset, window end) as soon as `now >= valid_until - expiring_within`; a window
/// whose end is unknown never fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RightsTrigger {
    /// How long before the window's end the definition starts (`0s`: at the end).
    #[serde(with = "duration::text")]
    pub expiring_within: Duration,
    /// Only windows of this asset system (`otmm`, `smintio`, …); every system when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
}

/// What a cron tick does while the instance started by an earlier tick of the same
/// trigger still runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Do not start: the tick is recorded as skipped.
    #[default]
    Skip,
    /// Start anyway: instances of the trigger may run side by side.
    Allow,
    /// Remember at most one tick and start it when the running instance finishes; further
    /// ticks while one is remembered are skipped.
    BufferOne,
}

/// Which ticks missed while no node was firing (downtime, a lost lease) are fired once a
/// node fires again. A tick is missed when it is older than the scheduler's grace period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Fire none of them: only ticks from now on.
    None,
    /// Fire the most recent missed tick only.
    #[default]
    Last,
    /// Fire every missed tick, oldest first, at most
    /// [`MAX_CATCH_UP`](crate::schedule::MAX_CATCH_UP) of them (the most recent ones).
    All,
}

/// One step of a definition. Exactly one of `action`, `approval`, `wait`, `sleep` and
/// `workflow` is set (the schema enforces it); [`StepDefinition::kind`] gives it typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDefinition {
    /// Unique within the definition.
    pub id: StepId,
    /// Steps that must finish first: the DAG's edges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<StepId>,
    /// CEL condition (`${...}`); false skips the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Fan-out: a list, or an expression yielding one; each item runs the action once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<Value>,
    /// How many items of a fan-out run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Connector action name, `connector.action`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Action arguments; strings may hold `${...}` expressions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<Value>,
    /// Human approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// Wait for an external signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<Wait>,
    /// Durable sleep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep: Option<Sleep>,
    /// Child workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<ChildWorkflow>,
    /// Retry policy of each attempt of the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Time limit of one attempt of the action.
    #[serde(
        default,
        with = "duration::option_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// What a final failure of this step does to the instance.
    #[serde(default, skip_serializing_if = "OnError::is_fail")]
    pub on_error: OnError,
    /// Action that undoes this step's effect when the instance fails later (saga).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensate: Option<Compensation>,
    /// When a step with `needs` becomes ready ([`Join::All`] when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<Join>,
    /// Run the step again until a condition holds (action and workflow steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<Repeat>,
}

/// The kind of a step, borrowed from its definition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepKind<'a> {
    /// A connector action with its `with` arguments.
    Action {
        /// `connector.action`.
        action: &'a str,
        /// Argument template.
        with: Option<&'a Value>,
    },
    /// A human approval.
    Approval(&'a Approval),
    /// A wait for an external signal.
    Wait(&'a Wait),
    /// A durable sleep.
    Sleep(&'a Sleep),
    /// A child workflow.
    Workflow(&'a ChildWorkflow),
}

impl StepDefinition {
    /// The kind of this step, or `None` when the definition sets none (a validation error).
    pub fn kind(&self) -> Option<StepKind<'_>> {
        if let Some(action) = &self.action {
            return Some(StepKind::Action {
                action,
                with: self.with.as_ref(),
            });
        }
        if let Some(approval) = &self.approval {
            return Some(StepKind::Approval(approval));
        }
        if let Some(wait) = &self.wait {
            return Some(StepKind::Wait(wait));
        }
        if let Some(sleep) = &self.sleep {
            return Some(StepKind::Sleep(sleep));
        }
        self.workflow.as_ref().map(StepKind::Workflow)
    }

    /// The retry policy in force: the step's own, or the default one.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry.clone().unwrap_or_default()
    }

    /// The time limit of one action attempt: the step's own, or [`DEFAULT_ACTION_TIMEOUT`].
    pub fn attempt_timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_ACTION_TIMEOUT)
    }
}

impl StepDefinition {
    /// The join rule in force: the step's own, or [`Join::All`].
    pub fn join_rule(&self) -> Join {
        self.join.unwrap_or_default()
    }
}

/// When a step with `needs` becomes ready (DESIGN.md §2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Join {
    /// Every need succeeded, was skipped, or failed with `on_error: continue`; skipped
    /// when every need was skipped.
    #[default]
    All,
    /// Every need ended, whatever its outcome; never skipped by propagation.
    AllDone,
    /// One need succeeded (the others go on); skipped once every need ended and none
    /// succeeded.
    Any,
}

/// `repeat`: run the step again until `until` holds, at most `max` runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repeat {
    /// Condition over `steps.<this step>.output` (this run's) and `iteration` (from 1).
    pub until: String,
    /// Runs in all, the first included.
    pub max: u32,
    /// Durable wait between runs; none: the next run starts at once.
    #[serde(
        default,
        with = "duration::option_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval: Option<Duration>,
    /// What `max` runs without `until` holding do ([`OnExhausted::Fail`] when absent).
    #[serde(default, skip_serializing_if = "OnExhausted::is_fail")]
    pub on_exhausted: OnExhausted,
}

/// What a repeat that ran `max` times without its `until` holding does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExhausted {
    /// The step fails with code `repeat_exhausted`.
    #[default]
    Fail,
    /// The step succeeds with the last run's output.
    Continue,
}

impl OnExhausted {
    fn is_fail(&self) -> bool {
        *self == OnExhausted::Fail
    }
}

/// Time limit of an action attempt when the step sets none.
pub const DEFAULT_ACTION_TIMEOUT: Duration = Duration::from_secs(300);

/// What a step's final failure does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Fail the instance (after compensation).
    #[default]
    Fail,
    /// Record the failure and go on; dependents see `steps.<id>.status == 'failed'`.
    Continue,
}

impl OnError {
    fn is_fail(&self) -> bool {
        *self == OnError::Fail
    }
}

/// Retry policy of an action step. Attempts count from 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means no retry.
    pub max_attempts: u32,
    /// Delay before the second attempt.
    #[serde(with = "duration::text")]
    pub initial_interval: Duration,
    /// Upper bound of any delay.
    #[serde(with = "duration::text")]
    pub max_interval: Duration,
    /// Growth of the delay per attempt.
    pub multiplier: f64,
    /// Whether the runtime randomises each delay (into its upper half).
    pub jitter: bool,
    /// Error codes that are never retried.
    pub non_retryable: Vec<String>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: true,
            non_retryable: Vec::new(),
        }
    }
}

/// A human approval step (DESIGN.md §2; semantics completed by the approvals issue).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// Title template shown to approvers.
    pub title: String,
    /// Assigned groups: names, `${...}` expressions among them, or one expression.
    #[serde(default, skip_serializing_if = "Names::is_empty")]
    pub groups: Names,
    /// Assigned users: names, `${...}` expressions among them, or one expression.
    #[serde(default, skip_serializing_if = "Names::is_empty")]
    pub users: Names,
    /// Approvals needed; one rejection rejects.
    #[serde(default = "one")]
    pub quorum: u32,
    /// Time allowed before `on_timeout` applies.
    #[serde(
        default,
        with = "duration::option_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub due: Option<Duration>,
    /// What happens when `due` passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<String>,
    /// Who receives the approval when it escalates: one level or a chain of levels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_to: Option<EscalateTo>,
    /// Whether the user who started the instance may approve it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_self_approval: bool,
    /// JSON Schema that a decision's `data` must satisfy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<Value>,
    /// One `${...}` expression yielding the artifacts being approved (one artifact or a
    /// list): the decision records them, and once approved they are the only content the
    /// instance's delivering actions may deliver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
}

fn one() -> u32 {
    1
}

/// Approval assignees (`users`, `groups`): a list whose entries are names or `${...}`
/// expressions (each yielding a name, a list of names, or null), or one expression
/// yielding a list of names. `${item}` and `${index}` are in scope on a fan-out step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Names {
    /// Names or expressions, in order.
    List(Vec<String>),
    /// One expression yielding a list of names.
    Expression(String),
}

impl Default for Names {
    fn default() -> Self {
        Names::List(Vec::new())
    }
}

impl Names {
    /// Whether no entry is written.
    pub fn is_empty(&self) -> bool {
        match self {
            Names::List(names) => names.is_empty(),
            Names::Expression(_) => false,
        }
    }

    /// The entries as written, each with its index in the list (`None` for the single
    /// expression form).
    pub fn entries(&self) -> Vec<(Option<usize>, &str)> {
        match self {
            Names::List(names) => names
                .iter()
                .enumerate()
                .map(|(index, name)| (Some(index), name.as_str()))
                .collect(),
            Names::Expression(text) => vec![(None, text.as_str())],
        }
    }
}

impl From<Vec<String>> for Names {
    fn from(names: Vec<String>) -> Self {
        Names::List(names)
    }
}

/// What `on_timeout` of an approval does when its `due` passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnApprovalTimeout {
    /// The approval is approved by the system.
    Approve,
    /// The approval is rejected by the system.
    Reject,
    /// The step fails with code `timeout`.
    Fail,
    /// The approval moves to the next level of `escalate_to`.
    Escalate,
}

impl Approval {
    /// The `on_timeout` policy; `reject` when the definition sets none (or sets an unknown
    /// one, which validation refuses).
    pub fn on_timeout(&self) -> OnApprovalTimeout {
        match self.on_timeout.as_deref() {
            Some("approve") => OnApprovalTimeout::Approve,
            Some("fail") => OnApprovalTimeout::Fail,
            Some("escalate") => OnApprovalTimeout::Escalate,
            Some(_) | None => OnApprovalTimeout::Reject,
        }
    }

    /// The escalation levels, first first; empty when there is no `escalate_to`.
    pub fn escalation_levels(&self) -> &[EscalationLevel] {
        match &self.escalate_to {
            None => &[],
            Some(EscalateTo::One(level)) => std::slice::from_ref(level),
            Some(EscalateTo::Chain(levels)) => levels,
        }
    }
}

/// `escalate_to`: one level (`{groups: [...]}`) or a chain of levels tried in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EscalateTo {
    /// A single level.
    One(EscalationLevel),
    /// Several levels: when one's `due` passes too, the next receives the approval.
    Chain(Vec<EscalationLevel>),
}

/// One escalation level: who receives the approval and how long they have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationLevel {
    /// Assigned groups at this level.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Assigned users at this level.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Time allowed at this level; the approval's `due` when absent.
    #[serde(
        default,
        with = "duration::option_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub due: Option<Duration>,
}

/// What `on_timeout` of a wait step does when its `timeout` passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnWaitTimeout {
    /// The step succeeds with output `{timed_out: true}` and the instance goes on.
    Continue,
    /// The step fails with code `timeout`.
    Fail,
}

impl Wait {
    /// The `on_timeout` policy; `fail` when the definition sets none.
    pub fn on_timeout(&self) -> OnWaitTimeout {
        match self.on_timeout.as_deref() {
            Some("continue") => OnWaitTimeout::Continue,
            Some(_) | None => OnWaitTimeout::Fail,
        }
    }
}

/// A wait for an external signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wait {
    /// Signal name.
    pub signal: String,
    /// How long to wait.
    #[serde(
        default,
        with = "duration::option_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// `continue` or `fail` when the timeout passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<String>,
    /// Expression matching inbound events to this instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlate: Option<String>,
}

/// A durable sleep: a duration, or `until` an instant (an expression or RFC 3339 text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Sleep {
    /// Sleep this long.
    For(#[serde(with = "duration::text")] Duration),
    /// Sleep until this instant.
    Until {
        /// RFC 3339 instant or an expression yielding one.
        until: String,
    },
}

/// A child workflow step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildWorkflow {
    /// Definition id of the child.
    pub id: DefinitionId,
    /// Pinned version; the latest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Input template of the child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
}

/// A compensating action, run when the instance fails after this step succeeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compensation {
    /// `connector.action`.
    pub action: String,
    /// Argument template; `${output}` is the compensated step's (or item's) output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<Value>,
}
