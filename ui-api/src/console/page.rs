//! The console's pages: one askama template each (`ui-api/templates/console/`, compiled
//! into the binary, every value HTML-escaped), and `Failure`, the pages of what went
//! wrong.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::console::SIGN_IN;
use crate::console::form::Field;

/// A page rendered with `status`; a plain 500 page if the template fails.
pub(crate) fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "a console page does not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>Error</title><p>This page could not be shown.</p>"),
            )
                .into_response()
        }
    }
}

/// The sign-in page.
#[derive(Template)]
#[template(path = "console/signin.html")]
struct SignIn {
    message: Option<String>,
}

/// The sign-in page, with a message when the last try was refused.
pub(crate) fn sign_in(status: StatusCode, message: Option<String>) -> Response {
    render(status, &SignIn { message })
}

/// A page that says only what went wrong.
#[derive(Template)]
#[template(path = "console/problem.html")]
struct Problem<'a> {
    title: &'a str,
    message: &'a str,
}

/// A page saying `message` under `title`, with `status`.
pub(crate) fn problem(status: StatusCode, title: &str, message: &str) -> Response {
    render(status, &Problem { title, message })
}

/// The signed-in user shown in the header of each page, and the sign-out form's token.
pub struct Header {
    /// The user.
    pub user: String,
    /// The role.
    pub role: String,
    /// The CSRF token of the sign-out form.
    pub sign_out_csrf: String,
}

/// One row of the inbox.
pub struct InboxRow {
    /// The approval's id.
    pub id: String,
    /// Its rendered title.
    pub title: String,
    /// Its instance.
    pub instance: String,
    /// Its step.
    pub step: String,
    /// When it is due, or empty.
    pub due: String,
    /// Its escalation level.
    pub level: u32,
}

/// The inbox.
#[derive(Template)]
#[template(path = "console/inbox.html")]
pub struct Inbox {
    /// The header.
    pub header: Header,
    /// The pending approvals.
    pub rows: Vec<InboxRow>,
}

/// One artifact an approval binds.
pub struct Artifact {
    /// Its name (file name, else asset id).
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its SHA-256.
    pub sha256: String,
}

/// One decision taken so far.
pub struct DecisionRow {
    /// Who.
    pub user: String,
    /// `approve`, `reject`, `delegate`.
    pub decision: String,
    /// Their comment.
    pub comment: String,
    /// When.
    pub at: String,
}

/// What the page says after a post: success or the engine's refusal.
pub struct Notice {
    /// `ok` or `error` (the CSS class).
    pub class: &'static str,
    /// The message.
    pub message: String,
    /// A 422's details: `(path, message)`.
    pub details: Vec<(String, String)>,
}

/// An approval's page.
#[derive(Template)]
#[template(path = "console/approval.html")]
pub struct Approval {
    /// The header.
    pub header: Header,
    /// The approval's id.
    pub id: String,
    /// Its rendered title.
    pub title: String,
    /// Its status.
    pub status: String,
    /// Its instance, its step.
    pub instance: String,
    /// Its step.
    pub step: String,
    /// When it is due, or empty.
    pub due: String,
    /// Its escalation level.
    pub level: u32,
    /// The instance's input, as indented JSON.
    pub input: String,
    /// The bound artifacts.
    pub artifacts: Vec<Artifact>,
    /// The decisions so far.
    pub decisions: Vec<DecisionRow>,
    /// The form's fields; shown while the approval is pending.
    pub fields: Vec<Field>,
    /// Where the form posts.
    pub action: String,
    /// The form's CSRF token.
    pub csrf: String,
    /// After a post: what happened.
    pub notice: Option<Notice>,
}

/// What went wrong on a page, as a page.
#[derive(Debug)]
pub(crate) enum Failure {
    /// No live session: to the sign-in page.
    SignedOut,
    /// A form without a valid CSRF token.
    Expired,
    /// The role or the assignment does not allow it.
    Forbidden(String),
    /// Nothing there.
    NotFound(String),
    /// Anything else (its cause is logged, not shown).
    Internal(String),
}

impl From<crate::http::ApiError> for Failure {
    fn from(error: crate::http::ApiError) -> Self {
        match error.status() {
            StatusCode::UNAUTHORIZED => Failure::SignedOut,
            StatusCode::FORBIDDEN => Failure::Forbidden(error.message().to_owned()),
            StatusCode::NOT_FOUND => Failure::NotFound(error.message().to_owned()),
            _ => Failure::Internal(error.message().to_owned()),
        }
    }
}

impl From<gridflow_runtime::Error> for Failure {
    fn from(error: gridflow_runtime::Error) -> Self {
        Failure::from(crate::http::ApiError::from(error))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::SignedOut => Redirect::to(SIGN_IN).into_response(),
            Failure::Expired => problem(
                StatusCode::FORBIDDEN,
                "This form has expired",
                "The form was sent without a valid security token (it expired, or it came \
                 from another page). Open the page again and send it from there.",
            ),
            Failure::Forbidden(message) => problem(StatusCode::FORBIDDEN, "Not allowed", &message),
            Failure::NotFound(message) => problem(StatusCode::NOT_FOUND, "Not found", &message),
            Failure::Internal(cause) => {
                tracing::error!(%cause, "a console page failed");
                problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The server could not answer this page; the error is in its log.",
                )
            }
        }
    }
}
