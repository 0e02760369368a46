//! The paging rules of every list (definitions, versions, instances, approvals, tokens):
//! the [`Page`] extractor reads `limit` and `cursor`, and a list answers a [`List`].
//!
//! - `limit`: 1 to `limits.max_page_size` of `gridflow.toml` ([`MAX_PAGE_SIZE`] by
//!   default), [`DEFAULT_PAGE_SIZE`] (or that maximum, if lower) when absent. A larger
//!   value is refused rather than cut, so a client never takes a short page for the last.
//! - `cursor`: the `next_cursor` of the previous page; opaque to the client.
//! - An empty parameter (`?limit=`) means the same as an absent one.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use gridflow_runtime::Engine;

use crate::http::error::ApiError;
use crate::http::extract::ApiQuery;
use crate::http::state::AppState;

/// Page size of a list when `limit` is not given.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// The largest page a list returns by default (`limits.max_page_size`).
pub const MAX_PAGE_SIZE: u32 = 500;

/// A list: `{items, next_cursor}`; `next_cursor` is `null` on the last page.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct List<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page.
    pub next_cursor: Option<String>,
}

/// The page a list request asks for: its checked `limit` and its `cursor`, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// How many items at most, 1 to `limits.max_page_size`.
    pub limit: u32,
    /// The `next_cursor` of the previous page; `None` for the first page.
    pub cursor: Option<String>,
}

/// The paging parameters of the query string; the list's other parameters are its own.
#[derive(Debug, Deserialize)]
struct PageQuery {
    cursor: Option<String>,
    limit: Option<String>,
}

impl FromRequestParts<AppState> for Page {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ApiQuery(query) = ApiQuery::<PageQuery>::from_request_parts(parts, state).await?;
        Ok(Page {
            limit: page_size(query.limit, &state.engine)?,
            cursor: present(query.cursor),
        })
    }
}

impl Page {
    /// One page of `items` (already in list order): those after the cursor, at most
    /// `limit`. `next_cursor` is the key of the page's last item when more follow.
    pub fn cut<T>(
        &self,
        items: Vec<T>,
        after_cursor: impl Fn(&T) -> bool,
        cursor_of: impl Fn(&T) -> String,
    ) -> List<T> {
        let mut rest = items.into_iter().filter(|item| after_cursor(item));
        let items: Vec<T> = rest
            .by_ref()
            .take(usize::try_from(self.limit).unwrap_or(usize::MAX))
            .collect();
        let next_cursor = match rest.next() {
            Some(_) => items.last().map(cursor_of),
            None => None,
        };
        List { items, next_cursor }
    }

    /// [`Page::cut`] for lists keyed by a text id in ascending order: the items whose key
    /// is after the cursor (any text is a position, so a cursor whose item is gone still
    /// pages on); the cursor is the key of the page's last item.
    pub fn cut_by_key<T>(&self, items: Vec<T>, key: impl Fn(&T) -> &str) -> List<T> {
        let cursor = self.cursor.as_deref();
        self.cut(
            items,
            |item| cursor.is_none_or(|cursor| key(item) > cursor),
            |item| key(item).to_owned(),
        )
    }
}

/// An empty parameter (`?status=`) means the same as an absent one.
pub fn present(value: Option<String>) -> Option<String> {
    value.filter(|value| !value.is_empty())
}

/// The `limit` parameter, checked against the engine's `limits.max_page_size`.
fn page_size(limit: Option<String>, engine: &Engine) -> Result<u32, ApiError> {
    let max = engine.limits().max_page_size.get();
    match present(limit) {
        None => Ok(DEFAULT_PAGE_SIZE.min(max)),
        Some(limit) => limit
            .parse::<u32>()
            .ok()
            .filter(|limit| (1..=max).contains(limit))
            .ok_or_else(|| {
                ApiError::bad_parameter(
                    "limit",
                    format!(
                        "expected a whole number from 1 to {max} (limits.max_page_size), got {limit:?}"
                    ),
                )
            }),
    }
}
