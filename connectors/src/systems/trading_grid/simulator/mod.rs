//! The Trading Grid simulator: the OAuth token service (`POST /v1/oauth2/tokens`, Basic
//! consumer key and secret) and Community Management's company and partner directory
//! \[V\], plus the partner-hub resources under `/hub/v1` that OpenText does not expose and
//! we designed \[D\]. `/hub/v1` honours `Idempotency-Key` \[D\]. Its rooms:
//!
//! - `hub`: communities, groups and their members, notifications, acknowledgements;
//! - `issues`: issues (cases) and their comments;
//! - `posts`: documents (raw bytes in, their SHA-256 out), posts that attach them and
//!   reach partner companies, withdrawals;
//! - `requests`: partner requests (media, access, localisation, enhancement) we answer and
//!   close, and group membership management;
//! - `library`: the communities' library entries (a shared asset's metadata and the
//!   partners it is assigned to);
//! - `partner`: what a partner does, under the separate prefix `/partner/v1` with the
//!   partner's identity in `X-Partner-Login` (create a request, comment on or acknowledge
//!   a post, download a document, join a community);
//! - `partner_issues`: issues a partner raises on content under `/partner/v1/issues`;
//! - `callbacks`: `POST /hub/v1/subscriptions {url, events?, secret}` and the signed
//!   callbacks (`X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>`), retried with
//!   backoff on anything but 2xx.
//!
//! Every change a partner or we make appends an event to the hub's event feed,
//! `GET /hub/v1/events` \[D\] (`issue.created`, `request.created`, `post.commented`,
//! `document.downloaded`, `post.withdrawn`, …), numbered by `seq`, which the
//! `trading_grid` poller reads after its cursor, and the same envelope
//! `{event_id, event, occurred_at, data}` goes to every subscription.
//! Errors use the Cartographer shape `{status, message, error-code}`; a missing or expired
//! token gets the gateway's `{fault: {faultstring, detail: {errorcode}}}` \[I\].

// Handlers return an early `Response` through `Result` (axum's idiom for a rejection);
// boxing it would buy nothing on a loopback test server.
#![allow(clippy::result_large_err)]

mod callbacks;
mod hub;
mod issues;
mod library;
mod partner;
mod partner_issues;
mod posts;
mod requests;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::simulator::http::{not_found, now_rfc3339, respond};
use crate::simulator::{
    Change, ChangeResult, Reply, Routes, RunningSimulator, SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET, SimContext, SimError, SimOptions, SimState, reply,
};

/// The simulator's name.
pub const NAME: &str = "trading_grid";

/// Our company on the simulated network.
pub const SANDBOX_COMPANY_ID: &str = "GC00804444LX";

/// The header naming the partner user (`loginId`) on the partner routes \[D\].
pub const PARTNER_LOGIN_HEADER: &str = "x-partner-login";

/// The header of the hub's signed callbacks \[D\].
pub const SIGNATURE_HEADER: &str = "x-hub-signature";

type Shared = Arc<SimContext<TradingGridState>>;
type Context = State<Shared>;

/// Everything the Trading Grid simulator holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TradingGridState {
    /// Companies by id (ours and the partners').
    pub companies: BTreeMap<String, Value>,
    /// Partner directory entries of each company.
    pub partner_directory: BTreeMap<String, Vec<Value>>,
    /// Communities by id (with `member_company_ids`, the partners that joined).
    pub communities: BTreeMap<String, Value>,
    /// Groups by id (each names its community and member company ids).
    pub groups: BTreeMap<String, Value>,
    /// Posts by id (documents, recipients, withdrawals, comments and downloads).
    pub posts: BTreeMap<String, Value>,
    /// Acknowledgements by post id.
    pub acknowledgements: BTreeMap<String, Vec<Value>>,
    /// Notifications by id.
    pub notifications: BTreeMap<String, Value>,
    /// Issues by id.
    pub issues: BTreeMap<String, Value>,
    /// Uploaded documents by id, their bytes in base64 under `content_base64`.
    #[serde(default)]
    pub documents: BTreeMap<String, Value>,
    /// Partner requests by id.
    #[serde(default)]
    pub requests: BTreeMap<String, Value>,
    /// Partner users: `loginId` to `companyId`.
    #[serde(default)]
    pub logins: BTreeMap<String, String>,
    /// The communities' library entries by id \[D\] (`library`).
    #[serde(default)]
    pub library: BTreeMap<String, Value>,
    /// Callback subscriptions by id (with their secret: the simulator's own).
    #[serde(default)]
    pub subscriptions: BTreeMap<String, Value>,
    /// How many of the next uploads report a wrong digest (a test's control).
    #[serde(default)]
    pub corrupt_uploads: u32,
    /// The last number used in generated ids.
    pub next_id: u64,
    /// The hub's event feed, oldest first, served by `GET /hub/v1/events` \[D\]: the same
    /// `{event_id, event, occurred_at, data}` envelope as the hub's event callbacks,
    /// numbered by `seq`.
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

/// Applies a change like [`crate::simulator::SimStore::change`] and, once it took effect
/// (not a refusal, not a replay), sends the events it recorded to the subscriptions.
fn apply_and_emit(
    context: &Shared,
    change: Change,
    apply: impl FnOnce(&mut TradingGridState) -> ChangeResult,
) -> Reply {
    let mut emitted = Vec::new();
    let mut subscriptions = Vec::new();
    let answer = context.store.change(change, |state| {
        let before = state.events.len();
        let outcome = apply(state)?;
        emitted = state.events[before..].to_vec();
        subscriptions = state.subscriptions.values().cloned().collect();
        Ok(outcome)
    });
    if !answer.replayed && (200..300).contains(&answer.status) {
        callbacks::send(&subscriptions, &emitted);
    }
    answer
}

/// [`apply_and_emit`], answered as JSON.
fn change_and_emit(
    context: &Shared,
    change: Change,
    apply: impl FnOnce(&mut TradingGridState) -> ChangeResult,
) -> Response {
    reply(apply_and_emit(context, change, apply))
}

/// Starts the Trading Grid simulator.
pub async fn start(options: SimOptions) -> Result<RunningSimulator, SimError> {
    crate::simulator::serve(NAME, options, routes(), render_error).await
}

fn routes() -> Routes<TradingGridState> {
    let public = Router::new()
        .route("/v1/oauth2/tokens", post(token))
        .route(
            "/_sim/trading_grid/corrupt_uploads",
            post(posts::corrupt_uploads),
        )
        .merge(partner::routes())
        .merge(library::partner_routes())
        .merge(partner_issues::routes());
    let protected = Router::new()
        .route(
            "/TGCommunityServices/v1/companies/{company_id}",
            get(company),
        )
        .route(
            "/TGCommunityServices/v1/companies/{company_id}/partnerDirectory",
            get(partner_directory),
        )
        .route("/hub/v1/events", get(events))
        .route(
            "/hub/v1/subscriptions",
            post(callbacks::subscribe).get(callbacks::list),
        )
        .route(
            "/hub/v1/subscriptions/{subscription_id}",
            axum::routing::delete(callbacks::unsubscribe),
        )
        .route("/hub/v1/issues", post(issues::create_issue))
        .route(
            "/hub/v1/issues/{issue_id}",
            patch(issues::update_issue).get(issues::get_issue),
        )
        .route(
            "/hub/v1/issues/{issue_id}/comments",
            post(issues::comment_issue),
        )
        .merge(hub::routes())
        .merge(posts::routes())
        .merge(requests::routes())
        .merge(library::routes());
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
