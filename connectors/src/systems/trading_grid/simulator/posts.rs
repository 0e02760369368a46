//! Posts and the documents they carry \[D\]: `POST /hub/v1/documents` takes a document's
//! raw bytes (its name in `?file_name=`, its type in `Content-Type`) and answers its id
//! and SHA-256; `POST /hub/v1/communities/{cid}/posts` attaches documents by id and
//! answers the partner companies the post reached (the partners named, the members of
//! the groups named, or else every member of the community); `GET /hub/v1/posts/{id}`
//! reads a post with its documents' digests, recipients, withdrawals, comments and
//! downloads; `POST /hub/v1/posts/{id}/withdrawal` and
//! `POST /hub/v1/posts/{id}/documents/{did}/withdrawal` take access away (a partner's
//! download then answers 410). A post never holds a link: documents are fetched through
//! the partner routes, by id.

use std::collections::BTreeSet;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Context, Shared, TradingGridState, change_and_emit, error_value, render_error};
use crate::simulator::http::{json_object, not_found, now_rfc3339, respond};
use crate::simulator::{Change, idempotency_key, reply};

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/hub/v1/documents", post(upload_document))
        .route(
            "/hub/v1/communities/{community_id}/posts",
            post(create_post),
        )
        .route("/hub/v1/posts/{post_id}", get(get_post))
        .route("/hub/v1/posts/{post_id}/withdrawal", post(withdraw_post))
        .route(
            "/hub/v1/posts/{post_id}/documents/{document_id}/withdrawal",
            post(withdraw_document),
        )
}

fn strings(value: &Value) -> impl Iterator<Item = &str> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// The partner companies a post for `community_id` naming `group_ids` and `partners`
/// reaches, sorted; an unknown group or company is a 404.
pub(super) fn recipients(
    state: &TradingGridState,
    community_id: &str,
    group_ids: &Value,
    partners: &Value,
) -> Result<Vec<String>, (StatusCode, Value)> {
    let community = state
        .communities
        .get(community_id)
        .ok_or_else(|| not_found(error_value, "community", community_id))?;
    let mut reached = BTreeSet::new();
    for company_id in strings(partners) {
        if !state.companies.contains_key(company_id) {
            return Err(not_found(error_value, "company", company_id));
        }
        reached.insert(company_id.to_owned());
    }
    let mut groups: Vec<&Value> = Vec::new();
    for group_id in strings(group_ids) {
        let group = state
            .groups
            .get(group_id)
            .filter(|group| group["community_id"] == community_id)
            .ok_or_else(|| not_found(error_value, "group", group_id))?;
        groups.push(group);
    }
    if reached.is_empty() && groups.is_empty() {
        reached.extend(strings(&community["member_company_ids"]).map(str::to_owned));
        groups.extend(
            state
                .groups
                .values()
                .filter(|group| group["community_id"] == community_id),
        );
    }
    for group in groups {
        reached.extend(strings(&group["member_company_ids"]).map(str::to_owned));
    }
    if let Some(owner) = community["owner_company_id"].as_str() {
        reached.remove(owner);
    }
    Ok(reached.into_iter().collect())
}

/// `POST /_sim/trading_grid/corrupt_uploads {count}`: the next `count` uploads report a
/// digest that is not their bytes', as a hub that mangled them would.
pub(super) async fn corrupt_uploads(
    State(context): Context,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let count = body["count"].as_u64().unwrap_or(1);
    let change = Change::new("sim.corrupt_uploads", "POST", "/_sim", None);
    reply(context.store.change(change, |state| {
        state.corrupt_uploads = u32::try_from(count).unwrap_or(u32::MAX);
        Ok((StatusCode::NO_CONTENT, Value::Null, None))
    }))
}

async fn upload_document(
    State(context): Context,
    headers: HeaderMap,
    Query(query): Query<std::collections::HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let Some(file_name) = query.get("file_name").filter(|name| !name.is_empty()) else {
        return render_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "file_name is required (query parameter)",
        );
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let change = Change::new(
        "document.uploaded",
        "POST",
        "/hub/v1/documents",
        idempotency_key(&headers),
    );
    reply(context.store.change(change, |state| {
        let document_id = state.new_id("doc");
        let mut sha256 = hex::encode(Sha256::digest(&body));
        if state.corrupt_uploads > 0 {
            state.corrupt_uploads -= 1;
            sha256 = hex::encode(Sha256::digest([&body[..], b"mangled"].concat()));
        }
        let document = json!({"document_id": document_id, "file_name": file_name, "content_type": content_type,
                              "size": body.len(), "sha256": sha256, "created_at": now_rfc3339(true)});
        let mut stored = document.clone();
        stored["content_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(&body));
        state.documents.insert(document_id.clone(), stored);
        Ok((StatusCode::CREATED, document, Some(document_id)))
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
    change_and_emit(&context, change, |state| {
        if body["title"]
            .as_str()
            .is_none_or(|title| title.trim().is_empty())
        {
            return Err(error_value(
                StatusCode::UNPROCESSABLE_ENTITY,
                "title is required",
            ));
        }
        let recipients = recipients(
            state,
            &community_id,
            &body["group_ids"],
            &body["partner_company_ids"],
        )?;
        if recipients.is_empty() {
            return Err(error_value(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the post reaches no partner company",
            ));
        }
        let mut documents = Vec::new();
        for document_id in strings(&body["document_ids"]) {
            let mut document = state
                .documents
                .get(document_id)
                .cloned()
                .ok_or_else(|| not_found(error_value, "document", document_id))?;
            if let Some(fields) = document.as_object_mut() {
                fields.remove("content_base64");
                fields.insert("withdrawn".to_owned(), json!(false));
            }
            documents.push(document);
        }
        let post_id = state.new_id("post");
        let mut post = body.clone();
        if let Some(fields) = post.as_object_mut() {
            fields.remove("document_ids");
        }
        post["post_id"] = json!(post_id);
        post["community_id"] = json!(community_id);
        post["status"] = json!("published");
        post["created_at"] = json!(now_rfc3339(true));
        post["recipients"] = json!(recipients);
        post["documents"] = json!(documents);
        post["withdrawn_partners"] = json!([]);
        post["comments"] = json!([]);
        post["downloads"] = json!([]);
        state.posts.insert(post_id.clone(), post);
        Ok((
            StatusCode::CREATED,
            json!({"post_id": post_id, "status": "published", "recipients": recipients, "documents": documents}),
            Some(post_id.clone()),
        ))
    })
}

async fn get_post(State(context): Context, Path(post_id): Path<String>) -> Response {
    respond(context.store.read(|state| {
        state
            .posts
            .get(&post_id)
            .cloned()
            .ok_or_else(|| not_found(error_value, "post", &post_id))
    }))
}

async fn withdraw_post(
    State(context): Context,
    headers: HeaderMap,
    Path(post_id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match json_object(&body, render_error) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let path = format!("/hub/v1/posts/{post_id}/withdrawal");
    let change = Change::new("post.withdrawn", "POST", path, idempotency_key(&headers));
    change_and_emit(&context, change, |state| {
        let post = state
            .posts
            .get_mut(&post_id)
            .ok_or_else(|| not_found(error_value, "post", &post_id))?;
        if post["status"] == "withdrawn" {
            return Err(error_value(
                StatusCode::CONFLICT,
                &format!("post {post_id} is withdrawn already"),
            ));
        }
        let partners: Vec<String> = strings(&body["partner_company_ids"])
            .map(str::to_owned)
            .collect();
        let recipients: Vec<String> = strings(&post["recipients"]).map(str::to_owned).collect();
        if let Some(stranger) = partners.iter().find(|id| !recipients.contains(id)) {
            return Err(not_found(
                error_value,
                "recipient",
                &format!("{stranger} of post {post_id}"),
            ));
        }
        let mut withdrawn: BTreeSet<String> = strings(&post["withdrawn_partners"])
            .map(str::to_owned)
            .collect();
        withdrawn.extend(partners.iter().cloned());
        if partners.is_empty() || recipients.iter().all(|id| withdrawn.contains(id)) {
            post["status"] = json!("withdrawn");
        }
        post["withdrawn_partners"] = json!(withdrawn);
        let at = now_rfc3339(true);
        let event = json!({"post_id": post_id, "document_id": null, "partner_company_ids": partners,
                           "reason": body["reason"].clone(), "withdrawn_at": at});
        let answer = json!({"post_id": post_id, "status": post["status"].clone(),
                            "withdrawn_partners": post["withdrawn_partners"].clone(), "withdrawn_at": at});
        state.record_event("post.withdrawn", event);
        Ok((StatusCode::OK, answer, Some(post_id.clone())))
    })
}

async fn withdraw_document(
    State(context): Context,
    headers: HeaderMap,
    Path((post_id, document_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body = match json_object(&body, render_error) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let path = format!("/hub/v1/posts/{post_id}/documents/{document_id}/withdrawal");
    let change = Change::new(
        "document.withdrawn",
        "POST",
        path,
        idempotency_key(&headers),
    );
    change_and_emit(&context, change, |state| {
        let post = state
            .posts
            .get_mut(&post_id)
            .ok_or_else(|| not_found(error_value, "post", &post_id))?;
        let document = post["documents"]
            .as_array_mut()
            .into_iter()
            .flatten()
            .find(|document| document["document_id"] == document_id.as_str())
            .ok_or_else(|| {
                not_found(
                    error_value,
                    "document",
                    &format!("{document_id} of post {post_id}"),
                )
            })?;
        if document["withdrawn"] == true {
            return Err(error_value(
                StatusCode::CONFLICT,
                &format!("document {document_id} of post {post_id} is withdrawn already"),
            ));
        }
        document["withdrawn"] = json!(true);
        let at = now_rfc3339(true);
        let event = json!({"post_id": post_id, "document_id": document_id, "partner_company_ids": [],
                           "reason": body["reason"].clone(), "withdrawn_at": at});
        state.record_event("post.withdrawn", event);
        Ok((
            StatusCode::OK,
            json!({"post_id": post_id, "document_id": document_id, "status": "withdrawn", "withdrawn_at": at}),
            Some(document_id.clone()),
        ))
    })
}

/// Whether `company_id` may still fetch `document_id` of `post`: `Err` is 404 when the
/// post never reached it, 410 when access was withdrawn.
pub(super) fn access(
    post: &Value,
    document_id: Option<&str>,
    company_id: &str,
) -> Result<(), (StatusCode, Value)> {
    let post_id = post["post_id"].as_str().unwrap_or_default();
    if !strings(&post["recipients"]).any(|id| id == company_id) {
        return Err(not_found(error_value, "post", post_id));
    }
    let gone = |what: String| error_value(StatusCode::GONE, &format!("{what} was withdrawn"));
    if post["status"] == "withdrawn"
        || strings(&post["withdrawn_partners"]).any(|id| id == company_id)
    {
        return Err(gone(format!("post {post_id}")));
    }
    if let Some(document_id) = document_id {
        let document = post["documents"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|document| document["document_id"] == document_id)
            .ok_or_else(|| not_found(error_value, "document", document_id))?;
        if document["withdrawn"] == true {
            return Err(gone(format!("document {document_id}")));
        }
    }
    Ok(())
}

/// The bytes of a stored document.
pub(super) fn bytes_of(state: &TradingGridState, document_id: &str) -> Option<Vec<u8>> {
    let encoded = state.documents.get(document_id)?["content_base64"].as_str()?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
}

/// Used by the partner routes' responses.
pub(super) fn octets(bytes: Vec<u8>, content_type: &str) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type.to_owned())],
        bytes,
    )
        .into_response()
}
