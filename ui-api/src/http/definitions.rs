//! The definition routes (DESIGN.md §5): deploy (`POST /definitions`), the list of
//! definitions, and each definition's versions.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use gridflow_core::DefinitionId;
use gridflow_runtime::DefinitionView;

use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{ApiPath, RawBody};
use crate::http::openapi::{self, ErrorBody};
use crate::http::paging::{List, Page};
use crate::http::state::AppState;

/// `{id, version}` of a deploy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeployResponse {
    /// Definition id.
    pub id: String,
    /// The version now current.
    pub version: u32,
}

/// Deploy a definition (YAML or JSON): 201 for a new version, 200 when unchanged.
#[utoipa::path(
    post,
    path = "/definitions",
    tag = "definitions",
    request_body(content = String, content_type = "application/yaml", description = "The definition, as YAML or JSON"),
    responses(
        (status = 201, description = "A new version was stored", body = DeployResponse),
        (status = 200, description = "The latest version has this content already", body = DeployResponse),
        (status = 422, description = "The definition is invalid; every problem is listed", body = ErrorBody),
    )
)]
pub(crate) async fn deploy(
    State(state): State<AppState>,
    caller: Caller,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<DeployResponse>), ApiError> {
    let source = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the definition is not UTF-8 text"))?;
    let deployment = state.engine.deploy_as(source, &caller.user).await?;
    let status = if deployment.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(DeployResponse {
            id: deployment.id,
            version: deployment.version,
        }),
    ))
}

/// List definitions (latest version of each), by id, a page at a time.
#[utoipa::path(
    get,
    path = "/definitions",
    tag = "definitions",
    params(
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = inline(Option<crate::http::openapi_params::PageSize>), Query, description = "Page size, 1 to `limits.max_page_size` (500 by default; default 50)"),
    ),
    responses((status = 200, description = "One page of definitions", body = List<openapi::Definition>))
)]
pub(crate) async fn list_definitions(
    State(state): State<AppState>,
    page: Page,
) -> Result<Json<List<DefinitionView>>, ApiError> {
    // Definitions are few (one row per id): the page is cut from the whole list, ordered
    // by id, and the cursor is the last id of the page.
    let definitions = state.engine.list_definitions().await?;
    Ok(Json(page.cut_by_key(definitions, |definition| {
        definition.id.as_str()
    })))
}

/// The latest version of a definition.
#[utoipa::path(
    get,
    path = "/definitions/{definition_id}",
    tag = "definitions",
    params(("definition_id" = String, Path, description = "Definition id")),
    responses(
        (status = 200, description = "The latest version", body = openapi::Definition),
        (status = 404, description = "No such definition", body = ErrorBody),
    )
)]
pub(crate) async fn latest_definition(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DefinitionView>, ApiError> {
    Ok(Json(
        state
            .engine
            .definition(&DefinitionId::from(id), None)
            .await?,
    ))
}

/// Every version of a definition, oldest first, a page at a time.
#[utoipa::path(
    get,
    path = "/definitions/{definition_id}/versions",
    tag = "definitions",
    params(
        ("definition_id" = String, Path, description = "Definition id"),
        ("cursor" = inline(Option<crate::http::openapi_params::VersionCursor>), Query, description = "`next_cursor` of the previous page"),
        ("limit" = inline(Option<crate::http::openapi_params::PageSize>), Query, description = "Page size, 1 to `limits.max_page_size` (500 by default; default 50)"),
    ),
    responses(
        (status = 200, description = "One page of versions", body = List<openapi::Definition>),
        (status = 404, description = "No such definition", body = ErrorBody),
    )
)]
pub(crate) async fn definition_versions(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    page: Page,
) -> Result<Json<List<DefinitionView>>, ApiError> {
    let after_version = page
        .cursor
        .as_deref()
        .map(|cursor| {
            cursor.parse::<u32>().map_err(|_| {
                ApiError::bad_parameter("cursor", format!("{cursor:?} is not a version cursor"))
            })
        })
        .transpose()?;
    let versions = state
        .engine
        .definition_versions(&DefinitionId::from(id))
        .await?;
    Ok(Json(page.cut(
        versions,
        |definition| after_version.is_none_or(|after| definition.version > after),
        |definition| definition.version.to_string(),
    )))
}

/// One version of a definition.
#[utoipa::path(
    get,
    path = "/definitions/{definition_id}/versions/{version}",
    tag = "definitions",
    params(
        ("definition_id" = String, Path, description = "Definition id"),
        ("version" = u32, Path, description = "Version, from 1"),
    ),
    responses(
        (status = 200, description = "That version", body = openapi::Definition),
        (status = 404, description = "No such definition or version", body = ErrorBody),
    )
)]
pub(crate) async fn definition_version(
    State(state): State<AppState>,
    ApiPath((id, version)): ApiPath<(String, u32)>,
) -> Result<Json<DefinitionView>, ApiError> {
    Ok(Json(
        state
            .engine
            .definition(&DefinitionId::from(id), Some(version))
            .await?,
    ))
}
