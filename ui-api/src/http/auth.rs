//! Bearer-token authentication and role authorization of `/api/v1`.
//!
//! Two kinds of token are accepted: the admin token given to `gridflow serve` (it names
//! the user `admin`), and tokens created through `POST /api/v1/tokens`, stored as the
//! SHA-256 of their text with the user, role and groups they name. The admin token is
//! compared in constant time; a stored token is found by its hash, which reveals nothing
//! about the token through timing. No token is ever logged: nothing here logs headers.
//!
//! `authorize` runs on every matched route and applies [`crate::http::policy::RULES`]:
//! 401 without a valid token, 403 for a role the rule does not name. A stored token is
//! valid until it expires or is revoked; a sandbox demo token only on its server run.

use std::str::FromStr;

use axum::Router;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use gridflow_store::TokenRecord;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::error::ApiError;
use crate::http::policy::{self, Access, Decision, Verb};
use crate::http::role::Role;
use crate::http::state::{API_PREFIX, AppState};

/// The user that the admin token names; the actor recorded in history for its requests.
pub const ADMIN_USER: &str = "admin";

/// What every token created by gridflow starts with, so that a leaked one is recognisable
/// (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "gf_";

/// The authenticated caller of a request, put into its extensions by `authorize`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user the token names; the actor recorded in history for the caller's actions.
    pub user: String,
    /// The groups the token names, for approval assignment.
    pub groups: Vec<String>,
    /// What the token allows.
    pub role: Role,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Every route with a role rule passes `authorize`, which inserts the caller; a
        // route without one that asks anyway is refused rather than served anonymously.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("this request needs a bearer token"))
    }
}

/// A new random token: [`TOKEN_PREFIX`] and 32 random bytes in hex. Shown once.
pub fn generate_token() -> String {
    format!("{TOKEN_PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// What the store keeps of a token: the lowercase hex SHA-256 of its text.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The caller that the request's bearer token names; 401 without a valid one.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    let presented = bearer_token(headers)?;
    Ok(authenticate_token(state, presented).await?.caller)
}

/// A token checked by [`authenticate_token`]: the caller it names and which token it is.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated {
    /// The caller the token names.
    pub(crate) caller: Caller,
    /// The stored token's id; `None` for the admin token.
    pub(crate) token_id: Option<String>,
    /// The stored token's hash, to check it again later (revocation); `None` for the
    /// admin token.
    pub(crate) token_hash: Option<String>,
    /// When the token stops being accepted; `None` when it does not expire.
    pub(crate) expires_at: Option<DateTime<Utc>>,
}

/// Checks a presented token, as a bearer token is checked (the console's sign-in uses it
/// too); 401 when it is not valid.
pub(crate) async fn authenticate_token(
    state: &AppState,
    presented: &str,
) -> Result<Authenticated, ApiError> {
    if token_matches(presented, &state.admin_token) {
        return Ok(Authenticated {
            caller: Caller {
                user: ADMIN_USER.to_owned(),
                groups: Vec::new(),
                role: Role::Admin,
            },
            token_id: None,
            token_hash: None,
            expires_at: None,
        });
    }
    authenticate_stored(state, &token_hash(presented)).await
}

/// Checks the stored token of hash `hash` now (revoked, expired, another server run's);
/// 401 when it is not valid.
pub(crate) async fn authenticate_stored(
    state: &AppState,
    hash: &str,
) -> Result<Authenticated, ApiError> {
    let record = state
        .engine
        .token_by_hash(hash)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the bearer token is not valid"))?;
    if let Some(refusal) = refusal(&record, state.engine.now(), &state.tokens.server_run) {
        return Err(ApiError::unauthorized(refusal));
    }
    let role = Role::from_str(&record.role).map_err(|problem| {
        ApiError::internal(format!("stored token of user {:?}: {problem}", record.user))
    })?;
    Ok(Authenticated {
        caller: Caller {
            user: record.user,
            groups: record.groups,
            role,
        },
        token_id: Some(record.id),
        token_hash: Some(record.hash),
        expires_at: record.expires_at,
    })
}

/// Why a stored token is not accepted now, if it is not: revoked, expired, or a demo
/// token of another server run (the sandbox that made it has ended).
fn refusal(record: &TokenRecord, now: DateTime<Utc>, server_run: &str) -> Option<&'static str> {
    if record.revoked_at.is_some() {
        Some("the bearer token was revoked")
    } else if record
        .expires_at
        .is_some_and(|expires_at| expires_at <= now)
    {
        Some("the bearer token has expired")
    } else if record
        .server_run
        .as_deref()
        .is_some_and(|run| run != server_run)
    {
        Some("the bearer token was a sandbox demo token of a server run that has ended")
    } else {
        None
    }
}

/// Middleware around the whole router, so that an anonymous caller learns nothing of the
/// API's shape, not even which methods a path serves:
/// - a request under `/api/v1` with a method the API never serves (`OPTIONS`, `TRACE`,
///   any other) needs a valid token before routing (then 405 with `allow`);
/// - a 401 carries no `allow` header (axum adds one to every answer of a path whose
///   method is not served, after any middleware inside the router).
///
/// Known methods are left to `authorize`, which knows the route.
pub(crate) async fn guard_anonymous(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let under_api = request
        .uri()
        .path()
        .strip_prefix(API_PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if under_api && Verb::of(request.method()).is_none() {
        // Anonymous callers learn nothing of the routes; an authenticated one gets the
        // router's answer (405 with `Allow`, or 404), with our error body on a 405.
        authenticate(&state, request.headers()).await?;
        let response = next.run(request).await;
        if response.status() != axum::http::StatusCode::METHOD_NOT_ALLOWED {
            return Ok(response);
        }
        let mut refusal = ApiError::method_not_allowed().into_response();
        if let Some(allow) = response.headers().get(header::ALLOW) {
            refusal.headers_mut().insert(header::ALLOW, allow.clone());
        }
        return Ok(refusal);
    }
    let mut response = next.run(request).await;
    if response.status() == axum::http::StatusCode::UNAUTHORIZED {
        response.headers_mut().remove(header::ALLOW);
    }
    Ok(response)
}

/// Middleware on every matched route of `/api/v1`: applies the policy.
///
/// Order: the route's rule is looked up first; a signed route (webhooks) goes straight
/// to its handler; otherwise the token is checked (401), then the role (403). A method
/// the path does not serve is 405 once authenticated, and a served route without a rule
/// is refused with 500 (a bug that tests catch).
pub(crate) async fn authorize(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let full_path = matched
        .as_ref()
        .map(MatchedPath::as_str)
        .unwrap_or_default();
    let path = full_path.strip_prefix(API_PREFIX).unwrap_or(full_path);
    let roles = match policy::decide(request.method(), path) {
        Decision::Rule(Access::Signed) => return Ok(next.run(request).await),
        Decision::Rule(Access::Roles(roles)) => roles,
        Decision::MethodNotAllowed => {
            authenticate(&state, request.headers()).await?;
            return Err(ApiError::method_not_allowed());
        }
        Decision::Missing => {
            return Err(ApiError::internal(format!(
                "route {} {full_path} has no rule in the access policy",
                request.method()
            )));
        }
    };
    let caller = authenticate(&state, request.headers()).await?;
    if !roles.contains(&caller.role) {
        let allowed: Vec<&str> = roles.iter().map(|role| role.as_str()).collect();
        return Err(ApiError::forbidden(format!(
            "role {} may not {} {full_path}; allowed: {}",
            caller.role,
            request.method(),
            allowed.join(", ")
        )));
    }
    // A test may act as another caller once authenticated (`acting_as`); the override is
    // a request extension, which no client can set.
    let caller = match request.extensions().get::<CallerOverride>() {
        Some(named) => named.0.clone(),
        None => caller,
    };
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let missing = || ApiError::unauthorized("missing token: send `Authorization: Bearer <token>`");
    let value = headers.get(header::AUTHORIZATION).ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| missing())?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(missing)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(missing());
    }
    Ok(token)
}

/// Whether `presented` equals `expected`, in time that depends on neither.
///
/// Both are hashed first so that the constant-time comparison always sees 32 bytes and
/// does not reveal the expected token's length.
fn token_matches(presented: &str, expected: &str) -> bool {
    secret_matches(presented.as_bytes(), expected.as_bytes())
}

/// [`token_matches`] for any bytes (webhook shared secrets).
pub(crate) fn secret_matches(presented: &[u8], expected: &[u8]) -> bool {
    let presented = Sha256::digest(presented);
    let expected = Sha256::digest(expected);
    presented.ct_eq(&expected).into()
}

/// A caller that a layer outside the token check names for every request, for tests that
/// act as users other than `admin` (the token must still be valid; clients cannot set
/// request extensions, so this is reachable from Rust code only).
#[derive(Debug, Clone)]
pub struct CallerOverride(pub Caller);

/// Wraps `router` (an `app`) so that every request acts as `caller`. For tests.
pub fn acting_as(router: Router, caller: Caller) -> Router {
    router.layer(middleware::from_fn(
        move |mut request: Request, next: Next| {
            let caller = caller.clone();
            async move {
                request.extensions_mut().insert(CallerOverride(caller));
                let response: Response = next.run(request).await;
                response
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(authorization).unwrap(),
        );
        headers
    }

    #[test]
    fn bearer_token_is_read_case_insensitively() {
        assert_eq!(bearer_token(&headers("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(&headers("bearer  abc ")).unwrap(), "abc");
    }

    #[test]
    fn other_schemes_and_empty_tokens_are_refused() {
        for value in ["Basic abc", "Bearer", "Bearer   ", "abc"] {
            let error = bearer_token(&headers(value)).unwrap_err();
            assert_eq!(error.code(), "unauthorized", "{value:?}");
        }
        assert_eq!(
            bearer_token(&HeaderMap::new()).unwrap_err().code(),
            "unauthorized"
        );
    }

    #[test]
    fn roles_read_back_from_their_names() {
        for role in Role::ALL {
            assert_eq!(Role::from_str(role.as_str()), Ok(role));
            assert_eq!(
                serde_json::to_value(role).unwrap(),
                serde_json::json!(role.as_str())
            );
        }
        let error = Role::from_str("Admin").unwrap_err();
        assert!(error.contains("\"Admin\""), "{error}");
    }

    #[test]
    fn generated_tokens_are_prefixed_random_and_hashed_to_hex() {
        let first = generate_token();
        let second = generate_token();
        assert!(first.starts_with(TOKEN_PREFIX));
        assert_eq!(first.len(), TOKEN_PREFIX.len() + 64);
        assert_ne!(first, second);
        let hash = token_hash(&first);
        assert_eq!(hash.len(), 64);
        assert!(
            hash.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert!(!hash.contains(&first[TOKEN_PREFIX.len()..]));
        assert_eq!(token_hash(&first), hash);
    }

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(token_matches("secret", "secret"));
        assert!(!token_matches("secret", "secreT"));
        assert!(!token_matches("secre", "secret"));
        assert!(!token_matches("", "secret"));
    }
}
