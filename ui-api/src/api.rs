//! The HTTP API (DESIGN.md §5): `/api/v1` behind a bearer token, `/healthz` without.
//!
//! Handlers translate between HTTP and [`Engine`] calls and nothing more: validation,
//! state changes and their conflicts are the engine's, and its errors become responses
//! through [`ApiError`]'s `From` impl.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use gridflow_core::{DefinitionId, InstanceId, InstanceStatus, RecordedEvent, StepId};
use gridflow_runtime::{DefinitionView, Engine, InstanceView};
use gridflow_store::InstanceFilter;

use crate::auth::{self, Caller};
use crate::error::{self, ApiError};
use crate::extract::{ApiJson, ApiPath, ApiQuery, RawBody};

/// Page size of `GET /instances` when `limit` is not given.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// The largest page `GET /instances` returns.
pub const MAX_PAGE_SIZE: u32 = 500;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The engine the API operates.
    pub engine: Engine,
    /// The admin token that `/api/v1` accepts.
    pub admin_token: Arc<str>,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token stays out of every Debug output, and so out of logs.
        f.debug_struct("AppState")
            .field("engine", &self.engine)
            .field("admin_token", &"<redacted>")
            .finish()
    }
}

/// The whole HTTP application: `/api/v1` (bearer token) and `/healthz` (open).
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/definitions", post(deploy).get(list_definitions))
        .route("/definitions/{id}", get(latest_definition))
        .route("/definitions/{id}/versions", get(definition_versions))
        .route(
            "/definitions/{id}/versions/{version}",
            get(definition_version),
        )
        .route("/definitions/{id}/instances", post(start_instance))
        .route("/instances", get(list_instances))
        .route("/instances/{id}", get(instance))
        .route("/instances/{id}/cancel", post(cancel))
        .route("/instances/{id}/steps/{step}/retry", post(retry_step))
        .route("/instances/{id}/history", get(history))
        .merge(crate::audit::routes())
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        // A layer, not a route layer: unknown paths under /api/v1 need a token too, so
        // that the API's shape is not revealed to anonymous callers.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .nest("/api/v1", api)
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(error::log_errors))
        .with_state(state)
}

/// `{id, version}` of a deploy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployResponse {
    /// Definition id.
    pub id: String,
    /// The version now current.
    pub version: u32,
}

/// A list: `{items, next_cursor}`; `next_cursor` is `null` on the last page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct List<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page.
    pub next_cursor: Option<String>,
}

/// Body of `POST /definitions/{id}/instances`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The start input; `{}` when absent.
    #[serde(default = "empty_object")]
    pub input: Value,
    /// The definition version; the latest when absent.
    #[serde(default)]
    pub version: Option<u32>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// `{instance_id}` of a start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartResponse {
    /// The new instance's id.
    pub instance_id: String,
}

/// Optional body of `POST /instances/{id}/cancel`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Why, recorded in history.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `GET /instances/{id}/history`.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    /// The instance.
    pub instance_id: String,
    /// Its events in seq order.
    pub events: Vec<HistoryEvent>,
}

/// One history event, without the instance id that its [`History`] already gives.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEvent {
    /// Position, from 1.
    pub seq: u64,
    /// Event type, such as `step_succeeded`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When (UTC).
    pub at: DateTime<Utc>,
    /// `system` or the acting user.
    pub actor: String,
    /// Event-specific data.
    pub data: Value,
    /// Hash of the previous event.
    pub prev_hash: String,
    /// `sha256(prev_hash ‖ canonical JSON)`.
    pub hash: String,
}

impl From<RecordedEvent> for HistoryEvent {
    fn from(event: RecordedEvent) -> Self {
        Self {
            seq: event.seq,
            event_type: event.event_type,
            at: event.at,
            actor: event.actor,
            data: event.data,
            prev_hash: event.prev_hash,
            hash: event.hash,
        }
    }
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.engine.health().await {
        Ok(()) => Json(serde_json::json!({"status": "ok"})).into_response(),
        // Whatever the engine's reason, the node cannot serve: 503 for load balancers.
        Err(error) => {
            ApiError::unavailable(format!("health check failed: {error}")).into_response()
        }
    }
}

async fn unknown_route() -> ApiError {
    ApiError::not_found("no such route; the API is under /api/v1 (see DESIGN.md §5)")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

async fn deploy(
    State(state): State<AppState>,
    caller: Caller,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<DeployResponse>), ApiError> {
    let source = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the definition is not UTF-8 text"))?;
    let deployment = state.engine.deploy_as(source, &caller.user).await?;
    let status = if deployment.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(DeployResponse {
            id: deployment.id,
            version: deployment.version,
        }),
    ))
}

async fn list_definitions(
    State(state): State<AppState>,
) -> Result<Json<List<DefinitionView>>, ApiError> {
    // Definitions are few: one page holds them all.
    Ok(Json(List {
        items: state.engine.list_definitions().await?,
        next_cursor: None,
    }))
}

async fn latest_definition(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DefinitionView>, ApiError> {
    Ok(Json(
        state
            .engine
            .definition(&DefinitionId::from(id), None)
            .await?,
    ))
}

async fn definition_versions(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<List<DefinitionView>>, ApiError> {
    Ok(Json(List {
        items: state
            .engine
            .definition_versions(&DefinitionId::from(id))
            .await?,
        next_cursor: None,
    }))
}

async fn definition_version(
    State(state): State<AppState>,
    ApiPath((id, version)): ApiPath<(String, u32)>,
) -> Result<Json<DefinitionView>, ApiError> {
    Ok(Json(
        state
            .engine
            .definition(&DefinitionId::from(id), Some(version))
            .await?,
    ))
}

async fn start_instance(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<StartRequest>,
) -> Result<Response, ApiError> {
    let instance = state
        .engine
        .start_instance(
            &DefinitionId::from(id),
            request.version,
            request.input,
            &caller.user,
        )
        .await?;
    let mut response = (
        StatusCode::CREATED,
        Json(StartResponse {
            instance_id: instance.to_string(),
        }),
    )
        .into_response();
    if let Ok(location) = HeaderValue::try_from(format!("/api/v1/instances/{instance}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Query of `GET /instances`; parsed by hand so that a bad value is named in the error.
#[derive(Debug, Deserialize)]
struct InstanceQuery {
    status: Option<String>,
    definition: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

async fn list_instances(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<InstanceQuery>,
) -> Result<Json<List<InstanceView>>, ApiError> {
    // An empty parameter (`?status=`) means the same as an absent one.
    let present = |value: Option<String>| value.filter(|value| !value.is_empty());
    let status = present(query.status)
        .map(|status| InstanceStatus::from_str(&status))
        .transpose()
        .map_err(|message| ApiError::bad_parameter("status", message))?;
    let limit = match present(query.limit) {
        None => DEFAULT_PAGE_SIZE,
        Some(limit) => limit
            .parse::<u32>()
            .ok()
            .filter(|limit| (1..=MAX_PAGE_SIZE).contains(limit))
            .ok_or_else(|| {
                ApiError::bad_parameter(
                    "limit",
                    format!("expected a whole number from 1 to {MAX_PAGE_SIZE}, got {limit:?}"),
                )
            })?,
    };
    let filter = InstanceFilter {
        status,
        definition: present(query.definition).map(DefinitionId::from),
    };
    let cursor = present(query.cursor);
    let page = state
        .engine
        .list_instances(&filter, cursor.as_deref(), limit)
        .await?;
    Ok(Json(List {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

async fn instance(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<InstanceView>, ApiError> {
    Ok(Json(state.engine.instance(&InstanceId::from(id)).await?))
}

async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    request: Option<ApiJson<CancelRequest>>,
) -> Result<Json<InstanceView>, ApiError> {
    let instance = InstanceId::from(id);
    let reason = request.and_then(|ApiJson(request)| request.reason);
    state.engine.cancel(&instance, reason, &caller.user).await?;
    Ok(Json(state.engine.instance(&instance).await?))
}

async fn retry_step(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, step)): ApiPath<(String, String)>,
) -> Result<Json<InstanceView>, ApiError> {
    let instance = InstanceId::from(id);
    state
        .engine
        .retry_step(&instance, &StepId::from(step), &caller.user)
        .await?;
    Ok(Json(state.engine.instance(&instance).await?))
}

async fn history(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<History>, ApiError> {
    let instance = InstanceId::from(id);
    let events = state.engine.history(&instance).await?;
    Ok(Json(History {
        instance_id: instance.to_string(),
        events: events.into_iter().map(HistoryEvent::from).collect(),
    }))
}
