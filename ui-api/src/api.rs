//! The HTTP API (DESIGN.md §5): `/api/v1` behind bearer tokens and the access policy,
//! `/healthz` and `/metrics` without.
//!
//! Handlers translate between HTTP and [`Engine`] calls and nothing more: validation,
//! state changes and their conflicts are the engine's, and its errors become responses
//! through [`ApiError`]'s `From` impl. Who may call what is [`crate::policy`]'s, applied
//! by `auth::authorize` before any handler runs.
//!
//! Adding a route: write the handler with a `#[utoipa::path]` attribute, register it in
//! [`api_router`] with `routes!` (one line: router and OpenAPI document at once), and add
//! its rule to [`crate::policy::RULES`] (one line).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router, middleware};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use gridflow_core::{DefinitionId, InstanceId, InstanceStatus, RecordedEvent, StepId};
use gridflow_runtime::{DefinitionView, Engine, InstanceView};
use gridflow_store::InstanceFilter;

use crate::auth::{self, Caller};
use crate::error::{self, ApiError};
use crate::extract::{ApiJson, ApiPath, ApiQuery, RawBody};
use crate::openapi::{self, ErrorBody};
use crate::{metrics, tokens};

/// Where the API is mounted.
pub const API_PREFIX: &str = "/api/v1";
/// Page size of a list when `limit` is not given.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// The largest page a list returns.
pub const MAX_PAGE_SIZE: u32 = 500;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The engine the API operates.
    pub engine: Engine,
    /// The admin token that `/api/v1` accepts.
    pub admin_token: Arc<str>,
    /// The webhook secret of each event source (`POST /api/v1/events/{source}`).
    pub event_secrets: crate::events::EventSecrets,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token stays out of every Debug output, and so out of logs.
        f.debug_struct("AppState")
            .field("engine", &self.engine)
            .field("admin_token", &"<redacted>")
            .field("event_secrets", &self.event_secrets)
            .finish()
    }
}

/// Every route of `/api/v1`, each registered with its OpenAPI description.
///
/// [`app`] serves it and [`crate::openapi::document`] documents it, so the two cannot
/// disagree. One `routes!` per path (handlers of one path share it).
pub fn api_router() -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::new()
        .routes(routes!(deploy, list_definitions))
        .routes(routes!(latest_definition))
        .routes(routes!(definition_versions))
        .routes(routes!(definition_version))
        .routes(routes!(start_instance))
        .routes(routes!(list_instances))
        .routes(routes!(instance))
        .routes(routes!(cancel))
        .routes(routes!(retry_step))
        .routes(routes!(history))
        .routes(routes!(tokens::post_token))
        .routes(routes!(openapi::openapi_json))
        // Signed by the source's secret instead of a bearer token (`Access::Signed`).
        .routes(routes!(crate::events::receive))
        .merge(crate::approvals::routes())
        .merge(crate::audit::routes());
    OpenApiRouter::new().nest(API_PREFIX, routes)
}

/// The whole HTTP application: `/api/v1` (bearer token and role policy), `/healthz` and
/// `/metrics` (open).
pub fn app(state: AppState) -> Router {
    let (api, _document) = api_router().split_for_parts();
    // A route layer runs after routing, so it knows the matched route and its rule; it
    // covers exactly the API routes, which is why the open routes are added after it.
    let api = api.route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::authorize,
    ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::metrics))
        .merge(api)
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(error::log_errors))
        .with_state(state)
}

/// `{id, version}` of a deploy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeployResponse {
    /// Definition id.
    pub id: String,
    /// The version now current.
    pub version: u32,
}

/// A list: `{items, next_cursor}`; `next_cursor` is `null` on the last page.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct List<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page.
    pub next_cursor: Option<String>,
}

/// Body of `POST /definitions/{id}/instances`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The start input; `{}` when absent.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub input: Value,
    /// The definition version; the latest when absent.
    #[serde(default)]
    pub version: Option<u32>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// `{instance_id}` of a start.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StartResponse {
    /// The new instance's id.
    pub instance_id: String,
}

/// Optional body of `POST /instances/{id}/cancel`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Why, recorded in history.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `GET /instances/{id}/history`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct History {
    /// The instance.
    pub instance_id: String,
    /// Its events in seq order.
    pub events: Vec<HistoryEvent>,
}

/// One history event, without the instance id that its [`History`] already gives.
#[derive(Debug, Clone, Serialize, ToSchema)]
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
    #[schema(value_type = Object)]
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

/// Unknown paths and methods under /api/v1 need a token too, so that the API's shape is
/// not revealed to anonymous callers: the 401 comes before the 404 or 405.
async fn authenticate_under_api(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let under_api = uri
        .path()
        .strip_prefix(API_PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if under_api {
        auth::authenticate(state, headers).await?;
    }
    Ok(())
}

async fn unknown_route(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> ApiError {
    match authenticate_under_api(&state, &uri, &headers).await {
        Err(error) => error,
        Ok(()) => ApiError::not_found("no such route; the API is under /api/v1 (see DESIGN.md §5)"),
    }
}

async fn method_not_allowed(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiError {
    match authenticate_under_api(&state, &uri, &headers).await {
        Err(error) => error,
        Ok(()) => ApiError::method_not_allowed(),
    }
}

/// Deploy a definition (YAML or JSON): 201 for a new version, 200 when unchanged.
#[utoipa::path(
    post,
    path = "/definitions",
    tag = "definitions",
    request_body(content = String, content_type = "application/yaml", description = "The definition, as YAML or JSON"),
    responses(
        (status = 201, description = "A new version was stored", body = DeployResponse),
        (status = 200, description = "The latest version has this content already", body = DeployResponse),
        (status = 422, description = "The definition is invalid; every problem is listed", body = ErrorBody),
    )
)]
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

/// Query of the lists paged by cursor alone.
#[derive(Debug, Deserialize)]
struct PageQuery {
    cursor: Option<String>,
    limit: Option<String>,
}

/// An empty parameter (`?status=`) means the same as an absent one.
fn present(value: Option<String>) -> Option<String> {
    value.filter(|value| !value.is_empty())
}

/// The `limit` parameter: 1 to [`MAX_PAGE_SIZE`], [`DEFAULT_PAGE_SIZE`] when absent.
fn page_size(limit: Option<String>) -> Result<u32, ApiError> {
    match present(limit) {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(limit) => limit
            .parse::<u32>()
            .ok()
            .filter(|limit| (1..=MAX_PAGE_SIZE).contains(limit))
            .ok_or_else(|| {
                ApiError::bad_parameter(
                    "limit",
                    format!("expected a whole number from 1 to {MAX_PAGE_SIZE}, got {limit:?}"),
                )
            }),
    }
}

/// One page of `items` (already in list order): those after the cursor, at most `limit`.
/// `next_cursor` is the key of the page's last item when more follow.
fn page_of<T>(
    items: Vec<T>,
    after_cursor: impl Fn(&T) -> bool,
    cursor_of: impl Fn(&T) -> String,
    limit: u32,
) -> List<T> {
    let mut rest = items.into_iter().filter(|item| after_cursor(item));
    let items: Vec<T> = rest
        .by_ref()
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .collect();
    let next_cursor = match rest.next() {
        Some(_) => items.last().map(cursor_of),
        None => None,
    };
    List { items, next_cursor }
}

/// List definitions (latest version of each), by id, a page at a time.
#[utoipa::path(
    get,
    path = "/definitions",
    tag = "definitions",
    params(
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 500 (default 50)"),
    ),
    responses((status = 200, description = "One page of definitions", body = List<openapi::Definition>))
)]
async fn list_definitions(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<List<DefinitionView>>, ApiError> {
    // Definitions are few (one row per id): the page is cut from the whole list, ordered
    // by id, and the cursor is the last id of the page.
    let limit = page_size(query.limit)?;
    let cursor = present(query.cursor);
    let definitions = state.engine.list_definitions().await?;
    Ok(Json(page_of(
        definitions,
        |definition| {
            cursor
                .as_deref()
                .is_none_or(|cursor| definition.id.as_str() > cursor)
        },
        |definition| definition.id.clone(),
        limit,
    )))
}

/// The latest version of a definition.
#[utoipa::path(
    get,
    path = "/definitions/{definition_id}",
    tag = "definitions",
    params(("definition_id" = String, Path, description = "Definition id")),
    responses(
        (status = 200, description = "The latest version", body = openapi::Definition),
        (status = 404, description = "No such definition", body = ErrorBody),
    )
)]
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

/// Every version of a definition, oldest first, a page at a time.
#[utoipa::path(
    get,
    path = "/definitions/{definition_id}/versions",
    tag = "definitions",
    params(
        ("definition_id" = String, Path, description = "Definition id"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 500 (default 50)"),
    ),
    responses(
        (status = 200, description = "One page of versions", body = List<openapi::Definition>),
        (status = 404, description = "No such definition", body = ErrorBody),
    )
)]
async fn definition_versions(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<List<DefinitionView>>, ApiError> {
    let limit = page_size(query.limit)?;
    let after_version = present(query.cursor)
        .map(|cursor| {
            cursor.parse::<u32>().map_err(|_| {
                ApiError::bad_parameter("cursor", format!("{cursor:?} is not a version cursor"))
            })
        })
        .transpose()?;
    let versions = state
        .engine
        .definition_versions(&DefinitionId::from(id))
        .await?;
    Ok(Json(page_of(
        versions,
        |definition| after_version.is_none_or(|after| definition.version > after),
        |definition| definition.version.to_string(),
        limit,
    )))
}

/// One version of a definition.
#[utoipa::path(
    get,
    path = "/definitions/{definition_id}/versions/{version}",
    tag = "definitions",
    params(
        ("definition_id" = String, Path, description = "Definition id"),
        ("version" = u32, Path, description = "Version, from 1"),
    ),
    responses(
        (status = 200, description = "That version", body = openapi::Definition),
        (status = 404, description = "No such definition or version", body = ErrorBody),
    )
)]
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

/// Start an instance of a definition (the latest version unless `version` is given).
#[utoipa::path(
    post,
    path = "/definitions/{definition_id}/instances",
    tag = "instances",
    params(("definition_id" = String, Path, description = "Definition id")),
    request_body = StartRequest,
    responses(
        (status = 201, description = "Started; `Location` names the instance", body = StartResponse),
        (status = 404, description = "No such definition or version", body = ErrorBody),
        (status = 422, description = "The input does not match the definition's input schema", body = ErrorBody),
    )
)]
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

/// List instances, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/instances",
    tag = "instances",
    params(
        ("status" = Option<openapi::InstanceStatus>, Query, description = "Only instances with this status"),
        ("definition" = Option<String>, Query, description = "Only instances of this definition"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 500 (default 50)"),
    ),
    responses(
        (status = 200, description = "One page of instances", body = List<openapi::Instance>),
        (status = 400, description = "A parameter is not valid", body = ErrorBody),
    )
)]
async fn list_instances(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<InstanceQuery>,
) -> Result<Json<List<InstanceView>>, ApiError> {
    let status = present(query.status)
        .map(|status| InstanceStatus::from_str(&status))
        .transpose()
        .map_err(|message| ApiError::bad_parameter("status", message))?;
    let limit = page_size(query.limit)?;
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

/// An instance's state: status, steps with status, attempts and output.
#[utoipa::path(
    get,
    path = "/instances/{instance_id}",
    tag = "instances",
    params(("instance_id" = String, Path, description = "Instance id")),
    responses(
        (status = 200, description = "The instance", body = openapi::Instance),
        (status = 404, description = "No such instance", body = ErrorBody),
    )
)]
async fn instance(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<InstanceView>, ApiError> {
    Ok(Json(state.engine.instance(&InstanceId::from(id)).await?))
}

/// Cancel an instance: active work stops, nothing is compensated.
#[utoipa::path(
    post,
    path = "/instances/{instance_id}/cancel",
    tag = "instances",
    params(("instance_id" = String, Path, description = "Instance id")),
    request_body(content = CancelRequest, description = "Optional: why"),
    responses(
        (status = 200, description = "The cancelled instance", body = openapi::Instance),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 409, description = "The instance has finished already", body = ErrorBody),
    )
)]
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

/// Retry a failed step of a failed instance, with the next attempt number.
#[utoipa::path(
    post,
    path = "/instances/{instance_id}/steps/{step_id}/retry",
    tag = "instances",
    params(
        ("instance_id" = String, Path, description = "Instance id"),
        ("step_id" = String, Path, description = "Step id"),
    ),
    responses(
        (status = 200, description = "The instance, running again", body = openapi::Instance),
        (status = 404, description = "No such instance or step", body = ErrorBody),
        (status = 409, description = "The step cannot be retried now", body = ErrorBody),
    )
)]
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

/// An instance's history: its hash-chained events in seq order.
#[utoipa::path(
    get,
    path = "/instances/{instance_id}/history",
    tag = "history",
    params(("instance_id" = String, Path, description = "Instance id")),
    responses(
        (status = 200, description = "The history", body = History),
        (status = 404, description = "No such instance", body = ErrorBody),
    )
)]
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
