//! The sandbox clock: `POST /api/v1/sandbox/clock {advance: "2d"}` moves the clock of a
//! `serve --sandbox` forward and fires what became due (timers, reminders, due dates,
//! effective dates, rights windows), so a process that waits days can be followed in
//! minutes, by a person in the walkthrough or by an end-to-end test. Analysts and admins
//! only; outside the sandbox the server runs on the system clock and answers 404.
//!
//! The clock only moves forward, at most a year per call: a clock that went back would
//! make history's times run backwards.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::error::ApiError;
use crate::http::extract::ApiJson;
use crate::http::state::AppState;

/// The longest step one call may take.
const MAX_ADVANCE: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// Body of `POST /sandbox/clock`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockAdvance {
    /// How far to move the clock forward: a duration such as `"90m"`, `"48h"` or `"2d"`.
    #[schema(
        min_length = 2,
        max_length = 32,
        pattern = r"^([0-9]+(ms|s|m|h|d))+$",
        example = "48h"
    )]
    pub advance: String,
}

/// The sandbox clock after a move.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClockView {
    /// The server's time now.
    pub now: DateTime<Utc>,
    /// How far ahead of the system clock the server's clock is, in seconds.
    pub offset_seconds: i64,
}

/// Moves the sandbox clock forward and fires what became due.
#[utoipa::path(
    post,
    path = "/sandbox/clock",
    tag = "sandbox",
    request_body = ClockAdvance,
    responses(
        (status = 200, description = "The clock moved; what became due has been committed", body = ClockView),
        (status = 404, description = "The server is not a sandbox", body = crate::http::openapi::ErrorBody),
        (status = 422, description = "The duration is not valid", body = crate::http::openapi::ErrorBody),
    )
)]
pub(crate) async fn advance_clock(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<ClockAdvance>,
) -> Result<Json<ClockView>, ApiError> {
    let Some(clock) = &state.sandbox_clock else {
        return Err(ApiError::not_found(
            "this server is not a sandbox: its clock is the system clock (start it with `serve --sandbox`)",
        ));
    };
    let advance = gridflow_core::duration::parse(&request.advance)
        .map_err(|problem| invalid_advance(&request.advance, &problem))?;
    if advance.is_zero() || advance > MAX_ADVANCE {
        return Err(invalid_advance(
            &request.advance,
            "the clock moves forward by more than nothing and at most 366d per call",
        ));
    }
    let now = clock.advance(advance);
    tracing::info!(advance = %request.advance, %now, "sandbox clock moved forward");
    state.engine.clock_moved().await?;
    Ok(Json(ClockView {
        now,
        offset_seconds: clock.offset().num_seconds(),
    }))
}

fn invalid_advance(text: &str, problem: &str) -> ApiError {
    ApiError::invalid(
        format!("advance: {text:?} is not a forward move of the clock: {problem}"),
        vec![gridflow_runtime::Detail {
            path: "advance".to_owned(),
            message: problem.to_owned(),
        }],
    )
}
