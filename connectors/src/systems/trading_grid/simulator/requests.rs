//! Partner requests and group membership \[D\].
//!
//! A request is what a partner asks of us (`type`: `media`, `access`, `localisation`,
//! `enhancement`; an asset, a market, a language), opened by the partner (`partner`
//! room) and answered (`POST /hub/v1/requests/{id}/answers {message}`, status
//! `answered`) and closed (`POST /hub/v1/requests/{id}/closure {resolution}`, status
//! `closed`) by us; each change appends `request.updated`. Groups segment a community's
//! library: `POST /hub/v1/communities/{cid}/groups {name}`,
//! `POST /hub/v1/groups/{gid}/members {company_ids}` and
//! `POST /hub/v1/groups/{gid}/members/removal {company_ids}`.

use std::collections::{BTreeSet, HashMap};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{Context, SANDBOX_COMPANY_ID, Shared, change_and_emit, error_value, render_error};
use crate::simulator::http::{json_object, not_found, now_rfc3339, respond};
use crate::simulator::{Change, idempotency_key, reply};

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/hub/v1/requests", get(list_requests))
        .route("/hub/v1/requests/{request_id}", get(get_request))
        .route("/hub/v1/requests/{request_id}/answers", post(answer))
        .route("/hub/v1/requests/{request_id}/closure", post(close))
        .route(
            "/hub/v1/communities/{community_id}/groups",
            post(create_group).get(super::hub::groups),
        )
        .route(
            "/hub/v1/groups/{group_id}/members",
            post(add_members).get(super::hub::members),
        )
        .route(
            "/hub/v1/groups/{group_id}/members/removal",
            post(remove_members),
        )
}

async fn list_requests(
    State(context): Context,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let requests: Vec<Value> = context.store.read(|state| {
        state
            .requests
            .values()
            .filter(|request| {
                query
                    .get("status")
                    .is_none_or(|status| request["status"] == status.as_str())
                    && query
                        .get("type")
                        .is_none_or(|kind| request["type"] == kind.as_str())
            })
            .cloned()
            .collect()
    });
    axum::Json(json!({"requests": requests})).into_response()
}

async fn get_request(State(context): Context, Path(request_id): Path<String>) -> Response {
    respond(context.store.read(|state| {
        state
            .requests
            .get(&request_id)
            .cloned()
            .ok_or_else(|| not_found(error_value, "request", &request_id))
    }))
}

/// Applies `update` to an open or answered request and records `request.updated`.
fn update_request(
    context: &Shared,
    headers: &HeaderMap,
    request_id: &str,
    what: &str,
    update: impl FnOnce(&mut Value, &str),
) -> Response {
    let path = format!("/hub/v1/requests/{request_id}/{what}");
    let change = Change::new("request.updated", "POST", path, idempotency_key(headers));
    change_and_emit(context, change, |state| {
        let answer_id = state.new_id("ans");
        let request = state
            .requests
            .get_mut(request_id)
            .ok_or_else(|| not_found(error_value, "request", request_id))?;
        if request["status"] == "closed" {
            return Err(error_value(
                StatusCode::CONFLICT,
                &format!("request {request_id} is closed"),
            ));
        }
        update(request, &answer_id);
        request["updated_at"] = json!(now_rfc3339(true));
        let request = request.clone();
        state.record_event("request.updated", request.clone());
        Ok((StatusCode::OK, request, Some(request_id.to_owned())))
    })
}

fn text_field(body: &Bytes, field: &str) -> Result<String, Response> {
    let body = json_object(body, render_error)?;
    match body[field].as_str() {
        Some(text) if !text.trim().is_empty() => Ok(text.to_owned()),
        _ => Err(render_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("{field} is required"),
        )),
    }
}

async fn answer(
    State(context): Context,
    headers: HeaderMap,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Response {
    let message = match text_field(&body, "message") {
        Ok(message) => message,
        Err(response) => return response,
    };
    update_request(&context, &headers, &request_id, "answers", |request, id| {
        let answer = json!({"answer_id": id, "message": message, "author_company_id": SANDBOX_COMPANY_ID,
                            "created_at": now_rfc3339(true)});
        match request["answers"].as_array_mut() {
            Some(answers) => answers.push(answer),
            None => request["answers"] = json!([answer]),
        }
        request["status"] = json!("answered");
    })
}

async fn close(
    State(context): Context,
    headers: HeaderMap,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Response {
    let resolution = match text_field(&body, "resolution") {
        Ok(resolution) => resolution,
        Err(response) => return response,
    };
    update_request(&context, &headers, &request_id, "closure", |request, _| {
        request["status"] = json!("closed");
        request["resolution"] = json!(resolution);
    })
}

async fn create_group(
    State(context): Context,
    headers: HeaderMap,
    Path(community_id): Path<String>,
    body: Bytes,
) -> Response {
    let name = match text_field(&body, "name") {
        Ok(name) => name,
        Err(response) => return response,
    };
    let path = format!("/hub/v1/communities/{community_id}/groups");
    let change = Change::new("group.created", "POST", path, idempotency_key(&headers));
    reply(context.store.change(change, |state| {
        if !state.communities.contains_key(&community_id) {
            return Err(not_found(error_value, "community", &community_id));
        }
        if state.groups.values().any(|group| {
            group["community_id"] == community_id.as_str() && group["name"] == name.as_str()
        }) {
            return Err(error_value(
                StatusCode::CONFLICT,
                &format!("community {community_id} has a group named {name:?} already"),
            ));
        }
        let group_id = state.new_id("grp");
        let group = json!({"group_id": group_id, "community_id": community_id, "name": name,
                           "member_company_ids": []});
        state.groups.insert(group_id.clone(), group.clone());
        Ok((StatusCode::CREATED, group, Some(group_id)))
    }))
}

/// Adds (`add`) or removes the companies of the body's `company_ids` to or from a group.
fn change_members(
    context: &Shared,
    headers: &HeaderMap,
    group_id: &str,
    body: &Bytes,
    add: bool,
) -> Response {
    let body = match json_object(body, render_error) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let company_ids: Vec<String> = body["company_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    if company_ids.is_empty() {
        return render_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "company_ids must name at least one company",
        );
    }
    let (action, path) = if add {
        (
            "group.members_added",
            format!("/hub/v1/groups/{group_id}/members"),
        )
    } else {
        (
            "group.members_removed",
            format!("/hub/v1/groups/{group_id}/members/removal"),
        )
    };
    let change = Change::new(action, "POST", path, idempotency_key(headers));
    reply(context.store.change(change, |state| {
        for company_id in &company_ids {
            if !state.companies.contains_key(company_id) {
                return Err(not_found(error_value, "company", company_id));
            }
        }
        let group = state
            .groups
            .get_mut(group_id)
            .ok_or_else(|| not_found(error_value, "group", group_id))?;
        let mut members: BTreeSet<String> = group["member_company_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        for company_id in company_ids {
            if add {
                members.insert(company_id);
            } else if !members.remove(&company_id) {
                return Err(not_found(
                    error_value,
                    "member",
                    &format!("{company_id} of group {group_id}"),
                ));
            }
        }
        group["member_company_ids"] = json!(members);
        Ok((StatusCode::OK, group.clone(), Some(group_id.to_owned())))
    }))
}

async fn add_members(
    State(context): Context,
    headers: HeaderMap,
    Path(group_id): Path<String>,
    body: Bytes,
) -> Response {
    change_members(&context, &headers, &group_id, &body, true)
}

async fn remove_members(
    State(context): Context,
    headers: HeaderMap,
    Path(group_id): Path<String>,
    body: Bytes,
) -> Response {
    change_members(&context, &headers, &group_id, &body, false)
}
