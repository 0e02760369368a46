//! The community library's catalogue \[D\]: one entry per shared asset with the metadata
//! partners see beside it.
//!
//! - `PUT /hub/v1/communities/{cid}/library/{entry_id}` `{source: {system, asset_id},
//!   title, status, language, market, region, expires_at, partner_company_ids}` creates or
//!   replaces an entry (`library.entry_put`); its `revision` moves, and the change is
//!   recorded, only when a field differs; the answer says `changed`. Unknown companies
//!   are 404.
//! - `GET /hub/v1/communities/{cid}/library?entry_ids=a,b` the entries named (those that
//!   exist), or `?cursor=&limit=` one page in entry id order with `next_cursor`.
//! - `GET /partner/v1/library` (partner route, `X-Partner-Login`): the entries assigned to
//!   the partner's company, as the partner sees them.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::{Context, PARTNER_LOGIN_HEADER, Shared, TradingGridState, error_value, render_error};
use crate::simulator::http::{json_object, not_found, now_rfc3339, respond};
use crate::simulator::{Change, idempotency_key, reply};

/// The fields of an entry that a put replaces (and compares).
const FIELDS: [&str; 8] = [
    "source",
    "title",
    "status",
    "language",
    "market",
    "region",
    "expires_at",
    "partner_company_ids",
];

const DEFAULT_LIMIT: usize = 100;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/hub/v1/communities/{community_id}/library",
            get(list_entries),
        )
        .route(
            "/hub/v1/communities/{community_id}/library/{entry_id}",
            axum::routing::put(put_entry),
        )
}

/// The partner's view, a public route like the other partner routes.
pub(super) fn partner_routes() -> Router<Shared> {
    Router::new().route("/partner/v1/library", get(partner_entries))
}

/// The body's entry fields, checked: `source` names a system and an asset, `status` is
/// text, the others text or null, `partner_company_ids` a list of text.
fn entry_fields(body: &Value) -> Result<serde_json::Map<String, Value>, String> {
    let mut fields = serde_json::Map::new();
    for field in FIELDS {
        let value = body.get(field).cloned().unwrap_or(Value::Null);
        let valid = match field {
            "source" => ["system", "asset_id"]
                .iter()
                .all(|key| value[*key].as_str().is_some_and(|text| !text.is_empty())),
            "status" => value.as_str().is_some_and(|text| !text.is_empty()),
            "partner_company_ids" => value
                .as_array()
                .is_some_and(|ids| ids.iter().all(Value::is_string)),
            _ => value.is_string() || value.is_null(),
        };
        if !valid {
            return Err(format!("{field} is missing or not valid"));
        }
        fields.insert(field.to_owned(), value);
    }
    Ok(fields)
}

async fn put_entry(
    State(context): Context,
    headers: HeaderMap,
    Path((community_id, entry_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body = match json_object(&body, render_error) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let fields = match entry_fields(&body) {
        Ok(fields) => fields,
        Err(message) => return render_error(StatusCode::UNPROCESSABLE_ENTITY, &message),
    };
    // An entry whose fields are already these is answered as it is, and nothing is recorded.
    let unchanged = context.store.read(|state| {
        state
            .library
            .get(&entry_id)
            .filter(|entry| entry["community_id"] == community_id.as_str())
            .filter(|entry| FIELDS.iter().all(|field| entry[*field] == fields[*field]))
            .cloned()
    });
    if let Some(mut entry) = unchanged {
        entry["changed"] = json!(false);
        return axum::Json(entry).into_response();
    }
    let path = format!("/hub/v1/communities/{community_id}/library/{entry_id}");
    let change = Change::new("library.entry_put", "PUT", path, idempotency_key(&headers));
    reply(context.store.change(change, |state| {
        if !state.communities.contains_key(&community_id) {
            return Err(not_found(error_value, "community", &community_id));
        }
        for company_id in fields["partner_company_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !state.companies.contains_key(company_id) {
                return Err(not_found(error_value, "company", company_id));
            }
        }
        let revision = state
            .library
            .get(&entry_id)
            .and_then(|entry| entry["revision"].as_u64())
            .unwrap_or(0)
            + 1;
        let mut entry = Value::Object(fields);
        entry["entry_id"] = json!(entry_id);
        entry["community_id"] = json!(community_id);
        entry["revision"] = json!(revision);
        entry["updated_at"] = json!(now_rfc3339(true));
        state.library.insert(entry_id.clone(), entry.clone());
        entry["changed"] = json!(true);
        Ok((StatusCode::OK, entry, Some(entry_id.clone())))
    }))
}

fn page(
    entries: Vec<Value>,
    query: &HashMap<String, String>,
) -> Result<Value, (StatusCode, Value)> {
    let start = match query.get("cursor") {
        Some(cursor) => cursor.parse::<usize>().map_err(|_| {
            error_value(
                StatusCode::BAD_REQUEST,
                &format!("cursor {cursor:?} is not one of ours"),
            )
        })?,
        None => 0,
    };
    let limit = query
        .get("limit")
        .and_then(|limit| limit.parse::<usize>().ok())
        .unwrap_or(DEFAULT_LIMIT)
        .max(1);
    let end = (start + limit).min(entries.len());
    let next = (end < entries.len()).then(|| end.to_string());
    let slice = entries.get(start..end).unwrap_or_default().to_vec();
    Ok(json!({"entries": slice, "next_cursor": next}))
}

fn community_entries(state: &TradingGridState, community_id: &str) -> Vec<Value> {
    state
        .library
        .values()
        .filter(|entry| entry["community_id"] == community_id)
        .cloned()
        .collect()
}

async fn list_entries(
    State(context): Context,
    Path(community_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    respond(context.store.read(|state| {
        if !state.communities.contains_key(&community_id) {
            return Err(not_found(error_value, "community", &community_id));
        }
        let entries = community_entries(state, &community_id);
        match query.get("entry_ids") {
            Some(ids) => {
                let wanted: Vec<&str> = ids.split(',').filter(|id| !id.is_empty()).collect();
                let named: Vec<Value> = entries
                    .into_iter()
                    .filter(|entry| wanted.iter().any(|id| entry["entry_id"] == *id))
                    .collect();
                Ok(json!({"entries": named, "next_cursor": null}))
            }
            None => page(entries, &query),
        }
    }))
}

async fn partner_entries(State(context): Context, headers: HeaderMap) -> Response {
    let Some(login) = headers
        .get(PARTNER_LOGIN_HEADER)
        .and_then(|value| value.to_str().ok())
    else {
        return render_error(
            StatusCode::UNAUTHORIZED,
            "partner routes need X-Partner-Login: <loginId>",
        );
    };
    respond(context.store.read(|state| {
        let company_id = state.logins.get(login).ok_or_else(|| {
            error_value(
                StatusCode::FORBIDDEN,
                &format!("login {login} is no partner user of the hub"),
            )
        })?;
        let entries: Vec<Value> = state
            .library
            .values()
            .filter(|entry| {
                entry["partner_company_ids"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(|id| id == company_id.as_str()))
            })
            .cloned()
            .collect();
        Ok(json!({"company_id": company_id, "entries": entries}))
    }))
}
