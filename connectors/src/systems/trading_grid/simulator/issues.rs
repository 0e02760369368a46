//! Issues (cases) with partner companies and their comments \[D\].

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::{Context, change_and_emit, error_value, render_error};
use crate::simulator::http::{json_object, not_found, now_rfc3339, respond};
use crate::simulator::{Change, idempotency_key};

pub(super) async fn create_issue(
    State(context): Context,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = match json_object(&body, render_error) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let change = Change::new(
        "issue.opened",
        "POST",
        "/hub/v1/issues",
        idempotency_key(&headers),
    );
    change_and_emit(&context, change, |state| {
        let company_id = body["partner_company_id"].as_str().unwrap_or_default();
        if !state.companies.contains_key(company_id) {
            return Err(not_found(error_value, "company", company_id));
        }
        let issue_id = state.new_id("iss");
        let at = now_rfc3339(true);
        let mut issue = body.clone();
        issue["issue_id"] = json!(issue_id);
        issue["status"] = json!(body["status"].as_str().unwrap_or("open"));
        issue["comments"] = json!([]);
        issue["created_at"] = json!(at);
        issue["updated_at"] = json!(at);
        state.issues.insert(issue_id.clone(), issue.clone());
        state.record_event("issue.created", issue.clone());
        Ok((StatusCode::CREATED, issue, Some(issue_id.clone())))
    })
}

pub(super) async fn get_issue(State(context): Context, Path(issue_id): Path<String>) -> Response {
    respond(context.store.read(|state| {
        state
            .issues
            .get(&issue_id)
            .cloned()
            .ok_or_else(|| not_found(error_value, "issue", &issue_id))
    }))
}

pub(super) async fn update_issue(
    State(context): Context,
    headers: HeaderMap,
    Path(issue_id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match json_object(&body, render_error) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let path = format!("/hub/v1/issues/{issue_id}");
    let change = Change::new("issue.updated", "PATCH", path, idempotency_key(&headers));
    change_and_emit(&context, change, |state| {
        let issue = state
            .issues
            .get_mut(&issue_id)
            .ok_or_else(|| not_found(error_value, "issue", &issue_id))?;
        for field in ["title", "description", "severity", "status", "related"] {
            if let Some(value) = body.get(field) {
                issue[field] = value.clone();
            }
        }
        issue["updated_at"] = json!(now_rfc3339(true));
        let issue = issue.clone();
        state.record_event("issue.updated", issue.clone());
        Ok((StatusCode::OK, issue, Some(issue_id.clone())))
    })
}

pub(super) async fn comment_issue(
    State(context): Context,
    headers: HeaderMap,
    Path(issue_id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match json_object(&body, render_error) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let path = format!("/hub/v1/issues/{issue_id}/comments");
    let change = Change::new("issue.commented", "POST", path, idempotency_key(&headers));
    change_and_emit(&context, change, |state| {
        let comment_id = state.new_id("cmt");
        let issue = state
            .issues
            .get_mut(&issue_id)
            .ok_or_else(|| not_found(error_value, "issue", &issue_id))?;
        let comment = json!({"comment_id": comment_id, "body": body["body"].clone(), "author": body["author"].clone(), "created_at": now_rfc3339(true)});
        if let Some(comments) = issue["comments"].as_array_mut() {
            comments.push(comment.clone());
        }
        let mut data = comment.clone();
        data["issue_id"] = json!(issue_id);
        state.record_event("issue.commented", data);
        Ok((StatusCode::CREATED, comment, Some(issue_id.clone())))
    })
}
