//! The instance routes (DESIGN.md §5): start (`POST /definitions/{id}/instances`, safe to
//! retry with an `Idempotency-Key`), the list of instances, an instance, cancel, retry of
//! a failed step, and the hash-chained history.

use std::str::FromStr;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use gridflow_core::{DefinitionId, InstanceId, InstanceStatus, RecordedEvent, StepId};
use gridflow_runtime::{InstanceSummary, InstanceView};
use gridflow_store::InstanceFilter;

use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::openapi::{self, ErrorBody};
use crate::http::paging::{List, Page, present};
use crate::http::state::AppState;

/// Body of `POST /definitions/{id}/instances`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The start input; `{}` when absent.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub input: Value,
    /// The definition version; the latest when absent.
    #[serde(default, deserialize_with = "whole_number")]
    pub version: Option<u32>,
}

/// A version as JSON Schema's `integer` has it: `2` or `2.0`.
pub(crate) fn whole_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u32>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = number.as_u64().or_else(|| {
        number
            .as_f64()
            .filter(|value| value.fract() == 0.0 && *value >= 0.0 && *value <= f64::from(u32::MAX))
            .map(|value| value as u64)
    });
    whole
        .and_then(|value| u32::try_from(value).ok())
        .map(Some)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "expected a version from 0 to {}, got {number}",
                u32::MAX
            ))
        })
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

/// The header that makes a start safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The longest idempotency key accepted.
const MAX_IDEMPOTENCY_KEY_LENGTH: usize = 255;

/// The `Idempotency-Key` of a request, if it has one: 1 to 255 printable ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let problem = || {
        ApiError::bad_parameter(
            "Idempotency-Key",
            format!(
                "expected 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters, such as a UUID"
            ),
        )
    };
    let key = value.to_str().map_err(|_| problem())?;
    let printable = key.bytes().all(|byte| (0x20..0x7f).contains(&byte));
    if key.trim().is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LENGTH || !printable {
        return Err(problem());
    }
    Ok(Some(key))
}

/// Start an instance of a definition (the latest version unless `version` is given).
///
/// With an `Idempotency-Key` header, the start happens at most once per definition,
/// user and key: a retry with the same key answers the same instance with 200 and starts
/// nothing (the key is kept as long as the instance); the same key with another input or
/// version is refused with 409.
#[utoipa::path(
    post,
    path = "/definitions/{definition_id}/instances",
    tag = "instances",
    params(
        ("definition_id" = String, Path, description = "Definition id"),
        ("Idempotency-Key" = inline(Option<crate::http::openapi_params::IdempotencyKey>), Header, description = "Makes the start safe to retry: 1 to 255 printable ASCII characters, unique per start (a UUID)"),
    ),
    request_body = StartRequest,
    responses(
        (status = 201, description = "Started; `Location` names the instance", body = StartResponse),
        (status = 200, description = "Started earlier with this `Idempotency-Key`; nothing new was started", body = StartResponse),
        (status = 400, description = "The `Idempotency-Key` is not valid", body = ErrorBody),
        (status = 404, description = "No such definition or version", body = ErrorBody),
        (status = 409, description = "The `Idempotency-Key` was used for another input or version", body = ErrorBody),
        (status = 422, description = "The input does not match the definition's input schema", body = ErrorBody),
    )
)]
pub(crate) async fn start_instance(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<StartRequest>,
) -> Result<Response, ApiError> {
    let definition = DefinitionId::from(id);
    let (instance, status) = match idempotency_key(&headers)? {
        Some(key) => {
            let started = state
                .engine
                .start_instance_idempotent(
                    &definition,
                    request.version,
                    request.input,
                    &caller.user,
                    key,
                )
                .await?;
            let status = if started.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (started.instance, status)
        }
        None => {
            let instance = state
                .engine
                .start_instance(&definition, request.version, request.input, &caller.user)
                .await?;
            (instance, StatusCode::CREATED)
        }
    };
    let mut response = (
        status,
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

/// Query of `GET /instances` besides its [`Page`]; parsed by hand so that a bad value is
/// named in the error.
#[derive(Debug, Deserialize)]
pub(crate) struct InstanceQuery {
    status: Option<String>,
    definition: Option<String>,
    view: Option<String>,
}

/// An item of `GET /instances`: the whole instance (the default), or its summary with
/// `?view=summary`, which the store reads without the state snapshot.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum ListedInstance {
    Full(Box<InstanceView>),
    Summary(InstanceSummary),
}

/// List instances, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/instances",
    tag = "instances",
    params(
        ("status" = inline(Option<crate::http::openapi_params::StatusFilter>), Query, description = "Only instances with this status"),
        ("definition" = Option<String>, Query, description = "Only instances of this definition"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = inline(Option<crate::http::openapi_params::PageSize>), Query, description = "Page size, 1 to `limits.max_page_size` (500 by default; default 50)"),
        ("view" = inline(Option<crate::http::openapi_params::ListView>), Query, description = "`full` (default): whole instances with their steps; `summary`: without steps, read without the state snapshot"),
    ),
    responses(
        (status = 200, description = "One page of instances (summaries with `view=summary`)", body = List<openapi::ListedInstance>),
        (status = 400, description = "A parameter is not valid", body = ErrorBody),
    )
)]
pub(crate) async fn list_instances(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<InstanceQuery>,
    page: Page,
) -> Result<Json<List<ListedInstance>>, ApiError> {
    let status = present(query.status)
        .map(|status| InstanceStatus::from_str(&status))
        .transpose()
        .map_err(|message| ApiError::bad_parameter("status", message))?;
    let filter = InstanceFilter {
        status,
        definition: present(query.definition).map(DefinitionId::from),
    };
    let engine = &state.engine;
    let (items, next_cursor) = match present(query.view).as_deref() {
        None | Some("full") => {
            let page = engine
                .list_instances(&filter, page.cursor.as_deref(), page.limit)
                .await?;
            let items = page.items.into_iter().map(Box::new);
            (items.map(ListedInstance::Full).collect(), page.next_cursor)
        }
        Some("summary") => {
            let page = engine
                .list_instance_summaries(&filter, page.cursor.as_deref(), page.limit)
                .await?;
            let items = page.items.into_iter().map(ListedInstance::Summary);
            (items.collect(), page.next_cursor)
        }
        Some(other) => {
            return Err(ApiError::bad_parameter(
                "view",
                format!("{other:?} is not a view: use full or summary"),
            ));
        }
    };
    Ok(Json(List { items, next_cursor }))
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
pub(crate) async fn instance(
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
pub(crate) async fn cancel(
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
pub(crate) async fn retry_step(
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
pub(crate) async fn history(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_version_is_a_whole_number_written_either_way() {
        let parse = |text: &str| serde_json::from_str::<StartRequest>(text).map(|r| r.version);
        assert_eq!(parse(r#"{"version": 2}"#).unwrap(), Some(2));
        assert_eq!(parse(r#"{"version": 2.0}"#).unwrap(), Some(2));
        assert_eq!(parse(r#"{"version": null}"#).unwrap(), None);
        assert_eq!(parse("{}").unwrap(), None);
        for bad in ["2.5", "-1", "4294967296"] {
            let error = parse(&format!(r#"{{"version": {bad}}}"#)).unwrap_err();
            assert!(
                error.to_string().contains("expected a version"),
                "{bad}: {error}"
            );
        }
        assert!(parse(r#"{"version": "2"}"#).is_err());
    }
}
