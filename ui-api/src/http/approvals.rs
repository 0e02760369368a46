//! Approval and signal routes (DESIGN.md §5): `GET /approvals`, `GET /approvals/{id}`,
//! `POST /approvals/{id}/decision` and `POST /instances/{id}/signals/{name}`.
//!
//! The caller's `user` and `groups` decide which approvals they see and may decide; the
//! engine's core enforces the rules (assignees, self-approval, one decision per user,
//! the form) and its refusals become 403, 409 and 422 through [`ApiError`].

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use gridflow_core::{ApprovalStatus, InstanceId, Verdict};
use gridflow_runtime::{ApprovalView, Approver, DecisionRequest, Detail, InstanceView};

use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, RawBody};
use crate::http::paging::{List, Page, present};
use crate::http::state::AppState;

/// What a decision does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// Approve.
    Approve,
    /// Reject.
    Reject,
    /// Hand the decision to the user named by `to`.
    Delegate,
}

/// Body of `POST /approvals/{id}/decision`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// `approve`, `reject` or `delegate`.
    pub decision: DecisionKind,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Form data, checked against the approval's `form`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// The delegate (only with `delegate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// `{instance_id, signal, instance}` of a delivered signal.
#[derive(Debug, Clone, Serialize)]
pub struct SignalResponse {
    /// The instance.
    pub instance_id: String,
    /// The signal name.
    pub signal: String,
    /// The instance after the signal (a kept signal leaves it unchanged).
    pub instance: InstanceView,
}

/// The approval and signal routes, registered with their OpenAPI descriptions; nested
/// under `/api/v1` by the router.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_approvals))
        .routes(routes!(approval))
        .routes(routes!(decide))
        .routes(routes!(signal))
}

/// Query of `GET /approvals`, besides its [`Page`].
#[derive(Debug, Deserialize)]
struct ApprovalQuery {
    status: Option<String>,
}

#[utoipa::path(
    get,
    path = "/approvals",
    tag = "approvals",
    params(
        ("status" = inline(Option<crate::http::openapi_params::ApprovalStatusFilter>), Query, description = "pending (default), approved, rejected, failed, cancelled or all"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = inline(Option<crate::http::openapi_params::PageSize>), Query, description = "Page size, 1 to `limits.max_page_size` (500 by default; default 50)"),
    ),
    responses((status = 200, description = "One page of the approvals assigned to the caller or the caller's groups", body = Object))
)]
async fn list_approvals(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ApprovalQuery>,
    page: Page,
) -> Result<Json<List<ApprovalView>>, ApiError> {
    // `pending` when absent: the caller's work list; `all` lists every status.
    let status = match present(query.status).as_deref() {
        None => Some(ApprovalStatus::Pending),
        Some("all") => None,
        Some(text) => Some(ApprovalStatus::parse(text).ok_or_else(|| {
            ApiError::bad_parameter(
                "status",
                format!(
                    "expected one of pending, approved, rejected, failed, cancelled, all; got {text:?}"
                ),
            )
        })?),
    };
    let approver = Approver {
        user: &caller.user,
        groups: &caller.groups,
    };
    let page = state
        .engine
        .list_approvals(&approver, status, page.cursor.as_deref(), page.limit)
        .await?;
    Ok(Json(List {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(
    get,
    path = "/approvals/{approval_id}",
    tag = "approvals",
    params(("approval_id" = String, Path, description = "Approval id (`<instance>:<step>:<attempt>`)")),
    responses(
        (status = 200, description = "The approval", body = Object),
        (status = 404, description = "No such approval", body = crate::http::openapi::ErrorBody),
    )
)]
async fn approval(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ApprovalView>, ApiError> {
    Ok(Json(state.engine.approval(&id).await?))
}

fn invalid_field(path: &str, message: &str) -> ApiError {
    ApiError::invalid(
        format!("{path}: {message}"),
        vec![Detail {
            path: path.to_owned(),
            message: message.to_owned(),
        }],
    )
}

#[utoipa::path(
    post,
    path = "/approvals/{approval_id}/decision",
    tag = "approvals",
    params(("approval_id" = String, Path, description = "Approval id")),
    request_body = inline(crate::http::openapi_params::DecisionRequest),
    responses(
        (status = 200, description = "The approval after the decision", body = Object),
        (status = 403, description = "The caller is not an assignee, or started the instance", body = crate::http::openapi::ErrorBody),
        (status = 409, description = "The approval is closed or the caller decided already", body = crate::http::openapi::ErrorBody),
        (status = 422, description = "The data violates the approval's form", body = crate::http::openapi::ErrorBody),
    )
)]
async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Json<ApprovalView>, ApiError> {
    let request = match body.decision {
        DecisionKind::Delegate => {
            let to = body
                .to
                .filter(|to| !to.trim().is_empty())
                .ok_or_else(|| invalid_field("to", "delegate needs the user to delegate to"))?;
            DecisionRequest::Delegate { to }
        }
        DecisionKind::Approve | DecisionKind::Reject => {
            if body.to.is_some() {
                return Err(invalid_field("to", "only a delegate decision names a user"));
            }
            DecisionRequest::Decide {
                decision: if body.decision == DecisionKind::Approve {
                    Verdict::Approve
                } else {
                    Verdict::Reject
                },
                comment: body.comment,
                data: body.data.unwrap_or(Value::Null),
            }
        }
    };
    let approver = Approver {
        user: &caller.user,
        groups: &caller.groups,
    };
    Ok(Json(state.engine.decide(&id, &approver, request).await?))
}

#[utoipa::path(
    post,
    path = "/instances/{instance_id}/signals/{name}",
    tag = "instances",
    params(
        ("instance_id" = String, Path, description = "Instance id"),
        ("name" = String, Path, description = "Signal name"),
    ),
    request_body(content = inline(crate::http::openapi_params::AnyJson), description = "The signal's payload, any JSON"),
    responses(
        (status = 200, description = "Delivered (or kept until its wait step is reached)", body = Object),
        (status = 404, description = "No such instance", body = crate::http::openapi::ErrorBody),
        (status = 409, description = "The instance has finished, or keeping the signal would pass `limits.max_pending_signals` or `limits.max_pending_signal_bytes` (code `limit_exceeded`)", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "The payload is larger than `limits.max_signal_bytes`", body = crate::http::openapi::ErrorBody),
    )
)]
async fn signal(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, name)): ApiPath<(String, String)>,
    RawBody(body): RawBody,
) -> Result<Json<SignalResponse>, ApiError> {
    // The body is the signal's payload: any JSON value, `null` when empty.
    let payload = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&body).map_err(|error| {
            ApiError::bad_request(format!("the signal payload is not JSON: {error}"))
        })?
    };
    let instance = InstanceId::from(id);
    state
        .engine
        .signal(&instance, &name, payload, &caller.user)
        .await?;
    Ok(Json(SignalResponse {
        instance_id: instance.to_string(),
        signal: name,
        instance: state.engine.instance(&instance).await?,
    }))
}
