//! `POST /api/v1/tokens` (admin): creates a token for a user, role and groups, stores its
//! hash and returns its text once. Also the sandbox's demo users (DESIGN.md §9).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use gridflow_runtime::Engine;
use gridflow_store::TokenRecord;

use crate::api::AppState;
use crate::auth::{self, Caller, Role};
use crate::error::ApiError;
use crate::extract::ApiJson;

/// The longest user or group name accepted.
const MAX_NAME_LENGTH: usize = 128;

/// Body of `POST /tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The user the token names; recorded as the actor of what the token does.
    pub user: String,
    /// What the token allows.
    pub role: Role,
    /// The user's groups, for approval assignment.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `POST /tokens` → 201: the token, shown this once, and what it names.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// The bearer token. Only its hash is stored: it cannot be shown again.
    pub token: String,
    /// The user it names.
    pub user: String,
    /// What it allows.
    pub role: Role,
    /// The groups it names.
    pub groups: Vec<String>,
}

/// A user or group name: 1 to 128 characters, letters, digits and `-_.@`.
fn check_name(field: &str, name: &str) -> Result<(), gridflow_runtime::Detail> {
    let valid = !name.is_empty()
        && name.chars().count() <= MAX_NAME_LENGTH
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if valid {
        Ok(())
    } else {
        Err(gridflow_runtime::Detail {
            path: field.to_owned(),
            message: format!(
                "{name:?} is not a valid name: use 1 to {MAX_NAME_LENGTH} letters, digits, \
                 '-', '_', '.' or '@'"
            ),
        })
    }
}

/// Checks a request: every problem is listed (422).
fn check(request: &TokenRequest) -> Result<(), ApiError> {
    let mut details = Vec::new();
    if let Err(detail) = check_name("user", &request.user) {
        details.push(detail);
    }
    if request.user == auth::ADMIN_USER || request.user == gridflow_core::event::SYSTEM_ACTOR {
        details.push(gridflow_runtime::Detail {
            path: "user".to_owned(),
            message: format!("{:?} is reserved", request.user),
        });
    }
    for (index, group) in request.groups.iter().enumerate() {
        if let Err(detail) = check_name(&format!("groups[{index}]"), group) {
            details.push(detail);
        }
    }
    if details.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid("the token request is not valid", details))
    }
}

/// Creates and stores a token; returns its text. `created_by` is the acting user.
pub async fn create_token(
    engine: &Engine,
    request: &TokenRequest,
    created_by: &str,
) -> Result<String, ApiError> {
    check(request)?;
    let mut groups = request.groups.clone();
    groups.sort();
    groups.dedup();
    let token = auth::generate_token();
    engine
        .create_token(&TokenRecord {
            hash: auth::token_hash(&token),
            user: request.user.clone(),
            role: request.role.as_str().to_owned(),
            groups: groups.clone(),
            created_at: engine.now(),
            created_by: created_by.to_owned(),
        })
        .await?;
    // The server's audit log names who created which token (never the token itself).
    engine
        .record_token_created(&request.user, request.role.as_str(), &groups, created_by)
        .await?;
    tracing::info!(user = %request.user, role = %request.role, %created_by, "token created");
    Ok(token)
}

/// Create a token (admin). The token is in the response only: store it now.
#[utoipa::path(
    post,
    path = "/tokens",
    tag = "tokens",
    request_body = TokenRequest,
    responses(
        (status = 201, description = "The token, shown once", body = TokenResponse),
        (status = 422, description = "Invalid user, role or group", body = crate::openapi::ErrorBody),
    )
)]
pub(crate) async fn post_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<TokenRequest>,
) -> Result<(StatusCode, Json<TokenResponse>), ApiError> {
    let token = create_token(&state.engine, &request, &caller.user).await?;
    let mut groups = request.groups;
    groups.sort();
    groups.dedup();
    Ok((
        StatusCode::CREATED,
        Json(TokenResponse {
            token,
            user: request.user,
            role: request.role,
            groups,
        }),
    ))
}

/// The demo users of `serve --sandbox` (DESIGN.md §9): an analyst, two approvers in group
/// `brand-managers`, an auditor.
pub fn sandbox_users() -> Vec<TokenRequest> {
    let user = |name: &str, role: Role, groups: &[&str]| TokenRequest {
        user: name.to_owned(),
        role,
        groups: groups.iter().map(|group| (*group).to_owned()).collect(),
    };
    vec![
        user("ana", Role::Analyst, &[]),
        user("bob", Role::Approver, &["brand-managers"]),
        user("bea", Role::Approver, &["brand-managers"]),
        user("otto", Role::Auditor, &[]),
    ]
}

/// Creates a fresh token for each sandbox user; returns `(user, token)` pairs to print
/// once. Tokens of earlier runs stay valid (the sandbox database is the user's).
pub async fn create_sandbox_tokens(
    engine: &Engine,
) -> Result<Vec<(TokenRequest, String)>, ApiError> {
    let mut created = Vec::new();
    for request in sandbox_users() {
        let token = create_token(engine, &request, gridflow_core::event::SYSTEM_ACTOR).await?;
        created.push((request, token));
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(user: &str, groups: &[&str]) -> TokenRequest {
        TokenRequest {
            user: user.to_owned(),
            role: Role::Approver,
            groups: groups.iter().map(|group| (*group).to_owned()).collect(),
        }
    }

    #[test]
    fn every_bad_name_is_listed_with_its_path() {
        let error = check(&request("", &["ok", "has space", "x/y"])).unwrap_err();
        assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let paths: Vec<&str> = error.details().iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["user", "groups[1]", "groups[2]"]);
    }

    #[test]
    fn reserved_users_are_refused_and_plain_names_accepted() {
        assert!(check(&request("admin", &[])).is_err());
        assert!(check(&request("system", &[])).is_err());
        assert!(check(&request("alice.smith@example.com", &["brand-managers"])).is_ok());
    }

    #[test]
    fn sandbox_has_an_analyst_two_brand_manager_approvers_and_an_auditor() {
        let users = sandbox_users();
        let with_role = |role| users.iter().filter(|user| user.role == role).count();
        assert_eq!(with_role(Role::Analyst), 1);
        assert_eq!(with_role(Role::Auditor), 1);
        assert_eq!(with_role(Role::Admin), 0);
        let approvers: Vec<_> = users
            .iter()
            .filter(|user| user.role == Role::Approver)
            .collect();
        assert_eq!(approvers.len(), 2);
        assert!(
            approvers
                .iter()
                .all(|user| user.groups == ["brand-managers"])
        );
        for user in &users {
            assert!(check(user).is_ok(), "{user:?}");
        }
    }
}
