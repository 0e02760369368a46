//! The recovery routes (DESIGN.md §5): re-run a finished instance
//! (`POST /instances/{id}/rerun`) and move running instances to another version of their
//! definition (`POST /definitions/{id}/migrations`). Both are audited in the instances'
//! histories (`instance_rerun`, `instance_migrated`, with the caller as actor), and only
//! analysts and admins may call them (`policy::RULES`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use gridflow_core::{DefinitionId, InstanceId, StepId};
use gridflow_runtime::{InstanceView, MigrationPlan, MigrationRequest, RerunRequest};

use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::openapi::{self, ErrorBody};
use crate::http::state::AppState;

/// The recovery routes, nested under `/api/v1` with the others.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(rerun))
        .routes(routes!(migrate))
}

/// Body of `POST /instances/{id}/rerun`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerunBody {
    /// Re-run this step and every step downstream of it; absent: only the instance
    /// output is evaluated again.
    #[serde(default)]
    pub from_step: Option<String>,
    /// A start input that replaces the old one (checked against the input schema).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub input: Option<Value>,
    /// Per step id, arguments that replace the step's rendered `with` (action steps that
    /// run again; checked against the action's argument schema).
    #[serde(default)]
    #[schema(value_type = Option<BTreeMap<String, Object>>)]
    pub arguments: Option<BTreeMap<String, Value>>,
}

/// Re-run a completed or failed instance from a step (and everything downstream of it),
/// or only its output, with an edited input or edited step arguments.
///
/// Upstream steps keep their outputs; the re-run steps get their next attempt numbers
/// (so fresh idempotency keys). History records `instance_rerun` with the caller and the
/// edits. A failed instance whose compensations ran, a cancelled one, and one still
/// running are refused (409).
#[utoipa::path(
    post,
    path = "/instances/{instance_id}/rerun",
    tag = "instances",
    params(("instance_id" = String, Path, description = "Instance id")),
    request_body = RerunBody,
    responses(
        (status = 200, description = "The instance, running again (or finished again when only its output was evaluated)", body = openapi::Instance),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 409, description = "The instance cannot be re-run now (running, cancelled, compensated, or a failed step would not run again)", body = ErrorBody),
        (status = 422, description = "An unknown step, arguments for a step that does not run again or that violate the action's schema, or an input that violates the input schema; every problem with its path", body = ErrorBody),
    )
)]
pub(crate) async fn rerun(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    request: Option<ApiJson<RerunBody>>,
) -> Result<Json<InstanceView>, ApiError> {
    let instance = InstanceId::from(id);
    let body = request.map(|ApiJson(body)| body).unwrap_or_default();
    let request = RerunRequest {
        from_step: body.from_step.map(StepId::from),
        input: body.input,
        arguments: body
            .arguments
            .unwrap_or_default()
            .into_iter()
            .map(|(step, arguments)| (StepId::from(step), arguments))
            .collect(),
    };
    state.engine.rerun(&instance, request, &caller.user).await?;
    Ok(Json(state.engine.instance(&instance).await?))
}

/// Body of `POST /definitions/{id}/migrations`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrationBody {
    /// The version to move instances to.
    #[serde(deserialize_with = "required_version")]
    pub to_version: u32,
    /// Only instances of this version; absent: every version older than `to_version`.
    #[serde(default, deserialize_with = "crate::http::instances::whole_number")]
    pub from_version: Option<u32>,
    /// Old step id to new step id, for steps the new version renamed.
    #[serde(default)]
    pub mapping: BTreeMap<String, String>,
    /// Only classify (the default); `false` moves the compatible instances.
    #[serde(default = "dry_run_by_default")]
    pub dry_run: bool,
}

fn dry_run_by_default() -> bool {
    true
}

/// One instance of a [`Migration`].
#[derive(Debug, ToSchema)]
pub struct MigrationInstance {
    /// The instance.
    pub instance_id: String,
    /// The version it ran on when classified.
    pub version: u32,
    /// Its status then (running or waiting).
    pub status: openapi::InstanceStatus,
    /// Whether it can move.
    pub compatible: bool,
    /// Why not: a started step the new version lacks (after the mapping), a step whose
    /// kind or fan-out changed, an active step renamed, …
    pub reasons: Vec<String>,
    /// Whether it moved.
    pub migrated: bool,
}

/// The plan of a migration (and, unless a dry run, what was moved).
#[derive(Debug, ToSchema)]
pub struct Migration {
    /// The definition.
    pub definition: String,
    /// The version moved to.
    pub to_version: u32,
    /// The version moved from, when the request named one.
    pub from_version: Option<u32>,
    /// Whether nothing was moved.
    pub dry_run: bool,
    /// How many instances are compatible.
    pub compatible: u32,
    /// How many are not.
    pub incompatible: u32,
    /// How many moved.
    pub migrated: u32,
    /// Every running or waiting instance of the versions migrated from.
    pub instances: Vec<MigrationInstance>,
}

/// Plan (and unless `dry_run`, apply) a move of the running and waiting instances of older
/// versions (or of `from_version`) to `to_version`.
///
/// Each instance is `compatible`, or not with every reason. Applying moves the compatible
/// ones, each recording `instance_migrated` with the caller; they go on with the new
/// version's steps (new steps start pending).
#[utoipa::path(
    post,
    path = "/definitions/{definition_id}/migrations",
    tag = "definitions",
    params(("definition_id" = String, Path, description = "Definition id")),
    request_body = MigrationBody,
    responses(
        (status = 200, description = "The plan; with `dry_run: false`, what moved", body = Migration),
        (status = 404, description = "No such definition", body = ErrorBody),
        (status = 422, description = "An unknown version, or a mapping that names steps the versions lack; every problem with its path", body = ErrorBody),
    )
)]
pub(crate) async fn migrate(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<MigrationBody>,
) -> Result<Json<MigrationPlan>, ApiError> {
    let request = MigrationRequest {
        to_version: body.to_version,
        from_version: body.from_version,
        mapping: body
            .mapping
            .into_iter()
            .map(|(old, new)| (StepId::from(old), StepId::from(new)))
            .collect(),
        dry_run: body.dry_run,
    };
    let plan = state
        .engine
        .migrate(&DefinitionId::from(id), request, &caller.user)
        .await?;
    Ok(Json(plan))
}

/// A required version as JSON Schema's `integer` has it: `2` or `2.0`.
fn required_version<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    crate::http::instances::whole_number(deserializer)?
        .ok_or_else(|| serde::de::Error::custom("expected a version, got null"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_migration_version_is_a_whole_number_written_either_way() {
        let body: MigrationBody =
            serde_json::from_value(serde_json::json!({"to_version": 3.0, "from_version": 2}))
                .unwrap();
        assert_eq!((body.to_version, body.from_version), (3, Some(2)));
        for bad in [
            serde_json::json!({"to_version": 2.5}),
            serde_json::json!({"to_version": null}),
        ] {
            let error = serde_json::from_value::<MigrationBody>(bad.clone()).unwrap_err();
            assert!(error.to_string().contains("version"), "{bad}: {error}");
        }
    }
}
