//! The hub's event callbacks \[D\]: `POST /hub/v1/subscriptions {url, events?, secret}`
//! (201 `{subscription_id, url, events, created_at}`; the secret is never answered back),
//! `GET /hub/v1/subscriptions`, `DELETE /hub/v1/subscriptions/{id}`.
//!
//! Every event the hub records afterwards (those named in `events`, as `post.withdrawn`
//! or `post_withdrawn`; all when absent) is POSTed to the subscription's url as
//! `{event_id, event, occurred_at, data}`, the envelope of the event feed, with
//! `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw body under the secret>`. Anything
//! but a 2xx answer is retried with exponential backoff ([`ATTEMPTS`] attempts, from
//! [`FIRST_DELAY`] doubling up to [`MAX_DELAY`]). The events of one change go out in
//! order; those of different changes may overtake each other (a receiver identifies an
//! event by its `event_id`, not by its arrival).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Context, SIGNATURE_HEADER, error_value, render_error};
use crate::simulator::http::{json_object, not_found, now_rfc3339};
use crate::simulator::{Change, idempotency_key, reply};

/// Deliveries of one event to one subscription, at most.
pub(super) const ATTEMPTS: u32 = 8;
/// The wait after the first failed delivery.
pub(super) const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest wait between two deliveries.
pub(super) const MAX_DELAY: Duration = Duration::from_secs(5);

fn public_view(subscription: &Value) -> Value {
    let mut view = subscription.clone();
    if let Some(fields) = view.as_object_mut() {
        fields.remove("secret");
    }
    view
}

pub(super) async fn subscribe(
    State(context): Context,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = match json_object(&body, render_error) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let url = body["url"].as_str().unwrap_or_default().to_owned();
    if !matches!(reqwest::Url::parse(&url), Ok(parsed) if ["http", "https"].contains(&parsed.scheme()))
    {
        return render_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "url must be an http or https URL",
        );
    }
    let Some(secret) = body["secret"].as_str().filter(|secret| !secret.is_empty()) else {
        return render_error(StatusCode::UNPROCESSABLE_ENTITY, "secret is required");
    };
    let events = match &body["events"] {
        Value::Null => Value::Null,
        Value::Array(names) if names.iter().all(Value::is_string) => json!(names),
        _ => {
            return render_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "events must be a list of event names",
            );
        }
    };
    let change = Change::new(
        "subscription.created",
        "POST",
        "/hub/v1/subscriptions",
        idempotency_key(&headers),
    );
    reply(context.store.change(change, |state| {
        let subscription_id = state.new_id("sub");
        let subscription = json!({"subscription_id": subscription_id, "url": url, "events": events,
                                  "secret": secret, "created_at": now_rfc3339(true)});
        state
            .subscriptions
            .insert(subscription_id.clone(), subscription.clone());
        Ok((
            StatusCode::CREATED,
            public_view(&subscription),
            Some(subscription_id),
        ))
    }))
}

pub(super) async fn list(State(context): Context) -> Response {
    let subscriptions: Vec<Value> = context
        .store
        .read(|state| state.subscriptions.values().map(public_view).collect());
    axum::Json(json!({"subscriptions": subscriptions})).into_response()
}

pub(super) async fn unsubscribe(
    State(context): Context,
    headers: HeaderMap,
    Path(subscription_id): Path<String>,
) -> Response {
    let path = format!("/hub/v1/subscriptions/{subscription_id}");
    let change = Change::new(
        "subscription.deleted",
        "DELETE",
        path,
        idempotency_key(&headers),
    );
    reply(context.store.change(change, |state| {
        state
            .subscriptions
            .remove(&subscription_id)
            .ok_or_else(|| not_found(error_value, "subscription", &subscription_id))?;
        Ok((
            StatusCode::OK,
            json!({"subscription_id": subscription_id, "deleted": true}),
            Some(subscription_id.clone()),
        ))
    }))
}

/// Whether `subscription` asked for events named `event` (`post.withdrawn`).
fn wants(subscription: &Value, event: &str) -> bool {
    match subscription["events"].as_array() {
        None => true,
        Some(names) => names
            .iter()
            .filter_map(Value::as_str)
            .any(|name| name.replace('.', "_") == event.replace('.', "_")),
    }
}

/// Sends `events` (feed entries) to every subscription that wants them, each
/// subscription's in order on a task of its own.
pub(super) fn send(subscriptions: &[Value], events: &[Value]) {
    for subscription in subscriptions {
        let (Some(url), Some(secret)) = (
            subscription["url"].as_str().map(str::to_owned),
            subscription["secret"].as_str().map(str::to_owned),
        ) else {
            continue;
        };
        let bodies: Vec<(String, Vec<u8>)> = events
            .iter()
            .filter(|event| wants(subscription, event["event"].as_str().unwrap_or_default()))
            .map(|event| {
                let envelope = json!({"event_id": event["event_id"], "event": event["event"],
                                      "occurred_at": event["occurred_at"], "data": event["data"]});
                (
                    event["event_id"].as_str().unwrap_or_default().to_owned(),
                    envelope.to_string().into_bytes(),
                )
            })
            .collect();
        if bodies.is_empty() {
            continue;
        }
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for (event_id, body) in bodies {
                deliver(&client, &url, &secret, &event_id, body).await;
            }
        });
    }
}

async fn deliver(client: &reqwest::Client, url: &str, secret: &str, event_id: &str, body: Vec<u8>) {
    let signature = gridflow_core::webhook::body_signature(secret.as_bytes(), &body);
    let mut delay = FIRST_DELAY;
    for attempt in 1..=ATTEMPTS {
        let sent = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, &signature)
            .body(body.clone())
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => {
                tracing::debug!(event_id, attempt, status = %response.status(), "hub callback refused; retrying");
            }
            Err(error) => {
                tracing::debug!(event_id, attempt, %error, "hub callback failed; retrying");
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_DELAY);
        }
    }
    tracing::warn!(
        event_id,
        url,
        "hub callback given up after {ATTEMPTS} attempts"
    );
}
