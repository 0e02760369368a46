//! The Smint.io simulator (`smintio.md`): the identity server (OIDC discovery and
//! `POST /connect/token` with the `refresh_token` grant, form-encoded) and CLAPI-C under
//! [`API_ROOT`]: the licence purchase transaction feed with continuation tokens
//! (`{count, continuation_uuid, license_purchase_transactions}`) and binaries per LPT with
//! signed download URLs valid for an hour (paths \[D\]), served by the simulator's own
//! CDN (`admin.rs`: every binary has real bytes). Errors are `{"message": …}`, OAuth errors
//! `{"error", "error_description"}`. CLAPI-C has no writes, so the effect log holds only
//! the test routes' changes: the feed is the transactions followed by every change made
//! through `/_sim/smintio/…` (an asset edited, licence terms replaced), in order, each the
//! LPT as it was right after the change with a new `version` and `last_updated_at`.

// Handlers return an early `Response` through `Result` (axum's idiom for a rejection);
// boxing it would buy nothing on a loopback test server.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::simulator::http::serde_urlencoded_pairs;
use crate::simulator::{
    Routes, RunningSimulator, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SimContext, SimError,
    SimOptions, SimState,
};

/// The simulator's name.
pub const NAME: &str = "smintio";

/// The CLAPI-C root under the simulator's address.
pub const API_ROOT: &str = "/consumer/v1";

/// The refresh token the sandbox identity server accepts.
pub const SANDBOX_REFRESH_TOKEN: &str = "sandbox-refresh-token";

type Context = State<Arc<SimContext<SmintioState>>>;

/// Everything the Smint.io simulator holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SmintioState {
    /// Licence purchase transactions as they are now, in the order they were purchased:
    /// the start of the feed.
    pub transactions: Vec<Value>,
    /// Binaries by LPT uuid.
    pub binaries: BTreeMap<String, Vec<Value>>,
    /// Every change since (an asset or licence terms edited through `/_sim/smintio`), in
    /// order: the LPT as it was right after the change, with `change_type`
    /// (`content_updated`, `license_terms_updated`) \[D\]. The feed serves them after
    /// the transactions.
    #[serde(default)]
    pub changes: Vec<Value>,
    /// The bytes of every binary, by `<lpt uuid>/<binary uuid>` (see `admin.rs`).
    #[serde(default)]
    pub files: BTreeMap<String, StoredFile>,
}

impl SimState for SmintioState {
    /// The seed data of `seed.json`, next to this file, with bytes for every binary.
    fn seed() -> Self {
        let mut state: Self = serde_json::from_str(include_str!("../seed.json"))
            .expect("seed.json holds valid state");
        admin::seed_files(&mut state);
        state
    }
}

/// Starts the Smint.io simulator (identity server at the root, CLAPI-C under [`API_ROOT`]).
pub async fn start(options: SimOptions) -> Result<RunningSimulator, SimError> {
    crate::simulator::serve(NAME, options, routes(), render_error).await
}

mod admin;

pub use admin::{CDN_PATH, StoredFile};

fn routes() -> Routes<SmintioState> {
    let api = Router::new()
        .route(
            "/assets/license-purchase-transactions/for-sync",
            get(sync_feed),
        )
        .route("/assets/{cart}/{lpt}/binaries/for-sync", get(binaries));
    let public = admin::routes()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/connect/token", post(token));
    Routes {
        public,
        protected: Router::new().nest(API_ROOT, api),
        authorize,
    }
}

/// Writes an error as `{"message": …}` \[D\].
pub fn render_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"message": message}))).into_response()
}

fn authorize(context: &SimContext<SmintioState>, headers: &HeaderMap) -> Result<(), Response> {
    if context.tokens.check_bearer(headers) {
        Ok(())
    } else {
        Err(render_error(
            StatusCode::UNAUTHORIZED,
            "access token missing, invalid or expired",
        ))
    }
}

fn host(headers: &HeaderMap) -> String {
    headers
        .get("host")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned()
}

async fn discovery(headers: HeaderMap) -> Response {
    let issuer = format!("http://{}", host(&headers));
    axum::Json(json!({
        "issuer": issuer, "token_endpoint": format!("{issuer}/connect/token"),
        "authorization_endpoint": format!("{issuer}/connect/authorize"),
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "scopes_supported": ["smintio.full", "openid", "profile", "offline_access"],
    }))
    .into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn token(State(context): Context, body: Bytes) -> Response {
    let form: HashMap<String, String> = serde_urlencoded_pairs(&body);
    if form.get("client_id").map(String::as_str) != Some(SANDBOX_CLIENT_ID)
        || form.get("client_secret").map(String::as_str) != Some(SANDBOX_CLIENT_SECRET)
    {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client or wrong secret",
        );
    }
    match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {
            if form.get("refresh_token").map(String::as_str) != Some(SANDBOX_REFRESH_TOKEN) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "refresh token is unknown or revoked",
                );
            }
        }
        Some("authorization_code") => {
            if form.get("code").map(String::as_str) != Some("sandbox-code") {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "authorization code is unknown",
                );
            }
        }
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            );
        }
    }
    let token = context.tokens.issue();
    axum::Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600,
                      "refresh_token": SANDBOX_REFRESH_TOKEN, "scope": "smintio.full openid profile offline_access"}))
    .into_response()
}

/// The continuation token after `index` items of the feed.
fn continuation(index: usize) -> String {
    format!("c0a1b2c3-0000-4000-8000-{index:012}")
}

fn continuation_index(token: &str) -> Option<usize> {
    token.strip_prefix("c0a1b2c3-0000-4000-8000-")?.parse().ok()
}

async fn sync_feed(
    State(context): Context,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let limit = match query.get("limit").map(|limit| limit.parse::<usize>()) {
        None => 10,
        Some(Ok(limit @ 1..=100)) => limit,
        Some(_) => return render_error(StatusCode::BAD_REQUEST, "limit must be 1..100"),
    };
    let start = match query.get("continuation_uuid").filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => match continuation_index(token) {
            Some(index) => index,
            None => {
                return render_error(
                    StatusCode::BAD_REQUEST,
                    &format!("continuation_uuid {token} is not valid"),
                );
            }
        },
    };
    let (page, total) = context.store.read(|state| {
        let page: Vec<Value> = state
            .transactions
            .iter()
            .chain(&state.changes)
            .skip(start)
            .take(limit)
            .cloned()
            .collect();
        (page, state.transactions.len() + state.changes.len())
    });
    let next = (start + page.len()).min(total.max(start));
    axum::Json(
        json!({"count": page.len(), "continuation_uuid": continuation(next),
                      "license_purchase_transactions": page}),
    )
    .into_response()
}

async fn binaries(
    State(context): Context,
    Path((cart, lpt)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let found = context.store.read(|state| {
        let known = state.transactions.iter().any(|transaction| {
            transaction["uuid"] == lpt.as_str()
                && transaction["cart_purchase_transaction_uuid"] == cart.as_str()
        });
        known.then(|| state.binaries.get(&lpt).cloned().unwrap_or_default())
    });
    let Some(mut list) = found else {
        return render_error(
            StatusCode::NOT_FOUND,
            &format!("license purchase transaction {cart}/{lpt} not found"),
        );
    };
    let expires = chrono::Utc::now().timestamp() + admin::URL_VALIDITY_SECS;
    let host = host(&headers);
    for binary in &mut list {
        let uuid = binary["uuid"].as_str().unwrap_or_default().to_owned();
        binary["download_url"] = json!(admin::signed_url(&host, &lpt, &uuid, expires));
    }
    axum::Json(json!(list)).into_response()
}
