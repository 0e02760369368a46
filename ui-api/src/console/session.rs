//! Console sessions: sign-in with an API token (checked as a bearer token is, by
//! `auth::authenticate_token`), a session cookie, CSRF tokens on every form, sign-out.
//!
//! Sessions live in memory on this node ([`ConsoleState`]): a restart signs everyone out,
//! and a second node does not know them. Persisting them in the database
//! (`console_session`, docs/design/console.md) is for later.
//!
//! The cookie holds a random 256-bit id; the table keeps only its SHA-256. A session
//! ends at its token's expiry, when its token is revoked (checked on every request), or
//! at sign-out.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::console::page::{self, Failure};
use crate::console::{CsrfForm, INBOX, SIGN_IN};
use crate::http::auth::{self, Caller};
use crate::http::state::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "gridflow_session";

/// One signed-in browser.
#[derive(Clone)]
pub(crate) struct Session {
    /// Who signed in: user, role and groups, as the token names them.
    pub(crate) caller: Caller,
    /// The token's id; `None` for the admin token.
    pub(crate) token_id: Option<String>,
    /// The token's stored hash, to see on each request whether it was revoked.
    token_hash: Option<String>,
    /// The key of this session's CSRF tokens.
    csrf_secret: [u8; 32],
    /// When the session ends: the token's expiry (none for a token that does not expire).
    pub(crate) expires_at: Option<DateTime<Utc>>,
}

impl Session {
    /// The CSRF token of a form posting to `action`: hex HMAC-SHA256 of the path under the
    /// session's secret.
    pub(crate) fn csrf(&self, action: &str) -> String {
        hex::encode(self.mac(action).finalize().into_bytes())
    }

    /// Whether `presented` is the CSRF token of `action` (compared in constant time).
    pub(crate) fn csrf_matches(&self, action: &str, presented: &str) -> bool {
        hex::decode(presented).is_ok_and(|bytes| self.mac(action).verify_slice(&bytes).is_ok())
    }

    fn mac(&self, action: &str) -> Hmac<sha2_hmac::Sha256> {
        let mut mac = <Hmac<sha2_hmac::Sha256> as KeyInit>::new_from_slice(&self.csrf_secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(action.as_bytes());
        mac
    }
}

/// The console's sessions, keyed by the SHA-256 of their ids. Cheap to clone.
#[derive(Clone, Default)]
pub struct ConsoleState {
    sessions: Arc<Mutex<HashMap<String, Session>>>,
}

impl fmt::Debug for ConsoleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither ids nor secrets: only how many sessions there are.
        f.debug_struct("ConsoleState")
            .field("sessions", &self.table().len())
            .finish()
    }
}

impl ConsoleState {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a session for `signed_in`; returns its id (the cookie's value), shown once.
    fn open(&self, signed_in: auth::Authenticated) -> String {
        let id = hex::encode(rand::random::<[u8; 32]>());
        let session = Session {
            caller: signed_in.caller,
            token_id: signed_in.token_id,
            token_hash: signed_in.token_hash,
            csrf_secret: rand::random(),
            expires_at: signed_in.expires_at,
        };
        self.table().insert(id_hash(&id), session);
        id
    }

    fn find(&self, id: &str) -> Option<Session> {
        self.table().get(&id_hash(id)).cloned()
    }

    fn close(&self, id: &str) {
        self.table().remove(&id_hash(id));
    }
}

fn id_hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// The session id the request's cookie carries, if any.
fn cookie_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
}

/// The signed-in session of a request. Without a valid one, a page answers with a
/// redirection to the sign-in page.
pub(crate) struct SignedIn(pub(crate) Session);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        current(state, &parts.headers)
            .await
            .map(SignedIn)
            .ok_or_else(|| Redirect::to(SIGN_IN).into_response())
    }
}

/// The request's live session: known, not expired, its token still valid.
async fn current(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let id = cookie_id(headers)?;
    let session = state.console.find(&id)?;
    let expired = session
        .expires_at
        .is_some_and(|expires_at| expires_at <= state.engine.now());
    let token_valid = match &session.token_hash {
        None => true,
        Some(hash) => auth::authenticate_stored(state, hash).await.is_ok(),
    };
    if expired || !token_valid {
        state.console.close(&id);
        return None;
    }
    Some(session)
}

/// `GET /`: the inbox when signed in, the sign-in page otherwise.
pub(crate) async fn root(State(state): State<AppState>, headers: HeaderMap) -> Redirect {
    match current(&state, &headers).await {
        Some(_) => Redirect::to(INBOX),
        None => Redirect::to(SIGN_IN),
    }
}

/// `GET /signin`.
pub(crate) async fn sign_in_page() -> Response {
    page::sign_in(StatusCode::OK, None)
}

/// The sign-in form's fields.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct SignInForm {
    token: String,
}

/// `POST /signin`: checks the token; a session and its cookie, or the form again with
/// why not. (There is no session yet, so this form alone carries no CSRF token;
/// `SameSite=Strict` keeps other sites' cookies out of it.)
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    axum::Form(form): axum::Form<SignInForm>,
) -> Response {
    match auth::authenticate_token(&state, form.token.trim()).await {
        Ok(signed_in) => {
            let id = state.console.open(signed_in);
            let cookie = format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/");
            with_cookie(Redirect::to(INBOX).into_response(), &cookie)
        }
        Err(error) => page::sign_in(
            StatusCode::UNAUTHORIZED,
            Some(format!("Sign-in refused: {}.", error.message())),
        ),
    }
}

/// `POST /signout`: ends the session and clears the cookie.
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: CsrfForm,
) -> Result<Response, Failure> {
    let SignedIn(session) = SignedIn::from_headers(&state, &headers).await?;
    form.check(&session, crate::console::SIGN_OUT)?;
    if let Some(id) = cookie_id(&headers) {
        state.console.close(&id);
    }
    tracing::info!(
        user = %session.caller.user,
        token_id = session.token_id.as_deref().unwrap_or("admin"),
        "console sign-out"
    );
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    Ok(with_cookie(Redirect::to(SIGN_IN).into_response(), &cookie))
}

impl SignedIn {
    /// [`SignedIn`] of a request whose headers were taken whole.
    pub(crate) async fn from_headers(
        state: &AppState,
        headers: &HeaderMap,
    ) -> Result<Self, Failure> {
        current(state, headers)
            .await
            .map(SignedIn)
            .ok_or(Failure::SignedOut)
    }
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            caller: Caller {
                user: "ann".to_owned(),
                groups: Vec::new(),
                role: crate::http::role::Role::Approver,
            },
            token_id: None,
            token_hash: None,
            csrf_secret: [7; 32],
            expires_at: None,
        }
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_action_and_the_secret() {
        let session = session();
        let token = session.csrf("/signout");
        assert_eq!(token.len(), 64);
        assert!(session.csrf_matches("/signout", &token));
        assert!(!session.csrf_matches("/approvals/x/decide", &token));
        assert!(!session.csrf_matches("/signout", "zz"));
        let other = Session {
            csrf_secret: [8; 32],
            ..session
        };
        assert!(!other.csrf_matches("/signout", &token));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; gridflow_session=abc ; b=2"),
        );
        assert_eq!(cookie_id(&headers).as_deref(), Some("abc"));
        assert_eq!(cookie_id(&HeaderMap::new()), None);
    }
}
