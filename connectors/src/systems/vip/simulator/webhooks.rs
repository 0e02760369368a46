//! The VIP simulator's webhooks \[D\] (`vip.md`): subscriptions (`POST /v1/webhooks {url,
//! events[], secret}`, `GET /v1/webhooks`, `GET` and `DELETE /v1/webhooks/{id}`; the secret
//! is never returned) and the events a change sends to them.
//!
//! Each event is `POST`ed to every subscription of its type as `{id, type, occurred_at,
//! data}`, with `X-Signature: sha256=<hex HMAC-SHA256 of the raw body under the
//! subscription's secret>`. A delivery that fails (no answer or a non-2xx status) is sent
//! again, the same body and signature, after [`FIRST_RETRY`], doubling up to
//! [`MAX_RETRY_DELAY`], [`MAX_ATTEMPTS`] times in all. Events of a change are sent only
//! once it took effect (never for a refused request or a replayed reply). Deliveries in
//! progress are not persisted: a simulator restart drops their remaining retries.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};

use super::{Context, VipState, json_body, page, problem_value};
use crate::simulator::http::now_rfc3339;
use crate::simulator::{Change, ChangeResult, Reply, SimContext, idempotency_key, reply};

/// The header carrying an event's signature.
pub const SIGNATURE_HEADER: &str = "X-Signature";

/// Every event type a subscription may ask for.
pub const EVENT_TYPES: [&str; 8] = [
    "package.published",
    "package.withdrawn",
    "delivery.delivered",
    "delivery.downloaded",
    "delivery.acknowledged",
    "delivery.failed",
    "delivery.superseded",
    "delivery.revoked",
];

/// How long the first retry of a failed event delivery waits.
pub const FIRST_RETRY: Duration = Duration::from_millis(100);

/// The longest wait between two attempts.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Attempts per event and subscription, the first included.
pub const MAX_ATTEMPTS: u32 = 8;

pub(super) fn routes() -> Router<Arc<SimContext<VipState>>> {
    Router::new()
        .route("/v1/webhooks", post(create_webhook).get(list_webhooks))
        .route("/v1/webhooks/{id}", get(get_webhook).delete(delete_webhook))
}

/// `sha256=<hex HMAC-SHA256 of body under secret>`: the value of [`SIGNATURE_HEADER`].
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        Hmac::<sha2_hmac::Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A new event of `kind` that occurred `at`, with its id.
pub(super) fn event(state: &mut VipState, kind: &str, at: &str, data: Value) -> Value {
    json!({"id": state.new_id("evt"), "type": kind, "occurred_at": at, "data": data})
}

/// Applies `change` like [`crate::simulator::SimStore::change`], `apply` pushing the
/// events it causes onto its second argument, and answers as JSON; the events go to
/// their subscribers once the change took effect ([`emit_after`]).
pub(super) fn change_and_emit(
    context: &SimContext<VipState>,
    change: Change,
    apply: impl FnOnce(&mut VipState, &mut Vec<Value>) -> ChangeResult,
) -> Response {
    let mut events = Vec::new();
    let answer = context
        .store
        .change(change, |state| apply(state, &mut events));
    emit_after(context, &answer, events);
    reply(answer)
}

/// Sends `events` to their subscribers when `answer` took effect.
fn emit_after(context: &SimContext<VipState>, answer: &Reply, events: Vec<Value>) {
    if answer.replayed || !(200..300).contains(&answer.status) {
        return;
    }
    let hooks: Vec<Value> = context
        .store
        .read(|state| state.webhooks.values().cloned().collect());
    for event in events {
        let body = Bytes::from(event.to_string());
        for hook in &hooks {
            let subscribed = hook["events"]
                .as_array()
                .is_some_and(|events| events.iter().any(|kind| *kind == event["type"]));
            let (Some(url), Some(secret)) = (hook["url"].as_str(), hook["secret"].as_str()) else {
                continue;
            };
            if subscribed {
                let signed = signature(secret.as_bytes(), &body);
                tokio::spawn(send(url.to_owned(), body.clone(), signed));
            }
        }
    }
}

/// Delivers one event to one subscriber, retrying with backoff.
async fn send(url: String, body: Bytes, signature: String) {
    let client = reqwest::Client::new();
    let mut delay = FIRST_RETRY;
    for attempt in 1..=MAX_ATTEMPTS {
        let sent = client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, &signature)
            .timeout(Duration::from_secs(10))
            .body(body.clone())
            .send()
            .await;
        let failure = match sent {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => format!("status {}", response.status().as_u16()),
            Err(error) => error.without_url().to_string(),
        };
        tracing::warn!(attempt, %failure, "vip simulator: event delivery failed");
        if attempt < MAX_ATTEMPTS {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_RETRY_DELAY);
        }
    }
}

/// A subscription as the API shows it: without its secret.
fn public(hook: &Value) -> Value {
    let mut hook = hook.clone();
    if let Some(fields) = hook.as_object_mut() {
        fields.remove("secret");
    }
    hook
}

fn invalid(field: &str, message: &str) -> (StatusCode, Value) {
    let (status, mut problem) =
        problem_value(StatusCode::UNPROCESSABLE_ENTITY, "validation failed");
    problem["errors"] = json!([{"field": field, "message": message}]);
    (status, problem)
}

fn check_subscription(body: &Value) -> Result<(), (StatusCode, Value)> {
    let url = body["url"].as_str().unwrap_or_default();
    if !(url.starts_with("http://") || url.starts_with("https://"))
        || reqwest::Url::parse(url).is_err()
    {
        return Err(invalid("url", "must be an http(s) URL"));
    }
    let Some(events) = body["events"]
        .as_array()
        .filter(|events| !events.is_empty())
    else {
        return Err(invalid("events", "must list at least one event type"));
    };
    for kind in events {
        if !kind
            .as_str()
            .is_some_and(|kind| EVENT_TYPES.contains(&kind))
        {
            return Err(invalid(
                "events",
                &format!("{kind} is not one of {}", EVENT_TYPES.join(", ")),
            ));
        }
    }
    if body["secret"].as_str().is_none_or(str::is_empty) {
        return Err(invalid("secret", "is required"));
    }
    Ok(())
}

async fn create_webhook(State(context): Context, headers: HeaderMap, body: Bytes) -> Response {
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    if let Err((status, problem)) = check_subscription(&body) {
        return (status, axum::Json(problem)).into_response();
    }
    let change = Change::new(
        "webhook.created",
        "POST",
        "/v1/webhooks",
        idempotency_key(&headers),
    );
    reply(context.store.change(change, |state| {
        let id = state.new_id("whk");
        let hook = json!({"id": id, "url": body["url"], "events": body["events"],
                          "secret": body["secret"], "created_at": now_rfc3339(true)});
        state.webhooks.insert(id.clone(), hook.clone());
        Ok((StatusCode::CREATED, public(&hook), Some(id)))
    }))
}

async fn list_webhooks(
    State(context): Context,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let hooks: Vec<Value> = context
        .store
        .read(|state| state.webhooks.values().map(public).collect());
    match page(hooks, &query) {
        Ok(body) => axum::Json(body).into_response(),
        Err(response) => response,
    }
}

fn webhook_not_found(id: &str) -> (StatusCode, Value) {
    problem_value(StatusCode::NOT_FOUND, &format!("webhook {id} not found"))
}

async fn get_webhook(State(context): Context, Path(id): Path<String>) -> Response {
    match context
        .store
        .read(|state| state.webhooks.get(&id).map(public))
    {
        Some(hook) => axum::Json(hook).into_response(),
        None => {
            let (status, body) = webhook_not_found(&id);
            (status, axum::Json(body)).into_response()
        }
    }
}

async fn delete_webhook(
    State(context): Context,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/v1/webhooks/{id}");
    let change = Change::new("webhook.deleted", "DELETE", path, idempotency_key(&headers));
    let answer = context.store.change(change, |state| {
        state
            .webhooks
            .remove(&id)
            .map(|_| (StatusCode::NO_CONTENT, Value::Null, Some(id.clone())))
            .ok_or_else(|| webhook_not_found(&id))
    });
    if answer.status == 204 {
        StatusCode::NO_CONTENT.into_response()
    } else {
        reply(answer)
    }
}
