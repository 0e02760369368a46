//! Bearer-token authentication of `/api/v1`.
//!
//! For now there is one token, the admin token given to `gridflow serve`, and it names the
//! user `admin`; stored tokens with roles and groups come later. The token is compared in
//! constant time and is never logged: nothing here logs the request's headers.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::AppState;
use crate::error::ApiError;

/// The user that the admin token names; the actor recorded in history for its requests.
pub const ADMIN_USER: &str = "admin";

/// What a token allows (DESIGN.md §5): analysts deploy, start, cancel and read; approvers
/// decide the approvals assigned to them or their groups; auditors read history, replay,
/// verify and export; admins do everything, tokens included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Deploys definitions, starts, cancels and reads instances.
    Analyst,
    /// Decides the approvals assigned to the user or one of the user's groups.
    Approver,
    /// Reads history, replays, verifies and exports.
    Auditor,
    /// Everything, including creating tokens.
    Admin,
}

/// The authenticated caller of a request, put into its extensions by the token middleware.
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
        // Every route that asks for a caller sits behind `require_token`; a route outside
        // it that asks anyway is refused rather than served anonymously.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("this request needs a bearer token"))
    }
}

/// Middleware: refuses requests without a valid `Authorization: Bearer <token>` (401).
pub(crate) async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = bearer_token(request.headers())?;
    if !token_matches(presented, &state.admin_token) {
        return Err(ApiError::unauthorized("the bearer token is not valid"));
    }
    // A test may name another caller from outside (`approvals::acting_as`).
    let caller = match request
        .extensions()
        .get::<crate::approvals::CallerOverride>()
    {
        Some(named) => named.0.clone(),
        None => Caller {
            user: ADMIN_USER.to_owned(),
            groups: Vec::new(),
            role: Role::Admin,
        },
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
    let presented = Sha256::digest(presented.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    presented.ct_eq(&expected).into()
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
    fn tokens_match_only_when_equal() {
        assert!(token_matches("secret", "secret"));
        assert!(!token_matches("secret", "secreT"));
        assert!(!token_matches("secre", "secret"));
        assert!(!token_matches("", "secret"));
    }
}
