//! The Trading Grid simulator: the OAuth token service (`POST /v1/oauth2/tokens`, Basic
//! consumer key and secret) and Community Management's company and partner directory
//! \[V\], plus the partner-hub resources under `/hub/v1` that OpenText does not expose and
//! we designed \[D\]: communities, groups, members, posts, notifications, issues and
//! acknowledgements. `/hub/v1` honours `Idempotency-Key` \[D\].
//! The hub has no webhook we can rely on, so it keeps an event feed, `GET /hub/v1/events`
//! \[D\]: partners opening, updating or commenting on an issue and acknowledging a post
//! append `issue.created`, `issue.updated`, `issue.commented` and `post.acknowledged`
//! events, numbered by `seq`, which the `trading_grid` poller reads after its cursor.
//! Errors use the Cartographer shape `{status, message, error-code}`; a missing or expired
//! token gets the gateway's `{fault: {faultstring, detail: {errorcode}}}` \[I\].

// Handlers return an early `Response` through `Result` (axum's idiom for a rejection);
// boxing it would buy nothing on a loopback test server.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::simulator::http::{json_object, not_found, now_rfc3339, respond};
use crate::simulator::{
    Change, Routes, RunningSimulator, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SimContext,
    SimError, SimOptions, SimState, idempotency_key, reply,
};

/// The simulator's name.
pub const NAME: &str = "trading_grid";

/// Our company on the simulated network.
pub const SANDBOX_COMPANY_ID: &str = "GC00804444LX";

type Context = State<Arc<SimContext<TradingGridState>>>;

/// Everything the Trading Grid simulator holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TradingGridState {
    /// Companies by id (ours and the partners').
    pub companies: BTreeMap<String, Value>,
    /// Partner directory entries of each company.
    pub partner_directory: BTreeMap<String, Vec<Value>>,
    /// Communities by id.
    pub communities: BTreeMap<String, Value>,
    /// Groups by id (each names its community and member company ids).
    pub groups: BTreeMap<String, Value>,
    /// Posts by id.
    pub posts: BTreeMap<String, Value>,
    /// Acknowledgements by post id.
    pub acknowledgements: BTreeMap<String, Vec<Value>>,
    /// Notifications by id.
    pub notifications: BTreeMap<String, Value>,
    /// Issues by id.
    pub issues: BTreeMap<String, Value>,
    /// The last number used in generated ids.
    pub next_id: u64,
    /// The hub's event feed, oldest first, served by `GET /hub/v1/events` \[D\]: the same
    /// `{event, occurred_at, data}` envelope as the hub's event callbacks, numbered by `seq`.
    #[serde(default)]
    pub events: Vec<Value>,
}

impl TradingGridState {
    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{:06}", self.next_id)
    }

    /// Appends an event to the feed (in the same change as what it reports).
    fn record_event(&mut self, event: &str, data: Value) {
        let seq = self.events.len() as u64 + 1;
        self.events.push(json!({
            "seq": seq, "event_id": format!("evt-{seq:06}"), "event": event,
            "occurred_at": now_rfc3339(true), "data": data,
        }));
    }
}

impl SimState for TradingGridState {
    /// The seed data of `seed.json`, next to this file.
    fn seed() -> Self {
        serde_json::from_str(include_str!("seed.json")).expect("seed.json holds valid state")
    }
}

/// Starts the Trading Grid simulator.
pub async fn start(options: SimOptions) -> Result<RunningSimulator, SimError> {
    crate::simulator::serve(NAME, options, routes(), render_error).await
}

fn routes() -> Routes<TradingGridState> {
    let public = Router::new().route("/v1/oauth2/tokens", post(token));
    let protected = Router::new()
        .route(
            "/TGCommunityServices/v1/companies/{company_id}",
            get(company),
        )
        .route(
            "/TGCommunityServices/v1/companies/{company_id}/partnerDirectory",
            get(partner_directory),
        )
        .route("/hub/v1/communities", get(communities))
        .route("/hub/v1/communities/{community_id}/groups", get(groups))
        .route("/hub/v1/groups/{group_id}/members", get(members))
        .route(
            "/hub/v1/communities/{community_id}/posts",
            post(create_post),
        )
        .route("/hub/v1/notifications", post(notify))
        .route("/hub/v1/events", get(events))
        .route("/hub/v1/issues", post(create_issue))
        .route(
            "/hub/v1/issues/{issue_id}",
            patch(update_issue).get(get_issue),
        )
        .route("/hub/v1/issues/{issue_id}/comments", post(comment_issue))
        .route(
            "/hub/v1/posts/{post_id}/acknowledgements",
            post(acknowledge).get(acknowledgements),
        );
    Routes {
        public,
        protected,
        authorize,
    }
}

/// Writes an error in the Cartographer shape.
pub fn render_error(status: StatusCode, message: &str) -> Response {
    let (status, body) = error_value(status, message);
    (status, axum::Json(body)).into_response()
}

fn error_value(status: StatusCode, message: &str) -> (StatusCode, Value) {
    let code = match status.as_u16() {
        400 => "TG-400-BAD-REQUEST",
        404 => "TG-404-NOT-FOUND",
        409 => "TG-409-CONFLICT",
        422 => "TG-422-VALIDATION",
        429 => "TG-429-RATE-LIMIT",
        _ => "TG-500-INTERNAL",
    };
    (
        status,
        json!({"status": status.canonical_reason().unwrap_or("Error"), "message": message, "error-code": code}),
    )
}

fn authorize(context: &SimContext<TradingGridState>, headers: &HeaderMap) -> Result<(), Response> {
    if context.tokens.check_bearer(headers) {
        return Ok(());
    }
    Err((
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"fault": {"faultstring": "Invalid access token", "detail": {"errorcode": "oauth.v2.InvalidAccessToken"}}})),
    )
        .into_response())
}

async fn token(
    State(context): Context,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if query.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return render_error(
            StatusCode::BAD_REQUEST,
            "grant_type must be client_credentials",
        );
    }
    let expected = format!(
        "Basic {}",
        base64_encode(format!("{SANDBOX_CLIENT_ID}:{SANDBOX_CLIENT_SECRET}").as_bytes())
    );
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        != Some(expected.as_str())
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"fault": {"faultstring": "Invalid ApiKey", "detail": {"errorcode": "oauth.v2.InvalidApiKey"}}})),
        )
            .into_response();
    }
    let token = context.tokens.issue();
    axum::Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": 36000}))
        .into_response()
}

/// Standard base64 with padding, for checking a Basic header.
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

async fn company(State(context): Context, Path(company_id): Path<String>) -> Response {
    respond(context.store.read(|state| {
        state
            .companies
            .get(&company_id)
            .cloned()
            .ok_or_else(|| not_found(error_value, "company", &company_id))
    }))
}

async fn partner_directory(
    State(context): Context,
    Path(company_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let name = query
        .get("partnerCompanyName")
        .map(|name| name.to_lowercase());
    respond(context.store.read(|state| {
        let partners = state
            .partner_directory
            .get(&company_id)
            .ok_or_else(|| not_found(error_value, "company", &company_id))?;
        let partners: Vec<Value> = partners
            .iter()
            .filter(|partner| {
                name.as_ref().is_none_or(|name| {
                    partner["partnerCompanyName"]
                        .as_str()
                        .is_some_and(|candidate| candidate.to_lowercase().contains(name.as_str()))
                })
            })
            .cloned()
            .collect();
        Ok(json!({"partnerDirectory": partners}))
    }))
}

async fn communities(State(context): Context) -> Response {
    let list: Vec<Value> = context
        .store
        .read(|state| state.communities.values().cloned().collect());
    axum::Json(json!({"communities": list})).into_response()
}

async fn groups(State(context): Context, Path(community_id): Path<String>) -> Response {
    respond(context.store.read(|state| {
        if !state.communities.contains_key(&community_id) {
            return Err(not_found(error_value, "community", &community_id));
        }
        let groups: Vec<Value> = state
            .groups
            .values()
            .filter(|group| group["community_id"] == community_id.as_str())
            .cloned()
            .collect();
        Ok(json!({"groups": groups}))
    }))
}

async fn members(State(context): Context, Path(group_id): Path<String>) -> Response {
    respond(context.store.read(|state| {
        let group = state
            .groups
            .get(&group_id)
            .ok_or_else(|| not_found(error_value, "group", &group_id))?;
        let members: Vec<Value> = group["member_company_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|id| id.as_str())
            .map(|id| {
                let name = state
                    .companies
                    .get(id)
                    .map(|company| company["companyName"].clone())
                    .unwrap_or(Value::Null);
                json!({"companyId": id, "companyName": name})
            })
            .collect();
        Ok(json!({"members": members}))
    }))
}

async fn create_post(
    State(context): Context,
    headers: HeaderMap,
    Path(community_id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match json_object(&body, render_error) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let path = format!("/hub/v1/communities/{community_id}/posts");
    let change = Change::new("post.published", "POST", path, idempotency_key(&headers));
    reply(context.store.change(change, |state| {
        if !state.communities.contains_key(&community_id) {
            return Err(not_found(error_value, "community", &community_id));
        }
        if body["title"]
            .as_str()
            .is_none_or(|title| title.trim().is_empty())
        {
            return Err(error_value(
                StatusCode::UNPROCESSABLE_ENTITY,
                "title is required",
            ));
        }
        for group_id in body["group_ids"].as_array().into_iter().flatten() {
            let group_id = group_id.as_str().unwrap_or_default();
            if !state.groups.contains_key(group_id) {
                return Err(not_found(error_value, "group", group_id));
            }
        }
        let post_id = state.new_id("post");
        let mut post = body.clone();
        post["post_id"] = json!(post_id);
        post["community_id"] = json!(community_id);
        post["status"] = json!("published");
        post["created_at"] = json!(now_rfc3339(true));
        state.posts.insert(post_id.clone(), post);
        Ok((
            StatusCode::CREATED,
            json!({"post_id": post_id, "status": "published"}),
            Some(post_id.clone()),
        ))
    }))
}

async fn notify(State(context): Context, headers: HeaderMap, body: Bytes) -> Response {
    let body = match json_object(&body, render_error) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let change = Change::new(
        "notification.queued",
        "POST",
        "/hub/v1/notifications",
        idempotency_key(&headers),
    );
    reply(context.store.change(change, |state| {
        let mut companies: Vec<String> = Vec::new();
        let recipients = &body["recipients"];
        for id in recipients["company_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !state.companies.contains_key(id) {
                return Err(not_found(error_value, "company", id));
            }
            companies.push(id.to_owned());
        }
        for group_id in recipients["group_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let group = state
                .groups
                .get(group_id)
                .ok_or_else(|| not_found(error_value, "group", group_id))?;
            companies.extend(
                group["member_company_ids"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned),
            );
        }
        companies.sort();
        companies.dedup();
        let logins = recipients["login_ids"].as_array().map_or(0, Vec::len);
        let queued = companies.len() + logins;
        if queued == 0 {
            return Err(error_value(
                StatusCode::UNPROCESSABLE_ENTITY,
                "recipients name nobody",
            ));
        }
        if let Some(post_id) = body["post_id"].as_str()
            && !state.posts.contains_key(post_id)
        {
            return Err(not_found(error_value, "post", post_id));
        }
        let notification_id = state.new_id("ntf");
        let mut notification = body.clone();
        notification["notification_id"] = json!(notification_id);
        notification["queued"] = json!(queued);
        notification["created_at"] = json!(now_rfc3339(true));
        state
            .notifications
            .insert(notification_id.clone(), notification);
        Ok((
            StatusCode::ACCEPTED,
            json!({"notification_id": notification_id, "queued": queued}),
            Some(notification_id.clone()),
        ))
    }))
}

async fn create_issue(State(context): Context, headers: HeaderMap, body: Bytes) -> Response {
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
    reply(context.store.change(change, |state| {
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
    }))
}

async fn get_issue(State(context): Context, Path(issue_id): Path<String>) -> Response {
    respond(context.store.read(|state| {
        state
            .issues
            .get(&issue_id)
            .cloned()
            .ok_or_else(|| not_found(error_value, "issue", &issue_id))
    }))
}

async fn update_issue(
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
    reply(context.store.change(change, |state| {
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
    }))
}

async fn comment_issue(
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
    reply(context.store.change(change, |state| {
        let comment_id = state.new_id("cmt");
        let issue = state.issues.get_mut(&issue_id).ok_or_else(|| not_found(error_value, "issue", &issue_id))?;
        let comment = json!({"comment_id": comment_id, "body": body["body"].clone(), "author": body["author"].clone(), "created_at": now_rfc3339(true)});
        if let Some(comments) = issue["comments"].as_array_mut() {
            comments.push(comment.clone());
        }
        let mut data = comment.clone();
        data["issue_id"] = json!(issue_id);
        state.record_event("issue.commented", data);
        Ok((StatusCode::CREATED, comment, Some(issue_id.clone())))
    }))
}

async fn acknowledge(
    State(context): Context,
    headers: HeaderMap,
    Path(post_id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match json_object(&body, render_error) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let path = format!("/hub/v1/posts/{post_id}/acknowledgements");
    let change = Change::new("post.acknowledged", "POST", path, idempotency_key(&headers));
    reply(context.store.change(change, |state| {
        if !state.posts.contains_key(&post_id) {
            return Err(not_found(error_value, "post", &post_id));
        }
        let company_id = body["company_id"].as_str().unwrap_or_default();
        if !state.companies.contains_key(company_id) {
            return Err(not_found(error_value, "company", company_id));
        }
        let acknowledgement_id = state.new_id("ack");
        let mut acknowledgement = body.clone();
        acknowledgement["acknowledgement_id"] = json!(acknowledgement_id);
        acknowledgement["post_id"] = json!(post_id);
        acknowledgement["created_at"] = json!(now_rfc3339(true));
        state
            .acknowledgements
            .entry(post_id.clone())
            .or_default()
            .push(acknowledgement.clone());
        state.record_event("post.acknowledged", acknowledgement.clone());
        Ok((
            StatusCode::CREATED,
            acknowledgement,
            Some(acknowledgement_id.clone()),
        ))
    }))
}

/// `GET /hub/v1/events?after=<seq>&limit=<n>` \[D\]: the events after `seq` (default 0),
/// oldest first, at most `limit` (default 100, at most 1000), with `latest`, the highest
/// `seq` so far, so that a new poller can start from now.
async fn events(State(context): Context, Query(query): Query<HashMap<String, String>>) -> Response {
    let number = |name: &str, default: u64| match query.get(name) {
        None => Ok(default),
        Some(text) => text.parse::<u64>().map_err(|_| {
            render_error(
                StatusCode::BAD_REQUEST,
                &format!("{name} must be a non-negative integer, not {text:?}"),
            )
        }),
    };
    let (after, limit) = match (number("after", 0), number("limit", 100)) {
        (Ok(after), Ok(limit)) => (after, limit.min(1000)),
        (Err(response), _) | (_, Err(response)) => return response,
    };
    let (page, latest) = context.store.read(|state| {
        let page: Vec<Value> = state
            .events
            .iter()
            .skip(usize::try_from(after).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .cloned()
            .collect();
        (page, state.events.len() as u64)
    });
    let has_more = after + (page.len() as u64) < latest;
    axum::Json(json!({"events": page, "latest": latest, "has_more": has_more})).into_response()
}

async fn acknowledgements(State(context): Context, Path(post_id): Path<String>) -> Response {
    respond(context.store.read(|state| {
        if !state.posts.contains_key(&post_id) {
            return Err(not_found(error_value, "post", &post_id));
        }
        Ok(json!({"acknowledgements": state.acknowledgements.get(&post_id).cloned().unwrap_or_default()}))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), expected);
        }
    }
}
