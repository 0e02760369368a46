//! The HTTP API (DESIGN.md §5): `/api/v1` behind bearer tokens and the access policy,
//! `/healthz` and `/metrics` without. This module assembles the router and its OpenAPI
//! document; every other file here is one room below it:
//!
//! - [`state`]: [`AppState`] and [`API_PREFIX`], which everything reads;
//! - [`paging`]: the one paging extractor and [`paging::List`];
//! - [`error`], [`extract`]: [`ApiError`], the one error body, and the extractors whose
//!   rejections are [`ApiError`]s;
//! - [`auth`], [`role`], [`policy`]: bearer tokens and the one table of which role may
//!   call which route; [`availability`]: 503 at once while the database is away;
//! - one module per resource: [`definitions`], [`instances`], [`approvals`], [`audit`],
//!   [`recovery`] (re-run and migration), [`ledger`] (the distribution ledger),
//!   [`tokens`] (and [`sandbox_tokens`]), [`events`] (inbound webhooks, [`webhook`],
//!   [`event_secrets`]), [`connectors`] (the catalogue), [`metrics`], [`meta`]
//!   (`/healthz`, unknown routes);
//! - [`openapi`], [`openapi_params`]: the document's schemas and its completion from
//!   the policy;
//! - [`serve`]: the HTTP edge (header-read and request timeouts, connection limit).
//!
//! Handlers translate between HTTP and [`gridflow_runtime::Engine`] calls and nothing
//! more: validation, state changes and their conflicts are the engine's, and its errors
//! become responses through [`ApiError`]'s `From` impl. Who may call what is
//! [`policy`]'s, applied by `auth::authorize` before any handler runs.
//!
//! Adding a route: write the handler with a `#[utoipa::path]` attribute in its resource's
//! module, register it in [`api_router`] with `routes!` (one line: router and OpenAPI
//! document at once), and add its rule to [`policy::RULES`] (one line).

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, middleware};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod approvals;
pub mod audit;
pub mod auth;
pub mod availability;
pub mod connectors;
pub mod definitions;
pub mod error;
pub mod event_secrets;
pub mod events;
pub mod extract;
pub mod instances;
pub mod ledger;
pub mod meta;
pub mod metrics;
pub mod openapi;
pub mod openapi_params;
pub mod paging;
pub mod policy;
pub mod recovery;
pub mod role;
pub mod sandbox_clock;
pub mod sandbox_tokens;
pub mod serve;
pub mod state;
pub mod tokens;
pub mod webhook;

pub use error::ApiError;
pub use state::{API_PREFIX, AppState};

/// Every route of `/api/v1`, each registered with its OpenAPI description.
///
/// [`app`] serves it and [`document`] documents it, so the two cannot disagree. One `routes!` per path (handlers of one path share it).
pub fn api_router() -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::new()
        .routes(routes!(definitions::deploy, definitions::list_definitions))
        .routes(routes!(definitions::latest_definition))
        .routes(routes!(definitions::definition_versions))
        .routes(routes!(definitions::definition_version))
        .routes(routes!(instances::start_instance))
        .routes(routes!(instances::list_instances))
        .routes(routes!(instances::instance))
        .routes(routes!(instances::cancel))
        .routes(routes!(instances::retry_step))
        .routes(routes!(instances::history))
        .routes(routes!(tokens::post_token, tokens::list_tokens))
        .routes(routes!(tokens::delete_token))
        .routes(routes!(sandbox_clock::advance_clock))
        .routes(routes!(openapi_json))
        .routes(routes!(connectors::list_connectors))
        // Signed by the source's secret instead of a bearer token (`Access::Signed`).
        .routes(routes!(events::receive))
        .merge(approvals::routes())
        .merge(audit::routes())
        .merge(ledger::routes())
        .merge(recovery::routes());
    OpenApiRouter::new().nest(API_PREFIX, routes)
}

/// The whole HTTP application: `/api/v1` (bearer token and role policy), `/healthz` and
/// `/metrics` (open), and the console's pages (session cookie; [`crate::console`]).
pub fn app(state: AppState) -> Router {
    let (api, _document) = api_router().split_for_parts();
    // A route layer runs after routing, so it knows the matched route and its rule; it
    // covers exactly the API routes, which is why the open routes are added after it.
    let api = api
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ))
        // Outermost: during a database outage nothing below can answer, not even the
        // token check; 503 at once.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            availability::fail_fast,
        ));
    let routed = Router::new()
        .route("/healthz", get(meta::healthz))
        .route("/metrics", get(metrics::metrics))
        .merge(api)
        // The console's pages at `/` (its own session check, CSRF and headers).
        .merge(crate::console::router())
        .fallback(meta::unknown_route)
        .method_not_allowed_fallback(meta::method_not_allowed)
        .with_state(state.clone());
    // The guard wraps the whole router, so it runs before routing and sees the response
    // after axum added `allow` to a 405 path's answer (see `auth::guard_anonymous`).
    Router::new()
        .fallback_service(routed)
        .layer(middleware::from_fn_with_state(state, auth::guard_anonymous))
        .layer(middleware::from_fn(error::log_errors))
}

/// The OpenAPI document of every route that [`app`] serves under `/api/v1`.
pub fn document() -> OpenApi {
    let mut openapi = api_router().into_openapi();
    openapi::describe(&mut openapi);
    openapi
}

/// The whole document, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    serde_json::to_string_pretty(&document()).unwrap_or_else(|error| {
        tracing::error!(%error, "the OpenAPI document cannot be written as JSON");
        String::from("{}")
    })
});

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object))
)]
pub(crate) async fn openapi_json() -> Response {
    let mut response = DOCUMENT.as_str().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
