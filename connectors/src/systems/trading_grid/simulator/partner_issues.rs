//! Issues a partner raises on the hub \[D\], under the partner prefix `/partner/v1` with
//! the partner user in `X-Partner-Login` (as the other partner routes):
//!
//! | route | event |
//! |---|---|
//! | `POST /partner/v1/issues {title, description, severity?, category?, related?}` | `issue.created` |
//! | `GET /partner/v1/issues/{issue_id}` | (none: the issue as its partner sees it) |
//!
//! `category` says what is wrong with the content (`missing`, `wrong`, `low_quality`,
//! `other`); `related` names what the issue is about (`post_id`, `document_id`,
//! `asset_id`, `system`). The issue is the partner's company's, with the partner user
//! as `login_id`: that is how a workflow tells it from one we opened (`/hub/v1/issues`
//! has no `login_id`). Another company's issue is 404 to a partner.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::json;

use super::partner::{owned, partner};
use super::{Context, Shared, change_and_emit, render_error};
use crate::simulator::Change;
use crate::simulator::http::{json_object, now_rfc3339, respond};

const CATEGORIES: [&str; 4] = ["missing", "wrong", "low_quality", "other"];
const SEVERITIES: [&str; 3] = ["low", "medium", "high"];
const RELATED: [&str; 4] = ["post_id", "document_id", "asset_id", "system"];

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/partner/v1/issues", post(raise))
        .route("/partner/v1/issues/{issue_id}", get(read))
}

/// Why `body` is not an issue a partner may raise, if it is not.
fn refusal(body: &serde_json::Value) -> Option<String> {
    let text = |field: &str| body[field].as_str().filter(|text| !text.trim().is_empty());
    if text("title").is_none() || text("description").is_none() {
        return Some("title and description are required".to_owned());
    }
    let one_of = |field: &str, allowed: &[&str]| {
        let value = &body[field];
        (!value.is_null() && !value.as_str().is_some_and(|text| allowed.contains(&text)))
            .then(|| format!("{field} must be one of {allowed:?}"))
    };
    if let Some(refusal) = one_of("category", &CATEGORIES).or(one_of("severity", &SEVERITIES)) {
        return Some(refusal);
    }
    let related = &body["related"];
    let related_ok = related.is_null()
        || related.as_object().is_some_and(|fields| {
            fields
                .iter()
                .all(|(name, value)| RELATED.contains(&name.as_str()) && value.is_string())
        });
    (!related_ok).then(|| format!("related is an object of text fields among {RELATED:?}"))
}

async fn raise(State(context): Context, headers: HeaderMap, body: Bytes) -> Response {
    let (login_id, company_id) = match partner(&context, &headers) {
        Ok(partner) => partner,
        Err(response) => return response,
    };
    let body = match json_object(&body, render_error) {
        Ok(body) => body,
        Err(response) => return response,
    };
    if let Some(refusal) = refusal(&body) {
        return render_error(StatusCode::UNPROCESSABLE_ENTITY, &refusal);
    }
    let change = Change::new("issue.raised", "POST", "/partner/v1/issues", None);
    change_and_emit(&context, change, |state| {
        let issue_id = state.new_id("iss");
        let at = now_rfc3339(true);
        let related = if body["related"].is_null() {
            json!({})
        } else {
            body["related"].clone()
        };
        let issue = json!({
            "issue_id": issue_id, "partner_company_id": company_id, "login_id": login_id,
            "title": body["title"], "description": body["description"],
            "severity": body["severity"].as_str().unwrap_or("medium"),
            "category": body["category"].as_str().unwrap_or("other"), "related": related,
            "status": "open", "comments": [], "created_at": at, "updated_at": at,
        });
        state.issues.insert(issue_id.clone(), issue.clone());
        state.record_event("issue.created", issue.clone());
        Ok((StatusCode::CREATED, issue, Some(issue_id)))
    })
}

async fn read(
    State(context): Context,
    headers: HeaderMap,
    Path(issue_id): Path<String>,
) -> Response {
    let (_, company_id) = match partner(&context, &headers) {
        Ok(partner) => partner,
        Err(response) => return response,
    };
    respond(
        context
            .store
            .read(|state| owned(&state.issues, "issue", &issue_id, &company_id)),
    )
}
