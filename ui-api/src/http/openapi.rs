//! The OpenAPI 3.1 document of `/api/v1`, generated from the code: every handler carries a
//! `#[utoipa::path]` attribute and is registered with `utoipa_axum::routes!`, which adds
//! the route to the router and to the document at once. [`describe`] then adds, from the
//! access policy, the bearer security scheme, the roles of each operation and the 401,
//! 403 and error responses every operation shares.
//!
//! The schemas below mirror the engine's views (`gridflow_runtime::InstanceView`, …) for
//! the document only: the engine does not depend on utoipa. A test checks real responses
//! against them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa::{PartialSchema, ToSchema};

use crate::http::policy::{self, Access, Verb};
use crate::http::state::API_PREFIX;

/// Name of the bearer security scheme in the document.
const BEARER: &str = "bearer";

/// The error body of every failed request (DESIGN.md §5).
#[derive(Debug, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorContent,
}

/// `error` of [`ErrorBody`].
#[derive(Debug, ToSchema)]
pub struct ErrorContent {
    /// Stable, machine-readable: `unauthorized`, `forbidden`, `not_found`, `invalid`,
    /// `conflict`, `bad_request`, `unavailable`, `internal`, …
    pub code: String,
    /// For people.
    pub message: String,
    /// Every problem, each with its path (`steps[2].needs[0]`).
    pub details: Vec<ErrorDetail>,
}

/// One problem of an [`ErrorBody`].
#[derive(Debug, ToSchema)]
pub struct ErrorDetail {
    /// Where: a JSON path into the request, or a parameter name.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

/// A step's or an instance's failure.
#[derive(Debug, ToSchema)]
pub struct Failure {
    /// Machine-readable class (`timeout`, `not_found`, `expression`, …).
    pub code: String,
    /// The system's or the engine's message.
    pub message: String,
    /// Whether another attempt could succeed.
    pub retryable: bool,
}

/// Instance status.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum InstanceStatus {
    /// Steps are running or ready.
    Running,
    /// Everything left waits on approvals, signals or timers.
    Waiting,
    /// Finished successfully.
    Completed,
    /// Failed (after compensation).
    Failed,
    /// Cancelled by an operator.
    Cancelled,
}

/// Step status.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not ready yet.
    Pending,
    /// Ready and queued.
    Scheduled,
    /// An attempt is running.
    Running,
    /// Waiting for the next attempt.
    Retrying,
    /// Waiting for an approval, a signal or a sleep.
    Waiting,
    /// Done.
    Succeeded,
    /// Failed for good.
    Failed,
    /// Its `when` was false, or every need was skipped.
    Skipped,
    /// Its instance was cancelled or failed.
    Cancelled,
}

/// An instance's state (DESIGN.md §5).
#[derive(Debug, ToSchema)]
pub struct Instance {
    /// Instance id (UUIDv7).
    pub id: String,
    /// Definition id.
    pub definition: String,
    /// Definition version it runs.
    pub version: u32,
    /// Status.
    pub status: InstanceStatus,
    /// Start input.
    pub input: Value,
    /// Output once completed.
    pub output: Option<Value>,
    /// Why it failed.
    pub error: Option<Failure>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Who started it.
    pub started_by: String,
    /// Steps by id.
    pub steps: BTreeMap<String, Step>,
    /// For a child instance of a workflow step: the parent's unit.
    pub parent: Option<ParentLink>,
}

/// The unit of a parent instance that a child instance runs for.
#[derive(Debug, ToSchema)]
pub struct ParentLink {
    /// The parent instance.
    pub instance_id: String,
    /// Its workflow step.
    pub step: String,
    /// The fan-out item, if any.
    pub item: Option<u32>,
    /// The step's attempt that started the child.
    pub attempt: u32,
}

/// A child instance that a workflow step started.
#[derive(Debug, ToSchema)]
pub struct StepChild {
    /// The child instance.
    pub instance_id: String,
    /// The fan-out item, if any.
    pub item: Option<u32>,
    /// The step's attempt that started it.
    pub attempt: u32,
    /// The child's status.
    pub status: InstanceStatus,
}

/// An instance in a list: [`Instance`] without input, output, starter and steps.
#[derive(Debug, ToSchema)]
pub struct InstanceSummary {
    /// Instance id (UUIDv7).
    pub id: String,
    /// Definition id.
    pub definition: String,
    /// Definition version it runs.
    pub version: u32,
    /// Status.
    pub status: InstanceStatus,
    /// The start input.
    pub input: Value,
    /// The output once completed.
    pub output: Option<Value>,
    /// Why it failed.
    pub error: Option<Failure>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// An item of `GET /instances`: an [`Instance`], or with `view=summary` an
/// [`InstanceSummary`]. `anyOf`, not `oneOf`: a whole instance also has every field of
/// a summary, so it matches both.
#[derive(Debug)]
pub struct ListedInstance;

impl PartialSchema for ListedInstance {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        utoipa::openapi::schema::AnyOfBuilder::new()
            .item(Ref::from_schema_name(Instance::name()))
            .item(Ref::from_schema_name(InstanceSummary::name()))
            .description(Some(
                "An instance (the default view), or its summary (`view=summary`)",
            ))
            .into()
    }
}

impl ToSchema for ListedInstance {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::Schema>)>) {
        schemas.push((Instance::name().into(), Instance::schema()));
        <Instance as ToSchema>::schemas(schemas);
        schemas.push((InstanceSummary::name().into(), InstanceSummary::schema()));
        <InstanceSummary as ToSchema>::schemas(schemas);
    }
}

/// One step of an [`Instance`].
#[derive(Debug, ToSchema)]
pub struct Step {
    /// Status.
    pub status: StepStatus,
    /// Attempts made.
    pub attempts: u32,
    /// Output once succeeded.
    pub output: Option<Value>,
    /// Why it failed.
    pub error: Option<Failure>,
    /// An approval step's decision.
    pub decision: Option<String>,
    /// An approval step's comment.
    pub comment: Option<String>,
    /// A workflow step's child instances (absent when it has none).
    pub children: Option<Vec<StepChild>>,
}

/// One version of a definition.
#[derive(Debug, ToSchema)]
pub struct Definition {
    /// Definition id.
    pub id: String,
    /// Version, from 1.
    pub version: u32,
    /// Its `name`.
    pub name: Option<String>,
    /// Its `description`.
    pub description: Option<String>,
    /// sha256 of its canonical JSON.
    pub content_hash: String,
    /// When this version was deployed.
    pub created_at: DateTime<Utc>,
    /// The parsed definition.
    pub definition: Value,
    /// The text as deployed.
    pub source: String,
}

/// An instance replayed from its history.
#[derive(Debug, ToSchema)]
pub struct Replay {
    /// The seq the history was folded up to.
    pub at: u64,
    /// The history's last seq.
    pub last_seq: u64,
    /// The state reached.
    pub state: Instance,
    /// For a full replay: whether the replayed state equals the stored one.
    pub matches_stored: Option<bool>,
}

/// Completes the document of the `/api/v1` routes (as their `routes!` registrations
/// describe them): its info, the bearer security scheme, the shared schemas, and each
/// operation's roles and shared error responses from the access policy.
pub fn describe(openapi: &mut OpenApi) {
    openapi.info.title = "gridflow".to_owned();
    openapi.info.description = Some(
        "The HTTP API of gridflow, a durable workflow engine (DESIGN.md §5). \
         Every route takes `Authorization: Bearer <token>` unless it says otherwise; \
         each operation lists the roles that may call it."
            .to_owned(),
    );
    openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let components = openapi.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        BEARER.to_owned(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "A token from `gridflow token create`, or GRIDFLOW_ADMIN_TOKEN",
                ))
                .build(),
        )
        .into(),
    );
    // The error body and the schemas it refers to.
    // And the replayed state, which `openapi_params::ReplayOrDiff` refers to.
    let mut schemas = vec![
        (ErrorBody::name().into_owned(), ErrorBody::schema()),
        (Replay::name().into_owned(), Replay::schema()),
    ];
    <ErrorBody as ToSchema>::schemas(&mut schemas);
    <Replay as ToSchema>::schemas(&mut schemas);
    for (name, schema) in schemas {
        components.schemas.entry(name).or_insert(schema);
    }
    for (path, item) in openapi.paths.paths.iter_mut() {
        let relative = path.strip_prefix(API_PREFIX).unwrap_or(path);
        let operations = [
            (Verb::Get, &mut item.get),
            (Verb::Post, &mut item.post),
            (Verb::Put, &mut item.put),
            (Verb::Patch, &mut item.patch),
            (Verb::Delete, &mut item.delete),
        ];
        for (verb, operation) in operations {
            if let Some(operation) = operation.as_mut() {
                let access = match policy::decide(&verb.method(), relative) {
                    policy::Decision::Rule(access) => Some(access),
                    _ => None,
                };
                describe_access(operation, access);
            }
        }
    }
}

/// Adds the roles, the security requirement and the shared error responses.
fn describe_access(operation: &mut Operation, access: Option<Access>) {
    let error = || {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build()
    };
    let mut add = |status: &str, description: &str| {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(description)
                    .content("application/json", error())
                    .build()
                    .into()
            });
    };
    match access {
        Some(Access::Roles(roles)) => {
            add("401", "No token, or a token that is not valid");
            if roles.len() < policy::EVERYONE.len() {
                add("403", "The token's role may not call this route");
            }
        }
        Some(Access::Signed) | None => {}
    }
    add("default", "Any other error, with the same body");
    let roles: Vec<&str> = access
        .map(policy::roles)
        .unwrap_or_default()
        .iter()
        .map(|role| role.as_str())
        .collect();
    match access {
        Some(Access::Roles(_)) => {
            operation.security = Some(vec![SecurityRequirement::new(BEARER, roles.clone())]);
            let note = format!("Roles: {}.", roles.join(", "));
            operation.description = Some(match operation.description.take() {
                Some(description) => format!("{description}\n\n{note}"),
                None => note,
            });
        }
        Some(Access::Signed) => {
            operation.security = Some(Vec::new());
        }
        None => {}
    }
}
