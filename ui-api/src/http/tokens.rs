//! API tokens (admin only): `POST /api/v1/tokens` creates one for a user, role and groups,
//! stores its hash and returns its text once; `GET /api/v1/tokens` lists them (never the
//! text or the hash); `DELETE /api/v1/tokens/{token_id}` revokes one. Creation and
//! revocation are recorded in the server's audit log. Also the sandbox's demo users
//! (DESIGN.md §9), in `sandbox_tokens`.
//!
//! Every token expires: after `expires_in`, or the configured default lifetime
//! (`[tokens] default_lifetime` in `gridflow.toml`). `auth::authenticate` refuses expired
//! and revoked tokens with 401.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use gridflow_runtime::{Detail, Engine};
use gridflow_store::TokenRecord;

use crate::http::auth::{self, Caller};
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::paging::{List, Page};
use crate::http::role::Role;
use crate::http::state::{AppState, TokenSettings};

/// The longest user or group name accepted.
const MAX_NAME_LENGTH: usize = 128;

/// User names that tokens may not take, in any letter case: the admin token's user and
/// the actor of the engine's own events.
pub const RESERVED_USERS: [&str; 2] = [auth::ADMIN_USER, gridflow_core::event::SYSTEM_ACTOR];

/// Body of `POST /tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The user the token names; recorded as the actor of what the token does.
    #[schema(min_length = 1, max_length = 128, pattern = r"^[\w.@-]+$")]
    pub user: String,
    /// What the token allows.
    pub role: Role,
    /// The user's groups, for approval assignment.
    #[serde(default)]
    #[schema(inline, value_type = Vec<GroupName>)]
    pub groups: Vec<String>,
    /// How long the token is valid: seconds, or a duration such as `"30d"` or `"12h"`.
    /// The server's default lifetime when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::http::openapi_params::lifetime, example = "30d")]
    pub expires_in: Option<Value>,
}

/// A group name (the document's schema of `groups` items).
#[derive(ToSchema)]
#[schema(min_length = 1, max_length = 128, pattern = r"^[\w.@-]+$")]
#[allow(dead_code, unreachable_pub)]
pub struct GroupName(String);

/// `POST /tokens` → 201: the token, shown this once, and what it names.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// The bearer token. Only its hash is stored: it cannot be shown again.
    pub token: String,
    /// The token's id, for listing and revoking it.
    pub id: String,
    /// The user it names.
    pub user: String,
    /// What it allows.
    pub role: Role,
    /// The groups it names.
    pub groups: Vec<String>,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
}

/// A stored token as `GET /tokens` shows it: never its text or its hash.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    /// The token's id.
    pub id: String,
    /// The user it names.
    pub user: String,
    /// What it allows.
    pub role: Role,
    /// The groups it names.
    pub groups: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Who created it (`system` for the sandbox's demo tokens).
    pub created_by: String,
    /// When it stops being accepted; `null` for a token made before tokens expired.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether it was revoked.
    pub revoked: bool,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// A demo token of `serve --sandbox`, valid only while the server run that made it.
    pub sandbox: bool,
}

impl TokenView {
    fn of(record: &TokenRecord) -> Result<Self, ApiError> {
        let role = record.role.parse::<Role>().map_err(|problem| {
            ApiError::internal(format!("stored token {}: {problem}", record.id))
        })?;
        Ok(Self {
            id: record.id.clone(),
            user: record.user.clone(),
            role,
            groups: record.groups.clone(),
            created_at: record.created_at,
            created_by: record.created_by.clone(),
            expires_at: record.expires_at,
            revoked: record.revoked_at.is_some(),
            revoked_at: record.revoked_at,
            sandbox: record.server_run.is_some(),
        })
    }
}

/// A user or group name: 1 to 128 characters, ASCII letters, digits and `-_.@`: exactly
/// what the OpenAPI document's pattern `^[\w.@-]+$` allows (`\w` is ASCII there).
fn check_name(field: &str, name: &str) -> Result<(), Detail> {
    let valid = !name.is_empty()
        && name.chars().count() <= MAX_NAME_LENGTH
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if valid {
        Ok(())
    } else {
        Err(Detail {
            path: field.to_owned(),
            message: format!(
                "{name:?} is not a valid name: use 1 to {MAX_NAME_LENGTH} ASCII letters, digits, \
                 '-', '_', '.' or '@'"
            ),
        })
    }
}

/// The lifetime `expires_in` asks for: whole seconds or a duration text, more than zero
/// and at most `max`.
fn lifetime(expires_in: &Value, max: Duration) -> Result<Duration, String> {
    let requested = match expires_in {
        Value::Number(number) => number
            .as_u64()
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{number} is not a whole number of seconds"))?,
        Value::String(text) => humantime::parse_duration(text)
            .map_err(|error| format!("{text:?} is not a duration such as \"30d\": {error}"))?,
        other => return Err(format!("expected seconds or a duration text, got {other}")),
    };
    if requested.is_zero() {
        return Err("must be more than zero".to_owned());
    }
    if requested > max {
        return Err(format!(
            "{} is longer than the longest lifetime allowed ({}, tokens.max_lifetime)",
            humantime::format_duration(requested),
            humantime::format_duration(max)
        ));
    }
    Ok(requested)
}

/// Checks a request: every problem is listed (422). Returns the token's lifetime.
fn check(request: &TokenRequest, settings: &TokenSettings) -> Result<Duration, ApiError> {
    let mut details = Vec::new();
    if let Err(detail) = check_name("user", &request.user) {
        details.push(detail);
    }
    if RESERVED_USERS
        .iter()
        .any(|reserved| request.user.to_lowercase() == *reserved)
    {
        details.push(Detail {
            path: "user".to_owned(),
            message: format!(
                "{:?} is reserved (as are {}, in any letter case)",
                request.user,
                RESERVED_USERS.join(" and ")
            ),
        });
    }
    for (index, group) in request.groups.iter().enumerate() {
        if let Err(detail) = check_name(&format!("groups[{index}]"), group) {
            details.push(detail);
        }
    }
    let lifetime = match &request.expires_in {
        None => settings.default_lifetime,
        Some(expires_in) => match lifetime(expires_in, settings.max_lifetime) {
            Ok(lifetime) => lifetime,
            Err(message) => {
                details.push(Detail {
                    path: "expires_in".to_owned(),
                    message,
                });
                settings.default_lifetime
            }
        },
    };
    if details.is_empty() {
        Ok(lifetime)
    } else {
        Err(ApiError::invalid("the token request is not valid", details))
    }
}

/// A created token: its text (shown once) and what is stored of it.
#[derive(Debug)]
pub struct Created {
    /// The bearer token.
    pub token: String,
    /// The stored record (hash, never the text).
    pub record: TokenRecord,
}

/// Creates and stores a token, and records it in the audit log. `created_by` is the
/// acting user; `server_run` binds a demo token to this server run.
pub async fn create_token(
    engine: &Engine,
    settings: &TokenSettings,
    request: &TokenRequest,
    created_by: &str,
    server_run: Option<&str>,
) -> Result<Created, ApiError> {
    let lifetime = check(request, settings)?;
    let mut groups = request.groups.clone();
    groups.sort();
    groups.dedup();
    let token = auth::generate_token();
    let created_at = engine.now();
    let expires_at = chrono::Duration::from_std(lifetime)
        .ok()
        .and_then(|lifetime| created_at.checked_add_signed(lifetime))
        .ok_or_else(|| ApiError::internal(format!("token lifetime {lifetime:?} overflows")))?;
    let record = TokenRecord {
        id: uuid::Uuid::now_v7().to_string(),
        hash: auth::token_hash(&token),
        user: request.user.clone(),
        role: request.role.as_str().to_owned(),
        groups,
        created_at,
        created_by: created_by.to_owned(),
        expires_at: Some(expires_at),
        revoked_at: None,
        server_run: server_run.map(str::to_owned),
    };
    engine.create_token(&record).await?;
    // The server's audit log names who created which token (never the token itself).
    engine.record_token_created(&record, created_by).await?;
    tracing::info!(id = %record.id, user = %request.user, role = %request.role, %created_by, %expires_at, "token created");
    Ok(Created { token, record })
}

/// Revokes a token and records it in the audit log (the first time only).
pub async fn revoke_token(engine: &Engine, id: &str, by: &str) -> Result<TokenRecord, ApiError> {
    let (record, newly) = engine.revoke_token(id).await?;
    if newly {
        engine.record_token_revoked(&record, by).await?;
        tracing::info!(id = %record.id, user = %record.user, %by, "token revoked");
    }
    Ok(record)
}

/// Create a token (admin). The token is in the response only: store it now.
#[utoipa::path(
    post,
    path = "/tokens",
    tag = "tokens",
    request_body = TokenRequest,
    responses(
        (status = 201, description = "The token, shown once", body = TokenResponse),
        (status = 422, description = "Invalid user, role, group or lifetime", body = crate::http::openapi::ErrorBody),
    )
)]
pub(crate) async fn post_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<TokenRequest>,
) -> Result<(StatusCode, Json<TokenResponse>), ApiError> {
    let created = create_token(&state.engine, &state.tokens, &request, &caller.user, None).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenResponse {
            token: created.token,
            id: created.record.id,
            user: request.user,
            role: request.role,
            groups: created.record.groups,
            expires_at: created
                .record
                .expires_at
                .unwrap_or(created.record.created_at),
        }),
    ))
}

/// List tokens (admin), oldest first, revoked and expired ones included. Never shows a
/// token's text or hash.
#[utoipa::path(
    get,
    path = "/tokens",
    tag = "tokens",
    params(
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = inline(Option<crate::http::openapi_params::PageSize>), Query, description = "Page size, 1 to `limits.max_page_size` (500 by default; default 50)"),
    ),
    responses(
        (status = 200, description = "One page of tokens", body = List<TokenView>),
        (status = 400, description = "A parameter is not valid", body = crate::http::openapi::ErrorBody),
    )
)]
pub(crate) async fn list_tokens(
    State(state): State<AppState>,
    page: Page,
) -> Result<Json<List<TokenView>>, ApiError> {
    let mut records = state.engine.list_tokens().await?;
    // Tokens are few: the page is cut from the whole list, ordered by id (UUIDv7, so in
    // order of creation), and the cursor is the last id of the page.
    records.sort_by(|a, b| a.id.cmp(&b.id));
    let List { items, next_cursor } = page.cut_by_key(records, |record| record.id.as_str());
    Ok(Json(List {
        items: items.iter().map(TokenView::of).collect::<Result<_, _>>()?,
        next_cursor,
    }))
}

/// Revoke a token (admin): it is refused (401) from now on. Revoking a revoked token
/// changes nothing.
#[utoipa::path(
    delete,
    path = "/tokens/{token_id}",
    tag = "tokens",
    params(("token_id" = String, Path, description = "Token id")),
    responses(
        (status = 200, description = "The revoked token", body = TokenView),
        (status = 404, description = "No such token", body = crate::http::openapi::ErrorBody),
    )
)]
pub(crate) async fn delete_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TokenView>, ApiError> {
    let record = revoke_token(&state.engine, &id, &caller.user).await?;
    Ok(Json(TokenView::of(&record)?))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(user: &str, groups: &[&str]) -> TokenRequest {
        TokenRequest {
            user: user.to_owned(),
            role: Role::Approver,
            groups: groups.iter().map(|group| (*group).to_owned()).collect(),
            expires_in: None,
        }
    }

    fn settings() -> TokenSettings {
        TokenSettings {
            default_lifetime: Duration::from_secs(3600),
            max_lifetime: Duration::from_secs(7200),
            server_run: std::sync::Arc::from("run"),
        }
    }

    #[test]
    fn every_bad_name_is_listed_with_its_path() {
        let error = check(&request("", &["ok", "has space", "x/y"]), &settings()).unwrap_err();
        assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let paths: Vec<&str> = error.details().iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["user", "groups[1]", "groups[2]"]);
    }

    #[test]
    fn names_are_ascii_as_the_documented_pattern_says() {
        // Schemathesis sent `Ì`, which the document's `^[\w.@-]+$` refuses (`\w` is ASCII
        // in JSON Schema) and the server had accepted.
        let error = check(&request("\u{cc}", &["Zo\u{eb}"]), &settings()).unwrap_err();
        let paths: Vec<&str> = error.details().iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["user", "groups[0]"]);
        assert!(check(&request("zoe.m@example", &["brand-managers"]), &settings()).is_ok());
    }

    #[test]
    fn reserved_users_are_refused_in_any_case_and_plain_names_accepted() {
        for user in [
            "admin", "Admin", "ADMIN", "system", "System", "SYSTEM", "aDmIn",
        ] {
            let error = check(&request(user, &[]), &settings()).unwrap_err();
            assert_eq!(error.details()[0].path, "user", "{user}");
            assert!(error.details()[0].message.contains("reserved"), "{user}");
        }
        assert!(
            check(
                &request("alice.smith@example.com", &["brand-managers"]),
                &settings()
            )
            .is_ok()
        );
        assert!(check(&request("administrator", &[]), &settings()).is_ok());
    }

    #[test]
    fn lifetime_is_the_default_or_expires_in_within_the_maximum() {
        let settings = settings();
        assert_eq!(
            check(&request("bob", &[]), &settings).unwrap(),
            Duration::from_secs(3600)
        );
        for (expires_in, seconds) in [(json!(60), 60), (json!("30m"), 1800), (json!("2h"), 7200)] {
            let asked = TokenRequest {
                expires_in: Some(expires_in.clone()),
                ..request("bob", &[])
            };
            assert_eq!(
                check(&asked, &settings).unwrap(),
                Duration::from_secs(seconds),
                "{expires_in}"
            );
        }
        for expires_in in [
            json!(0),
            json!(-5),
            json!(1.5),
            json!("soon"),
            json!("3h"),
            json!(true),
        ] {
            let asked = TokenRequest {
                expires_in: Some(expires_in.clone()),
                ..request("bob", &[])
            };
            let error = check(&asked, &settings).unwrap_err();
            assert_eq!(error.details()[0].path, "expires_in", "{expires_in}");
        }
    }
}
