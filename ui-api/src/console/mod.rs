//! The console (issue 15, docs/design/console.md): server-rendered pages at `/` for the
//! people gridflow serves, in the same binary as the API.
//!
//! - [`session`]: sign-in with a token, the session cookie, CSRF tokens, sign-out;
//! - [`inbox`]: the approver's inbox, an approval's page and its decision form;
//! - [`form`]: the decision form generated from an approval's JSON Schema, and back;
//! - [`page`]: the askama templates (`ui-api/templates/console/`), the error pages.
//!
//! Page handlers call the same [`gridflow_runtime::Engine`] methods as the API's
//! handlers, never the API over HTTP, and [`crate::http::policy::RULES`] decides who may
//! use a page through the API route it stands for (`allowed`): one table for both.
//! Every response carries the headers of `security_headers`.

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};

use crate::http::policy::{self, Access, Decision};
use crate::http::state::AppState;

pub mod form;
pub mod inbox;
pub mod page;
pub mod session;

pub use session::ConsoleState;

use page::Failure;
use session::Session;

/// The sign-in page.
pub const SIGN_IN: &str = "/signin";
/// Sign-out (a form posting here).
pub const SIGN_OUT: &str = "/signout";
/// The approver's inbox.
pub const INBOX: &str = "/inbox";
/// The console's stylesheet.
pub const STYLE: &str = "/console/style.css";

/// The Content Security Policy of every console response: nothing from elsewhere, no
/// inline script or style, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'";

/// The console's routes, with the security headers on every response. Not part of the
/// API router nor of its OpenAPI document.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(session::root))
        .route(SIGN_IN, get(session::sign_in_page).post(session::sign_in))
        .route(SIGN_OUT, post(session::sign_out))
        .route(INBOX, get(inbox::inbox))
        .route("/approvals/{approval_id}", get(inbox::approval_page))
        .route("/approvals/{approval_id}/decide", post(inbox::decide))
        .route(STYLE, get(style))
        .layer(middleware::from_fn(security_headers))
}

/// Middleware on every console route: CSP, `nosniff`, no referrer.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `GET /console/style.css`: the embedded stylesheet.
async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../templates/console/style.css"),
    )
        .into_response()
}

/// Whether the session's role may use the API route `method path` (relative to
/// `/api/v1`) that a page stands for; a 403 page otherwise.
pub(crate) fn allowed(session: &Session, method: &Method, path: &str) -> Result<(), Failure> {
    let roles = match policy::decide(method, path) {
        Decision::Rule(Access::Roles(roles)) => roles,
        // A page standing for a route without a role rule is a bug: refused for everyone.
        _ => &[],
    };
    if roles.contains(&session.caller.role) {
        return Ok(());
    }
    Err(Failure::Forbidden(format!(
        "Your role ({}) may not use this page.",
        session.caller.role
    )))
}

/// A posted console form: its fields in order, `csrf` among them.
pub(crate) struct CsrfForm(pub(crate) Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for CsrfForm {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Form::<Vec<(String, String)>>::from_request(request, state)
            .await
            .map(|Form(fields)| Self(fields))
            .map_err(|rejection| {
                page::problem(
                    StatusCode::BAD_REQUEST,
                    "Bad form",
                    &format!("The form could not be read: {}", rejection.body_text()),
                )
            })
    }
}

impl CsrfForm {
    /// The first value of field `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }

    /// Refuses the form (403, "the form expired") unless it carries the session's CSRF
    /// token of `action`.
    pub(crate) fn check(&self, session: &Session, action: &str) -> Result<(), Failure> {
        match self.get("csrf") {
            Some(token) if session.csrf_matches(action, token) => Ok(()),
            _ => Err(Failure::Expired),
        }
    }
}
