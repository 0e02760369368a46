//! The audit routes (DESIGN.md §4–5): the public key, checkpoints, verification, the
//! streaming export, and replay at a seq or event by event.
//!
//! Auditors may call all of these; they sit behind the same token layer as the rest of
//! `/api/v1` (role checks are added there, not here).

use std::convert::Infallible;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use gridflow_core::audit::{Checkpoint, Report};
use gridflow_core::{DefinitionId, InstanceId};
use gridflow_runtime::EventDiff;
use gridflow_store::AuditFilter;

use crate::http::error::ApiError;
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::paging::{List, present};
use crate::http::state::AppState;

/// The audit routes, to be nested under `/api/v1` (inside its token layer).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(key))
        .routes(routes!(checkpoints, checkpoint))
        .routes(routes!(verify))
        .routes(routes!(export))
        .routes(routes!(replay))
}

/// `GET /audit/key`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyResponse {
    /// Always `ed25519`.
    pub algorithm: String,
    /// The public key that checkpoints are signed with, 64 hex characters.
    pub public_key: String,
}

#[utoipa::path(
    get,
    path = "/audit/key",
    tag = "audit",
    responses((status = 200, description = "The Ed25519 public key that signs checkpoints", body = Object))
)]
async fn key(State(state): State<AppState>) -> Json<KeyResponse> {
    Json(KeyResponse {
        algorithm: "ed25519".to_owned(),
        public_key: state.engine.audit_public_key().to_string(),
    })
}

#[utoipa::path(
    post,
    path = "/audit/checkpoints",
    tag = "audit",
    responses((status = 201, description = "A new signed checkpoint over every instance's chain head", body = Object))
)]
async fn checkpoint(
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<Checkpoint>), ApiError> {
    Ok((StatusCode::CREATED, Json(state.engine.checkpoint().await?)))
}

#[utoipa::path(
    get,
    path = "/audit/checkpoints",
    tag = "audit",
    responses((status = 200, description = "Every signed checkpoint, oldest first", body = Object))
)]
async fn checkpoints(State(state): State<AppState>) -> Result<Json<List<Checkpoint>>, ApiError> {
    Ok(Json(List {
        items: state.engine.checkpoints().await?,
        next_cursor: None,
    }))
}

#[utoipa::path(
    get,
    path = "/audit/verify",
    tag = "audit",
    responses((status = 200, description = "Every chain and checkpoint checked; each problem names instance, first bad seq and kind", body = Object))
)]
async fn verify(State(state): State<AppState>) -> Result<Json<Report>, ApiError> {
    Ok(Json(state.engine.verify().await?))
}

/// Query of `GET /audit/export`; parsed by hand so that a bad value is named.
#[derive(Debug, Deserialize)]
struct ExportQuery {
    from: Option<String>,
    to: Option<String>,
    definition: Option<String>,
    instance: Option<String>,
}

fn instant(name: &str, value: Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .filter(|value| !value.is_empty())
        .map(|value| {
            DateTime::parse_from_rfc3339(&value)
                .map(|at| at.with_timezone(&Utc))
                .map_err(|error| {
                    ApiError::bad_parameter(
                        name,
                        format!("expected an RFC 3339 instant such as 2026-11-22T10:00:00Z, got {value:?}: {error}"),
                    )
                })
        })
        .transpose()
}

#[utoipa::path(
    get,
    path = "/audit/export",
    tag = "audit",
    params(
        ("from" = inline(Option<crate::http::openapi_params::InstantFilter>), Query, description = "Instances created at or after (RFC 3339)"),
        ("to" = inline(Option<crate::http::openapi_params::InstantFilter>), Query, description = "Instances created before (RFC 3339)"),
        ("definition" = Option<String>, Query, description = "Only this definition"),
        ("instance" = Option<String>, Query, description = "Only this instance"),
    ),
    responses(
        (status = 200, description = "JSON Lines: events, checkpoints and the public key that cover them", content_type = "application/x-ndjson", body = String),
        (status = 400, description = "A bad query value, named", body = crate::http::openapi::ErrorBody),
    )
)]
async fn export(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let filter = AuditFilter {
        instance: present(query.instance).map(InstanceId::from),
        definition: present(query.definition).map(DefinitionId::from),
        created_from: instant("from", query.from)?,
        created_to: instant("to", query.to)?,
    };
    // A bounded channel: the export reads the database only as fast as the client reads
    // the response, so memory stays flat however large the export is.
    let (lines, mut receiver) = mpsc::channel::<String>(256);
    let engine = state.engine.clone();
    tokio::spawn(async move {
        // A failure after the first line cannot change the status any more: the export
        // then ends without its `end` line, which offline verification reports.
        if let Err(error) = engine.export(&filter, lines).await {
            tracing::error!(%error, "audit export stopped");
        }
    });
    let stream = futures_util::stream::poll_fn(move |context| {
        receiver
            .poll_recv(context)
            .map(|line| line.map(|line| Ok::<_, Infallible>(Bytes::from(line))))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct ReplayQuery {
    at: Option<String>,
    diff: Option<String>,
}

/// `GET /instances/{id}/replay?diff=true`.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayDiff {
    /// The instance.
    pub instance_id: String,
    /// What changed at each event, in seq order.
    pub events: Vec<EventDiff>,
}

#[utoipa::path(
    get,
    path = "/instances/{instance_id}/replay",
    tag = "history",
    params(
        ("instance_id" = String, Path, description = "Instance id"),
        ("at" = inline(Option<crate::http::openapi_params::SeqFilter>), Query, description = "Fold the history up to this seq"),
        ("diff" = inline(Option<crate::http::openapi_params::FlagFilter>), Query, description = "List what each event changed instead"),
    ),
    responses(
        (status = 200, description = "The replayed state and whether it matches the stored one (with `diff=true`: `{instance_id, events}`, what each event changed)", body = inline(crate::http::openapi_params::ReplayOrDiff)),
        (status = 400, description = "`at` beyond the last seq, or a bad value", body = crate::http::openapi::ErrorBody),
        (status = 404, description = "No such instance", body = crate::http::openapi::ErrorBody),
    )
)]
async fn replay(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ReplayQuery>,
) -> Result<Response, ApiError> {
    let instance = InstanceId::from(id);
    let diff = match query.diff.as_deref() {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_parameter(
                "diff",
                format!("expected true or false, got {other:?}"),
            ));
        }
    };
    let at = match query.at.filter(|at| !at.is_empty()) {
        None => None,
        Some(at) => Some(at.parse::<u64>().map_err(|_| {
            ApiError::bad_parameter("at", format!("expected a seq (a whole number), got {at:?}"))
        })?),
    };
    if diff {
        let events = state.engine.replay_diff(&instance).await?;
        let events = match at {
            Some(at) => events.into_iter().filter(|event| event.seq <= at).collect(),
            None => events,
        };
        return Ok(Json(ReplayDiff {
            instance_id: instance.to_string(),
            events,
        })
        .into_response());
    }
    let replayed = state.engine.replay(&instance, at).await?;
    if let Some(at) = at
        && at > replayed.last_seq
    {
        return Err(ApiError::bad_parameter(
            "at",
            format!(
                "instance {instance} has {} events: at must be from 0 to {}",
                replayed.last_seq, replayed.last_seq
            ),
        ));
    }
    Ok(Json(replayed).into_response())
}
