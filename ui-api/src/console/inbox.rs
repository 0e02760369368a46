//! The approver's inbox (`GET /inbox`), an approval's page (`GET /approvals/{id}`) and its
//! decision (`POST /approvals/{id}/decide`).
//!
//! Each stands for an API route and is allowed to the roles its rule names
//! (`GET /approvals`, `GET /approvals/{approval_id}`,
//! `POST /approvals/{approval_id}/decision`), and calls the engine as its handler does.
//! The engine's refusals of a decision (403, 409, 422 with paths) are shown on the page.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use serde_json::Value;

use gridflow_core::{ApprovalStatus, DefinitionId, InstanceId, Verdict};
use gridflow_runtime::{ApprovalView, Approver, DecisionRequest};

use crate::console::page::{
    self, Approval, Artifact, DecisionRow, Failure, Header, Inbox, InboxRow, Notice,
};
use crate::console::session::{Session, SignedIn};
use crate::console::{CsrfForm, SIGN_OUT, allowed, form};
use crate::http::ApiError;
use crate::http::state::AppState;

/// How many pending approvals the inbox shows (paging comes later).
const INBOX_SIZE: u32 = 100;

fn header(session: &Session) -> Header {
    Header {
        user: session.caller.user.clone(),
        role: session.caller.role.to_string(),
        sign_out_csrf: session.csrf(SIGN_OUT),
    }
}

fn approver(session: &Session) -> Approver<'_> {
    Approver {
        user: &session.caller.user,
        groups: &session.caller.groups,
    }
}

fn time(at: Option<DateTime<Utc>>) -> String {
    at.map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// `GET /inbox`: the session user's pending approvals, own and groups'.
pub(crate) async fn inbox(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
) -> Result<Response, Failure> {
    allowed(&session, &Method::GET, "/approvals")?;
    let pending = state
        .engine
        .list_approvals(
            &approver(&session),
            Some(ApprovalStatus::Pending),
            None,
            INBOX_SIZE,
        )
        .await?;
    let rows = pending
        .items
        .into_iter()
        .map(|approval| InboxRow {
            due: time(approval.due_at),
            id: approval.id,
            title: approval.title,
            instance: approval.instance_id,
            step: approval.step,
            level: approval.level,
        })
        .collect();
    let inbox = Inbox {
        header: header(&session),
        rows,
    };
    Ok(page::render(StatusCode::OK, &inbox))
}

/// Query of an approval's page: `?decided` after a decision was recorded.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct PageQuery {
    decided: Option<String>,
}

/// `GET /approvals/{approval_id}`.
pub(crate) async fn approval_page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<PageQuery>,
) -> Result<Response, Failure> {
    allowed(&session, &Method::GET, "/approvals/{approval_id}")?;
    let approval = state.engine.approval(&id).await?;
    let notice = query.decided.map(|_| Notice {
        class: "ok",
        message: "Your decision was recorded.".to_owned(),
        details: Vec::new(),
    });
    let page = approval_view(&state, &session, approval, notice).await?;
    Ok(page::render(StatusCode::OK, &page))
}

/// `POST /approvals/{approval_id}/decide`: approve or reject with the form's data and a
/// comment; back to the approval's page, with the refusal on it if there is one.
pub(crate) async fn decide(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
    posted: CsrfForm,
) -> Result<Response, Failure> {
    let action = decide_action(&id);
    posted.check(&session, &action)?;
    allowed(&session, &Method::POST, "/approvals/{approval_id}/decision")?;
    let approval = state.engine.approval(&id).await?;
    let fields = form::fields(&approval_form(&state, &approval).await?);
    let verdict = match posted.get("decision") {
        Some("approve") => Verdict::Approve,
        Some("reject") => Verdict::Reject,
        _ => return Err(Failure::NotFound("no such decision".to_owned())),
    };
    let comment = posted
        .get("comment")
        .map(str::trim)
        .filter(|comment| !comment.is_empty())
        .map(str::to_owned);
    // A rejection needs no data: the engine checks the form only when data is sent.
    let data = match verdict {
        Verdict::Approve => form::data(&fields, &posted.0),
        Verdict::Reject => Value::Null,
    };
    let request = DecisionRequest::Decide {
        decision: verdict,
        comment,
        data,
    };
    match state.engine.decide(&id, &approver(&session), request).await {
        Ok(_) => Ok(Redirect::to(&format!("{}?decided=1", page_path(&id))).into_response()),
        Err(error) => {
            let error = ApiError::from(error);
            let status = error.status();
            if !matches!(
                status,
                StatusCode::FORBIDDEN | StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY
            ) {
                return Err(Failure::from(error));
            }
            let notice = Notice {
                class: "error",
                message: refusal_message(status, error.message()),
                details: error
                    .details()
                    .iter()
                    .map(|detail| (detail.path.clone(), detail.message.clone()))
                    .collect(),
            };
            let approval = state.engine.approval(&id).await?;
            let page = approval_view(&state, &session, approval, Some(notice)).await?;
            Ok(page::render(status, &page))
        }
    }
}

fn refusal_message(status: StatusCode, message: &str) -> String {
    let why = match status {
        StatusCode::FORBIDDEN => "You may not decide this approval",
        StatusCode::CONFLICT => "This approval cannot take your decision any more",
        _ => "The form is not filled in correctly",
    };
    format!("{why}: {message}")
}

fn page_path(id: &str) -> String {
    format!("/approvals/{id}")
}

fn decide_action(id: &str) -> String {
    format!("/approvals/{id}/decide")
}

/// The approval's `form` schema, from the step of the instance's definition version;
/// `null` when it has none.
async fn approval_form(state: &AppState, approval: &ApprovalView) -> Result<Value, Failure> {
    let instance = state
        .engine
        .instance(&InstanceId::from(approval.instance_id.as_str()))
        .await?;
    let definition = state
        .engine
        .definition(
            &DefinitionId::from(instance.definition.as_str()),
            Some(instance.version),
        )
        .await?;
    Ok(step_form(&definition.definition, &approval.step))
}

/// The `approval.form` of step `step` in a parsed definition. (A form holding `${…}`
/// expressions is drawn as written; the engine checks the rendered one.)
fn step_form(definition: &Value, step: &str) -> Value {
    definition
        .get("steps")
        .and_then(Value::as_array)
        .and_then(|steps| steps.iter().find(|candidate| candidate["id"] == step))
        .and_then(|found| found.pointer("/approval/form"))
        .cloned()
        .unwrap_or(Value::Null)
}

async fn approval_view(
    state: &AppState,
    session: &Session,
    approval: ApprovalView,
    notice: Option<Notice>,
) -> Result<Approval, Failure> {
    let instance = state
        .engine
        .instance(&InstanceId::from(approval.instance_id.as_str()))
        .await?;
    let form = approval_form(state, &approval).await?;
    let action = decide_action(&approval.id);
    Ok(Approval {
        header: header(session),
        csrf: session.csrf(&action),
        action,
        input: serde_json::to_string_pretty(&instance.input).unwrap_or_default(),
        artifacts: artifacts(approval.artifacts.as_ref()),
        decisions: decisions(&approval.decisions),
        fields: form::fields(&form),
        due: time(approval.due_at),
        id: approval.id,
        title: approval.title,
        status: approval.status,
        instance: approval.instance_id,
        step: approval.step,
        level: approval.level,
        notice,
    })
}

fn text(value: &Value, key: &str) -> String {
    match value.get(key) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn artifacts(bound: Option<&Value>) -> Vec<Artifact> {
    let list = match bound {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::Null) | None => Vec::new(),
        Some(one) => vec![one.clone()],
    };
    list.iter()
        .map(|artifact| Artifact {
            name: match text(artifact, "file_name") {
                name if name.is_empty() => text(artifact, "asset_id"),
                name => name,
            },
            version: text(artifact, "version"),
            sha256: text(artifact, "sha256"),
        })
        .collect()
}

fn decisions(decisions: &Value) -> Vec<DecisionRow> {
    decisions
        .as_array()
        .map(|list| {
            list.iter()
                .map(|decision| DecisionRow {
                    user: text(decision, "user"),
                    decision: text(decision, "decision"),
                    comment: text(decision, "comment"),
                    at: text(decision, "at"),
                })
                .collect()
        })
        .unwrap_or_default()
}
