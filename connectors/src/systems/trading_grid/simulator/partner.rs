//! What a partner does on the hub \[D\], under its own prefix `/partner/v1`, apart from
//! our `/hub/v1`: the partner user is named by `X-Partner-Login` (a `loginId` of the
//! seeded partner users; its company is the acting partner company). Each route appends
//! its event:
//!
//! | route | event |
//! |---|---|
//! | `POST /partner/v1/requests {type, asset?, market?, language?, description}` | `request.created` |
//! | `GET /partner/v1/requests` | (none: the company's own requests, with answers and status) |
//! | `GET /partner/v1/requests/{request_id}` | (none: one of them) |
//! | `GET /partner/v1/posts/{post_id}` | (none: the post as the partner sees it) |
//! | `POST /partner/v1/posts/{post_id}/comments {body}` | `post.commented` |
//! | `POST /partner/v1/posts/{post_id}/acknowledgements {ack_type, comment?}` | `post.acknowledged` |
//! | `GET /partner/v1/posts/{post_id}/documents/{document_id}` (the bytes) | `document.downloaded` |
//! | `POST /partner/v1/communities/{community_id}/join` | `partner.joined` |
//!
//! A post that did not reach the partner's company is 404 to it; once withdrawn (the post,
//! the document, or the company's access) it is 410 and nothing is recorded.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::posts::{access, bytes_of, octets};
use super::{
    Context, PARTNER_LOGIN_HEADER, Shared, TradingGridState, apply_and_emit, change_and_emit,
    error_value, render_error,
};
use crate::simulator::http::{json_object, not_found, now_rfc3339, respond};
use crate::simulator::{Change, reply};

const REQUEST_TYPES: [&str; 4] = ["media", "access", "localisation", "enhancement"];

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/partner/v1/requests",
            post(create_request).get(own_requests),
        )
        .route("/partner/v1/requests/{request_id}", get(own_request))
        .route("/partner/v1/posts/{post_id}", get(read_post))
        .route("/partner/v1/posts/{post_id}/comments", post(comment))
        .route(
            "/partner/v1/posts/{post_id}/acknowledgements",
            post(acknowledge),
        )
        .route(
            "/partner/v1/posts/{post_id}/documents/{document_id}",
            get(download),
        )
        .route("/partner/v1/communities/{community_id}/join", post(join))
}

/// The acting partner: `(login_id, company_id)` from `X-Partner-Login`.
pub(super) fn partner(context: &Shared, headers: &HeaderMap) -> Result<(String, String), Response> {
    let Some(login) = headers
        .get(PARTNER_LOGIN_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|login| !login.is_empty())
    else {
        return Err(render_error(
            StatusCode::UNAUTHORIZED,
            "partner routes need X-Partner-Login: <loginId>",
        ));
    };
    let company = context.store.read(|state| state.logins.get(login).cloned());
    match company {
        Some(company) => Ok((login.to_owned(), company)),
        None => Err(render_error(
            StatusCode::FORBIDDEN,
            &format!("login {login} is no partner user of the hub"),
        )),
    }
}

fn visible_post<'a>(
    state: &'a TradingGridState,
    post_id: &str,
    document_id: Option<&str>,
    company_id: &str,
) -> Result<&'a Value, (StatusCode, Value)> {
    let post = state
        .posts
        .get(post_id)
        .ok_or_else(|| not_found(error_value, "post", post_id))?;
    access(post, document_id, company_id)?;
    Ok(post)
}

async fn create_request(State(context): Context, headers: HeaderMap, body: Bytes) -> Response {
    let (login_id, company_id) = match partner(&context, &headers) {
        Ok(partner) => partner,
        Err(response) => return response,
    };
    let body = match json_object(&body, render_error) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let kind = body["type"].as_str().unwrap_or_default().to_owned();
    if !REQUEST_TYPES.contains(&kind.as_str()) {
        return render_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("type must be one of {REQUEST_TYPES:?}, not {kind:?}"),
        );
    }
    if body["description"]
        .as_str()
        .is_none_or(|text| text.trim().is_empty())
    {
        return render_error(StatusCode::UNPROCESSABLE_ENTITY, "description is required");
    }
    let asset = &body["asset"];
    let asset_ok =
        asset.is_null() || (asset["system"].is_string() && asset["asset_id"].is_string());
    if !asset_ok {
        return render_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "asset must be {system, asset_id}",
        );
    }
    let change = Change::new("request.created", "POST", "/partner/v1/requests", None);
    change_and_emit(&context, change, |state| {
        let request_id = state.new_id("req");
        let at = now_rfc3339(true);
        let request = json!({
            "request_id": request_id, "type": kind, "partner_company_id": company_id,
            "login_id": login_id, "asset": body["asset"].clone(), "market": body["market"].clone(),
            "language": body["language"].clone(), "description": body["description"].clone(),
            "status": "open", "answers": [], "created_at": at, "updated_at": at,
        });
        state.requests.insert(request_id.clone(), request.clone());
        state.record_event("request.created", request.clone());
        Ok((StatusCode::CREATED, request, Some(request_id)))
    })
}

/// The acting company's requests, oldest first.
async fn own_requests(State(context): Context, headers: HeaderMap) -> Response {
    let (_, company_id) = match partner(&context, &headers) {
        Ok(partner) => partner,
        Err(response) => return response,
    };
    respond(context.store.read(|state| {
        let items: Vec<Value> = state
            .requests
            .values()
            .filter(|request| request["partner_company_id"] == company_id.as_str())
            .cloned()
            .collect();
        Ok(json!({"items": items}))
    }))
}

/// One of the acting company's requests; another company's is 404 to it.
async fn own_request(
    State(context): Context,
    headers: HeaderMap,
    Path(request_id): Path<String>,
) -> Response {
    let (_, company_id) = match partner(&context, &headers) {
        Ok(partner) => partner,
        Err(response) => return response,
    };
    respond(
        context
            .store
            .read(|state| owned(&state.requests, "request", &request_id, &company_id)),
    )
}

/// The object `id` of `objects` (requests, issues) when `company_id` raised it; 404
/// otherwise, so a company learns nothing of another's.
pub(super) fn owned(
    objects: &BTreeMap<String, Value>,
    kind: &str,
    id: &str,
    company_id: &str,
) -> Result<Value, (StatusCode, Value)> {
    objects
        .get(id)
        .filter(|object| object["partner_company_id"] == company_id)
        .cloned()
        .ok_or_else(|| not_found(error_value, kind, id))
}

async fn read_post(
    State(context): Context,
    headers: HeaderMap,
    Path(post_id): Path<String>,
) -> Response {
    let (_, company_id) = match partner(&context, &headers) {
        Ok(partner) => partner,
        Err(response) => return response,
    };
    respond(context.store.read(|state| {
        let post = visible_post(state, &post_id, None, &company_id)?;
        let documents: Vec<Value> = post["documents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|document| document["withdrawn"] != true)
            .cloned()
            .collect();
        Ok(json!({"post_id": post_id, "title": post["title"], "body": post["body"],
                  "requires_ack": post["requires_ack"], "documents": documents, "created_at": post["created_at"]}))
    }))
}

async fn comment(
    State(context): Context,
    headers: HeaderMap,
    Path(post_id): Path<String>,
    body: Bytes,
) -> Response {
    let (login_id, company_id) = match partner(&context, &headers) {
        Ok(partner) => partner,
        Err(response) => return response,
    };
    let body = match json_object(&body, render_error) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(text) = body["body"].as_str().filter(|text| !text.trim().is_empty()) else {
        return render_error(StatusCode::UNPROCESSABLE_ENTITY, "body is required");
    };
    let path = format!("/partner/v1/posts/{post_id}/comments");
    let change = Change::new("post.commented", "POST", path, None);
    change_and_emit(&context, change, |state| {
        visible_post(state, &post_id, None, &company_id)?;
        let comment_id = state.new_id("cmt");
        let comment = json!({"comment_id": comment_id, "post_id": post_id, "company_id": company_id,
                             "login_id": login_id, "body": text, "created_at": now_rfc3339(true)});
        if let Some(comments) = state
            .posts
            .get_mut(&post_id)
            .and_then(|post| post["comments"].as_array_mut())
        {
            comments.push(comment.clone());
        }
        state.record_event("post.commented", comment.clone());
        Ok((StatusCode::CREATED, comment, Some(comment_id)))
    })
}

async fn acknowledge(
    State(context): Context,
    headers: HeaderMap,
    Path(post_id): Path<String>,
    body: Bytes,
) -> Response {
    let (login_id, company_id) = match partner(&context, &headers) {
        Ok(partner) => partner,
        Err(response) => return response,
    };
    let body = match json_object(&body, render_error) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let ack_type = body["ack_type"].as_str().unwrap_or("received").to_owned();
    if !["received", "accepted", "rejected"].contains(&ack_type.as_str()) {
        return render_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ack_type must be received, accepted or rejected",
        );
    }
    let path = format!("/partner/v1/posts/{post_id}/acknowledgements");
    let change = Change::new("post.acknowledged", "POST", path, None);
    change_and_emit(&context, change, |state| {
        visible_post(state, &post_id, None, &company_id)?;
        let acknowledgement_id = state.new_id("ack");
        let acknowledgement = json!({"acknowledgement_id": acknowledgement_id, "post_id": post_id,
            "company_id": company_id, "login_id": login_id, "ack_type": ack_type,
            "comment": body["comment"].clone(), "created_at": now_rfc3339(true)});
        state
            .acknowledgements
            .entry(post_id.clone())
            .or_default()
            .push(acknowledgement.clone());
        state.record_event("post.acknowledged", acknowledgement.clone());
        Ok((
            StatusCode::CREATED,
            acknowledgement,
            Some(acknowledgement_id),
        ))
    })
}

async fn download(
    State(context): Context,
    headers: HeaderMap,
    Path((post_id, document_id)): Path<(String, String)>,
) -> Response {
    let (login_id, company_id) = match partner(&context, &headers) {
        Ok(partner) => partner,
        Err(response) => return response,
    };
    let path = format!("/partner/v1/posts/{post_id}/documents/{document_id}");
    let change = Change::new("document.downloaded", "GET", path, None);
    let mut content: Option<(Vec<u8>, String)> = None;
    let answer = apply_and_emit(&context, change, |state| {
        let post = visible_post(state, &post_id, Some(&document_id), &company_id)?;
        let document = post["documents"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|document| document["document_id"] == document_id.as_str())
            .cloned()
            .unwrap_or_default();
        let bytes = bytes_of(state, &document_id)
            .ok_or_else(|| not_found(error_value, "document", &document_id))?;
        let download_id = state.new_id("dl");
        let download = json!({"download_id": download_id, "post_id": post_id, "document_id": document_id,
            "sha256": document["sha256"], "file_name": document["file_name"], "company_id": company_id,
            "login_id": login_id, "downloaded_at": now_rfc3339(true)});
        if let Some(downloads) = state
            .posts
            .get_mut(&post_id)
            .and_then(|post| post["downloads"].as_array_mut())
        {
            downloads.push(download.clone());
        }
        state.record_event("document.downloaded", download.clone());
        let content_type = document["content_type"]
            .as_str()
            .unwrap_or("application/octet-stream")
            .to_owned();
        content = Some((bytes, content_type));
        Ok((StatusCode::OK, download, Some(download_id)))
    });
    match content {
        Some((bytes, content_type)) if answer.status == 200 => octets(bytes, &content_type),
        _ => reply(answer),
    }
}

async fn join(
    State(context): Context,
    headers: HeaderMap,
    Path(community_id): Path<String>,
) -> Response {
    let (login_id, company_id) = match partner(&context, &headers) {
        Ok(partner) => partner,
        Err(response) => return response,
    };
    let path = format!("/partner/v1/communities/{community_id}/join");
    let change = Change::new("partner.joined", "POST", path, None);
    change_and_emit(&context, change, |state| {
        let community = state
            .communities
            .get_mut(&community_id)
            .ok_or_else(|| not_found(error_value, "community", &community_id))?;
        let mut members: Vec<Value> = community["member_company_ids"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if members.iter().any(|member| member == company_id.as_str()) {
            return Err(error_value(
                StatusCode::CONFLICT,
                &format!("company {company_id} is a member of {community_id} already"),
            ));
        }
        members.push(json!(company_id));
        community["member_company_ids"] = json!(members);
        let joined = json!({"community_id": community_id, "company_id": company_id, "login_id": login_id,
                            "joined_at": now_rfc3339(true)});
        state.record_event("partner.joined", joined.clone());
        Ok((StatusCode::CREATED, joined, Some(company_id.clone())))
    })
    .into_response()
}
