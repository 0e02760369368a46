//! The VIP simulator: our generic distribution API \[D\] (`vip.md`): `POST /v1/oauth2/token`
//! (client credentials, form), recipients and groups, packages (create with
//! `Idempotency-Key`, update, publish, withdraw), deliveries and acknowledgements, cursor
//! paging (`limit`, `cursor` → `{data, next_cursor}`), errors as
//! `application/problem+json`.
//!
//! Content and versions are in [`content`] (file uploads, new versions that supersede
//! earlier deliveries, revocation of one delivery, the recipient's download); webhooks and
//! the signed events every change sends are in [`webhooks`].
//!
//! Publishing delivers the package to each recipient of its groups and ids; a recipient
//! whose account is `suspended` gets a `failed` delivery. A package is published once:
//! publishing it again is refused (409), new content goes out as a new version.

// Handlers return an early `Response` through `Result` (axum's idiom for a rejection);
// boxing it would buy nothing on a loopback test server.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::simulator::http::{now_rfc3339, serde_urlencoded_pairs};
pub mod content;
pub mod webhooks;

use crate::simulator::{
    Change, Routes, RunningSimulator, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SimContext,
    SimError, SimOptions, SimState, idempotency_key, reply,
};

/// The simulator's name.
pub const NAME: &str = "vip";

type Context = State<Arc<SimContext<VipState>>>;

/// Everything the VIP simulator holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VipState {
    /// Recipients by id.
    pub recipients: BTreeMap<String, Value>,
    /// Recipient groups by id.
    pub groups: BTreeMap<String, Value>,
    /// Packages by id.
    pub packages: BTreeMap<String, Value>,
    /// Deliveries by id.
    pub deliveries: BTreeMap<String, Value>,
    /// The last number used in generated ids.
    pub next_id: u64,
    /// Webhook subscriptions by id, with their secrets (never returned by the API).
    #[serde(default)]
    pub webhooks: BTreeMap<String, Value>,
    /// Uploaded file bytes by SHA-256, base64.
    #[serde(default)]
    pub blobs: BTreeMap<String, String>,
    /// Notifications sent to recipients, by id \[D\].
    #[serde(default)]
    pub notifications: BTreeMap<String, Value>,
}

impl VipState {
    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{:05}", self.next_id)
    }
}

impl SimState for VipState {
    /// The seed data of `../seed.json`, beside the connector.
    fn seed() -> Self {
        serde_json::from_str(include_str!("../seed.json")).expect("seed.json holds valid state")
    }
}

/// Starts the VIP simulator.
pub async fn start(options: SimOptions) -> Result<RunningSimulator, SimError> {
    crate::simulator::serve(NAME, options, routes(), render_problem).await
}

fn routes() -> Routes<VipState> {
    let public = Router::new().route("/v1/oauth2/token", post(token));
    let protected = Router::new()
        .route("/v1/recipients", get(list_recipients))
        .route("/v1/recipient-groups", get(list_groups))
        .route("/v1/packages", post(create_package))
        .route("/v1/packages/{id}", get(get_package).patch(update_package))
        .route("/v1/packages/{id}/publish", post(publish_package))
        .route("/v1/packages/{id}/withdraw", post(withdraw_package))
        .route("/v1/deliveries", get(list_deliveries))
        .route("/v1/deliveries/{id}/acknowledgements", post(acknowledge))
        .route("/v1/notifications", post(notify))
        .merge(content::routes())
        .merge(webhooks::routes());
    Routes {
        public,
        protected,
        authorize,
    }
}

/// Writes an error as `application/problem+json`.
pub fn render_problem(status: StatusCode, detail: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let mut response = (
        status,
        axum::Json(json!({"type": "about:blank", "title": title, "status": status.as_u16(), "detail": detail})),
    )
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

fn problem_value(status: StatusCode, detail: &str) -> (StatusCode, Value) {
    let title = status.canonical_reason().unwrap_or("Error");
    (
        status,
        json!({"type": "about:blank", "title": title, "status": status.as_u16(), "detail": detail}),
    )
}

fn authorize(context: &SimContext<VipState>, headers: &HeaderMap) -> Result<(), Response> {
    if context.tokens.check_bearer(headers) {
        Ok(())
    } else {
        Err(render_problem(
            StatusCode::UNAUTHORIZED,
            "access token missing, invalid or expired",
        ))
    }
}

fn json_body(body: &Bytes) -> Result<Value, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) if value.is_object() => Ok(value),
        Ok(_) => Err(render_problem(
            StatusCode::BAD_REQUEST,
            "request body must be a JSON object",
        )),
        Err(error) => Err(render_problem(
            StatusCode::BAD_REQUEST,
            &format!("request body is not JSON: {error}"),
        )),
    }
}

async fn token(State(context): Context, body: Bytes) -> Response {
    let form: HashMap<String, String> = serde_urlencoded_pairs(&body);
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return render_problem(StatusCode::BAD_REQUEST, "unsupported grant_type");
    }
    if form.get("client_id").map(String::as_str) != Some(SANDBOX_CLIENT_ID)
        || form.get("client_secret").map(String::as_str) != Some(SANDBOX_CLIENT_SECRET)
    {
        return render_problem(
            StatusCode::UNAUTHORIZED,
            "invalid_client: unknown client or wrong secret",
        );
    }
    let token = context.tokens.issue();
    axum::Json(
        json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600,
                      "scope": form.get("scope").cloned().unwrap_or_default()}),
    )
    .into_response()
}

/// Cursor paging over a list: the cursor is the index of the next item.
fn page(items: Vec<Value>, query: &HashMap<String, String>) -> Result<Value, Response> {
    let limit = match query.get("limit") {
        Some(limit) => match limit.parse::<usize>() {
            Ok(limit @ 1..=200) => limit,
            _ => {
                return Err(render_problem(
                    StatusCode::BAD_REQUEST,
                    "limit must be 1..200",
                ));
            }
        },
        None => 50,
    };
    let start = match query.get("cursor") {
        Some(cursor) => cursor
            .strip_prefix("c")
            .and_then(|index| index.parse::<usize>().ok())
            .ok_or_else(|| render_problem(StatusCode::BAD_REQUEST, "invalid cursor"))?,
        None => 0,
    };
    let end = (start + limit).min(items.len());
    let data: Vec<Value> = items
        .get(start..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let next = (end < items.len()).then(|| format!("c{end}"));
    Ok(json!({"data": data, "next_cursor": next}))
}

async fn list_recipients(
    State(context): Context,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let group = query.get("group_id").cloned();
    let items = context.store.read(|state| {
        state
            .recipients
            .values()
            .filter(|recipient| {
                group.as_ref().is_none_or(|group| {
                    recipient["groups"]
                        .as_array()
                        .is_some_and(|groups| groups.iter().any(|g| g == group.as_str()))
                })
            })
            .cloned()
            .collect::<Vec<_>>()
    });
    match page(items, &query) {
        Ok(body) => axum::Json(body).into_response(),
        Err(response) => response,
    }
}

async fn list_groups(State(context): Context) -> Response {
    let data: Vec<Value> = context
        .store
        .read(|state| state.groups.values().cloned().collect());
    axum::Json(json!({"data": data, "next_cursor": null})).into_response()
}

async fn create_package(State(context): Context, headers: HeaderMap, body: Bytes) -> Response {
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(title) = body["title"]
        .as_str()
        .filter(|title| !title.trim().is_empty())
        .map(str::to_owned)
    else {
        let (status, mut problem) =
            problem_value(StatusCode::UNPROCESSABLE_ENTITY, "validation failed");
        problem["errors"] = json!([{"field": "title", "message": "is required"}]);
        return (status, axum::Json(problem)).into_response();
    };
    let change = Change::new(
        "package.created",
        "POST",
        "/v1/packages",
        idempotency_key(&headers),
    );
    reply(context.store.change(change, |state| {
        let id = state.new_id("pkg");
        let at = now_rfc3339(true);
        let package = json!({
            "id": id, "title": title, "status": "draft", "version": 1,
            "assets": body.get("assets").cloned().unwrap_or_else(|| json!([])),
            "metadata": body.get("metadata").cloned().unwrap_or_else(|| json!({})),
            "rights": body.get("rights").cloned().unwrap_or_else(|| json!({"valid_from": null, "valid_until": null, "territories": [], "channels": [], "restrictions": []})),
            "recipients": body.get("recipients").cloned().unwrap_or_else(|| json!({"group_ids": [], "recipient_ids": []})),
            "created_at": at, "updated_at": at,
        });
        state.packages.insert(id.clone(), package.clone());
        Ok((StatusCode::CREATED, package, Some(id)))
    }))
}

fn package_not_found(id: &str) -> (StatusCode, Value) {
    problem_value(StatusCode::NOT_FOUND, &format!("package {id} not found"))
}

async fn get_package(State(context): Context, Path(id): Path<String>) -> Response {
    match context.store.read(|state| state.packages.get(&id).cloned()) {
        Some(package) => axum::Json(package).into_response(),
        None => {
            let (status, body) = package_not_found(&id);
            (status, axum::Json(body)).into_response()
        }
    }
}

async fn update_package(
    State(context): Context,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let path = format!("/v1/packages/{id}");
    let change = Change::new("package.updated", "PATCH", path, idempotency_key(&headers));
    reply(context.store.change(change, |state| {
        let package = state
            .packages
            .get_mut(&id)
            .ok_or_else(|| package_not_found(&id))?;
        for field in ["title", "metadata", "rights", "recipients"] {
            if let Some(value) = body.get(field) {
                package[field] = value.clone();
            }
        }
        package["updated_at"] = json!(now_rfc3339(true));
        Ok((StatusCode::OK, package.clone(), Some(id.clone())))
    }))
}

fn rights_expired(package: &Value) -> bool {
    package["rights"]["valid_until"]
        .as_str()
        .and_then(|until| crate::asset::parse_instant(until, true))
        .is_some_and(|until| until < chrono::Utc::now())
}

async fn publish_package(
    State(context): Context,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/v1/packages/{id}/publish");
    let change = Change::new("package.published", "POST", path, idempotency_key(&headers));
    webhooks::change_and_emit(&context, change, |state, events| {
        let package = state
            .packages
            .get(&id)
            .cloned()
            .ok_or_else(|| package_not_found(&id))?;
        if rights_expired(&package) {
            return Err(problem_value(
                StatusCode::CONFLICT,
                &format!(
                    "package {id}: rights expired at {}",
                    package["rights"]["valid_until"].as_str().unwrap_or("?")
                ),
            ));
        }
        match package["status"].as_str() {
            Some("withdrawn") => {
                return Err(problem_value(
                    StatusCode::CONFLICT,
                    &format!("package {id} was withdrawn"),
                ));
            }
            Some("published") => {
                return Err(problem_value(
                    StatusCode::CONFLICT,
                    &format!(
                        "package {id} is already published; send new content as a new version (POST /v1/packages/{id}/versions)"
                    ),
                ));
            }
            _ => {}
        }
        let at = now_rfc3339(true);
        let deliveries = deliver(state, &package, &at, events);
        let package = state
            .packages
            .get_mut(&id)
            .expect("the package was read above");
        package["status"] = json!("published");
        package["published_at"] = json!(at);
        package["updated_at"] = json!(at);
        let package = package.clone();
        let delivery_ids: Vec<&Value> = deliveries.iter().map(|delivery| &delivery["id"]).collect();
        let data = json!({"package_id": id, "title": package["title"], "version": package["version"],
                          "delivery_ids": delivery_ids, "rights": package["rights"]});
        events.insert(0, webhooks::event(state, "package.published", &at, data));
        Ok((
            StatusCode::OK,
            json!({"package_id": id, "deliveries": deliveries, "package": package}),
            Some(id.clone()),
        ))
    })
}

/// Delivers the current version of `package` to each of its recipients (its ids and its
/// groups' members, once each), recording one event per delivery in `events`: a suspended
/// recipient's delivery fails.
fn deliver(state: &mut VipState, package: &Value, at: &str, events: &mut Vec<Value>) -> Vec<Value> {
    let mut recipient_ids: Vec<String> = strings(&package["recipients"]["recipient_ids"]);
    for group_id in strings(&package["recipients"]["group_ids"]) {
        if let Some(group) = state.groups.get(&group_id) {
            recipient_ids.extend(strings(&group["recipient_ids"]));
        }
    }
    recipient_ids.sort();
    recipient_ids.dedup();
    let mut deliveries = Vec::new();
    for recipient_id in recipient_ids {
        let delivery_id = state.new_id("dlv");
        let suspended = state
            .recipients
            .get(&recipient_id)
            .is_some_and(|recipient| recipient["status"] == "suspended");
        let mut delivery = json!({"id": delivery_id, "package_id": package["id"], "recipient_id": recipient_id,
                                  "version": package["version"], "status": "delivered", "delivered_at": at,
                                  "downloaded_at": null, "acknowledged_at": null, "error": null});
        let event = if suspended {
            delivery["status"] = json!("failed");
            delivery["delivered_at"] = Value::Null;
            delivery["failed_at"] = json!(at);
            delivery["error"] = json!(format!("recipient {recipient_id} is suspended"));
            let mut data = delivery_data(&delivery);
            data["error"] = delivery["error"].clone();
            data["failed_at"] = json!(at);
            webhooks::event(state, "delivery.failed", at, data)
        } else {
            let mut data = delivery_data(&delivery);
            data["delivered_at"] = json!(at);
            webhooks::event(state, "delivery.delivered", at, data)
        };
        events.push(event);
        state.deliveries.insert(delivery_id, delivery.clone());
        deliveries.push(delivery);
    }
    deliveries
}

/// What every delivery event's data holds.
fn delivery_data(delivery: &Value) -> Value {
    json!({"delivery_id": delivery["id"], "package_id": delivery["package_id"],
           "recipient_id": delivery["recipient_id"], "version": delivery["version"]})
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.as_str().map(str::to_owned))
        .collect()
}

async fn withdraw_package(
    State(context): Context,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let path = format!("/v1/packages/{id}/withdraw");
    let change = Change::new("package.withdrawn", "POST", path, idempotency_key(&headers));
    webhooks::change_and_emit(&context, change, |state, events| {
        let at = now_rfc3339(true);
        let reason = body.get("reason").cloned().unwrap_or(Value::Null);
        let package = state
            .packages
            .get_mut(&id)
            .ok_or_else(|| package_not_found(&id))?;
        package["status"] = json!("withdrawn");
        package["withdrawn_reason"] = reason.clone();
        package["withdrawn_at"] = json!(at);
        package["updated_at"] = json!(at);
        let package = package.clone();
        let mut revoked = Vec::new();
        for delivery in state.deliveries.values_mut() {
            if delivery["package_id"] == id.as_str() && content::holds_access(delivery) {
                delivery["status"] = json!("revoked");
                delivery["revoked_at"] = json!(at);
                delivery["revoke_reason"] = reason.clone();
                revoked.push(delivery["id"].clone());
            }
        }
        let data = json!({"package_id": id, "reason": reason, "withdrawn_at": at,
                          "revoked_delivery_ids": revoked});
        events.push(webhooks::event(state, "package.withdrawn", &at, data));
        Ok((
            StatusCode::OK,
            json!({"package": package, "revoked_deliveries": revoked.len()}),
            Some(id.clone()),
        ))
    })
}

async fn list_deliveries(
    State(context): Context,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let items = context.store.read(|state| {
        state
            .deliveries
            .values()
            .filter(|delivery| {
                query
                    .get("package_id")
                    .is_none_or(|id| delivery["package_id"] == id.as_str())
            })
            .filter(|delivery| {
                query
                    .get("status")
                    .is_none_or(|status| delivery["status"] == status.as_str())
            })
            .cloned()
            .collect::<Vec<_>>()
    });
    match page(items, &query) {
        Ok(body) => axum::Json(body).into_response(),
        Err(response) => response,
    }
}

async fn acknowledge(
    State(context): Context,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let path = format!("/v1/deliveries/{id}/acknowledgements");
    let change = Change::new(
        "delivery.acknowledged",
        "POST",
        path,
        idempotency_key(&headers),
    );
    webhooks::change_and_emit(&context, change, |state, events| {
        let delivery = state.deliveries.get_mut(&id).ok_or_else(|| {
            problem_value(StatusCode::NOT_FOUND, &format!("delivery {id} not found"))
        })?;
        if !content::holds_access(delivery) {
            return Err(problem_value(
                StatusCode::CONFLICT,
                &format!(
                    "delivery {id} was {}",
                    delivery["status"].as_str().unwrap_or("closed")
                ),
            ));
        }
        let at = now_rfc3339(true);
        delivery["status"] = json!("acknowledged");
        delivery["acknowledged_at"] = json!(at);
        delivery["acknowledged_by"] = body.get("by").cloned().unwrap_or(Value::Null);
        delivery["note"] = body.get("note").cloned().unwrap_or(Value::Null);
        let delivery = delivery.clone();
        let mut data = delivery_data(&delivery);
        data["acknowledged_at"] = json!(at);
        data["acknowledged_by"] = delivery["acknowledged_by"].clone();
        data["note"] = delivery["note"].clone();
        events.push(webhooks::event(state, "delivery.acknowledged", &at, data));
        Ok((StatusCode::CREATED, delivery, Some(id.clone())))
    })
}

/// `POST /v1/notifications {recipient_ids, subject, message}` \[D\]: a message to
/// recipients through the platform's own channel (its portal and e-mail), recorded with
/// the time it was sent. Unknown recipients are 404, naming them.
async fn notify(State(context): Context, headers: HeaderMap, body: Bytes) -> Response {
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let change = Change::new(
        "notification.sent",
        "POST",
        "/v1/notifications",
        idempotency_key(&headers),
    );
    let answer = context.store.change(change, |state| {
        let recipients: Vec<String> = body["recipient_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|id| id.as_str().map(str::to_owned))
            .collect();
        if recipients.is_empty() {
            return Err(problem_value(
                StatusCode::UNPROCESSABLE_ENTITY,
                "recipient_ids: at least one recipient id is required",
            ));
        }
        let unknown: Vec<&String> = recipients
            .iter()
            .filter(|id| !state.recipients.contains_key(*id))
            .collect();
        if !unknown.is_empty() {
            return Err(problem_value(
                StatusCode::NOT_FOUND,
                &format!("recipient_ids: unknown recipients {unknown:?}"),
            ));
        }
        let id = state.new_id("ntf");
        let notification = json!({"id": id, "recipient_ids": recipients, "subject": body["subject"],
                                  "message": body["message"], "sent_at": now_rfc3339(true)});
        state.notifications.insert(id.clone(), notification.clone());
        Ok((StatusCode::CREATED, notification, Some(id)))
    });
    reply(answer)
}
