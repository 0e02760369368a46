//! The hub's directory and messaging \[D\]: communities, groups and their members,
//! notifications, and acknowledgements of posts.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{Context, TradingGridState, change_and_emit, error_value, render_error};
use crate::simulator::http::{json_object, not_found, now_rfc3339, respond};
use crate::simulator::{Change, SimContext, idempotency_key, reply};

pub(super) fn routes() -> Router<std::sync::Arc<SimContext<TradingGridState>>> {
    Router::new()
        .route("/hub/v1/communities", get(communities))
        .route("/hub/v1/notifications", post(notify))
        .route(
            "/hub/v1/posts/{post_id}/acknowledgements",
            post(acknowledge).get(acknowledgements),
        )
}

async fn communities(State(context): Context) -> Response {
    let list: Vec<Value> = context
        .store
        .read(|state| state.communities.values().cloned().collect());
    axum::Json(json!({"communities": list})).into_response()
}

pub(super) async fn groups(State(context): Context, Path(community_id): Path<String>) -> Response {
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

pub(super) async fn members(State(context): Context, Path(group_id): Path<String>) -> Response {
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
    change_and_emit(&context, change, |state| {
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
    })
}

async fn acknowledgements(State(context): Context, Path(post_id): Path<String>) -> Response {
    respond(context.store.read(|state| {
        if !state.posts.contains_key(&post_id) {
            return Err(not_found(error_value, "post", &post_id));
        }
        Ok(json!({"acknowledgements": state.acknowledgements.get(&post_id).cloned().unwrap_or_default()}))
    }))
}
