//! Fault injection: a [`FaultPlan`] of scripted and periodic faults, shared behind
//! [`Faults`] by the simulator's middleware, its `/_sim/faults` endpoint and Rust tests.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// One injected failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Wait this long, then serve the request normally.
    Latency {
        /// The delay in milliseconds.
        ms: u64,
    },
    /// Answer 429 with `Retry-After: <retry_after_secs>` in the system's error shape.
    RateLimit {
        /// The `Retry-After` value in seconds.
        retry_after_secs: u64,
    },
    /// Answer 500 in the system's error shape.
    ServerError,
    /// Break the connection instead of answering: the response body fails at once, so the
    /// client sees the connection close mid-response.
    Drop,
    /// Serve the request (it takes effect), then break the connection instead of sending
    /// the response: the client cannot tell whether anything happened, and only an
    /// idempotency key keeps its retry from taking effect twice.
    LoseResponse,
}

/// A fault and the requests it applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    /// The fault.
    pub fault: Fault,
    /// Only requests with this method (`POST`), any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Only requests whose path starts with this, any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
}

impl FaultRule {
    /// A rule that applies to every request.
    pub fn any(fault: Fault) -> Self {
        Self {
            fault,
            method: None,
            path_prefix: None,
        }
    }

    /// A rule for requests with `method` whose path starts with `path_prefix`.
    pub fn on(fault: Fault, method: &str, path_prefix: &str) -> Self {
        Self {
            fault,
            method: Some(method.to_owned()),
            path_prefix: Some(path_prefix.to_owned()),
        }
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|wanted| wanted.eq_ignore_ascii_case(method))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|prefix| path.starts_with(prefix))
    }
}

/// A fault applied to every `n`th matching request (the `n`th, `2n`th, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EveryNth {
    /// The period, at least 1.
    pub n: u64,
    /// The fault and the requests it counts.
    #[serde(flatten)]
    pub rule: FaultRule,
    /// Matching requests counted so far.
    #[serde(default)]
    pub seen: u64,
}

/// What a simulator injects: a queue of one-shot faults, consumed by the first request
/// each matches, then periodic faults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    /// One-shot faults, in order.
    #[serde(default)]
    pub queue: VecDeque<FaultRule>,
    /// Periodic faults.
    #[serde(default)]
    pub every: Vec<EveryNth>,
}

/// The fault plan of one running simulator, shared with its middleware.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    plan: Arc<Mutex<FaultPlan>>,
}

impl Faults {
    /// Faults following `plan`.
    pub fn new(plan: FaultPlan) -> Self {
        Self {
            plan: Arc::new(Mutex::new(plan)),
        }
    }

    /// Appends a one-shot fault.
    pub fn push(&self, rule: FaultRule) {
        self.lock().queue.push_back(rule);
    }

    /// Adds a periodic fault on every `n`th matching request (`n` of 0 counts as 1).
    pub fn every(&self, n: u64, rule: FaultRule) {
        self.lock().every.push(EveryNth {
            n: n.max(1),
            rule,
            seen: 0,
        });
    }

    /// Replaces the whole plan.
    pub fn set(&self, plan: FaultPlan) {
        *self.lock() = plan;
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.set(FaultPlan::default());
    }

    /// The current plan.
    pub fn plan(&self) -> FaultPlan {
        self.lock().clone()
    }

    /// The fault for this request, if any: the first queued rule that matches (consumed),
    /// else the first periodic rule whose count comes round.
    pub fn next_for(&self, method: &str, path: &str) -> Option<Fault> {
        let mut plan = self.lock();
        if let Some(index) = plan
            .queue
            .iter()
            .position(|rule| rule.matches(method, path))
        {
            return plan.queue.remove(index).map(|rule| rule.fault);
        }
        let mut chosen = None;
        for periodic in plan.every.iter_mut() {
            if periodic.rule.matches(method, path) {
                periodic.seen += 1;
                if chosen.is_none() && periodic.seen % periodic.n.max(1) == 0 {
                    chosen = Some(periodic.rule.fault.clone());
                }
            }
        }
        chosen
    }

    fn lock(&self) -> MutexGuard<'_, FaultPlan> {
        self.plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Renders an error in the simulated system's own shape.
pub type ErrorRenderer = fn(StatusCode, &str) -> Response;

/// The middleware's state: the plan and how the system writes its errors.
#[derive(Clone)]
pub(crate) struct FaultLayer {
    pub(crate) faults: Faults,
    pub(crate) render: ErrorRenderer,
}

/// Applies the next fault, if any, before the request reaches the system's handler: an
/// injected 429, 500 or dropped connection never changes the simulator's state. Only
/// [`Fault::LoseResponse`] lets the handler run first.
pub(crate) async fn inject(
    State(layer): State<FaultLayer>,
    request: Request,
    next: Next,
) -> Response {
    let fault = layer
        .faults
        .next_for(request.method().as_str(), request.uri().path());
    match fault {
        None => next.run(request).await,
        Some(Fault::Latency { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            next.run(request).await
        }
        Some(Fault::RateLimit { retry_after_secs }) => {
            let mut response = (layer.render)(
                StatusCode::TOO_MANY_REQUESTS,
                "rate limit exceeded (injected)",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        Some(Fault::ServerError) => (layer.render)(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal server error (injected)",
        ),
        Some(fault @ (Fault::Drop | Fault::LoseResponse)) => {
            if fault == Fault::LoseResponse {
                drop(next.run(request).await);
            }
            let broken = futures_util::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "connection dropped (injected)",
                ))
            });
            (StatusCode::OK, Body::from_stream(broken)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_faults_are_consumed_in_order_by_matching_requests() {
        let faults = Faults::default();
        faults.push(FaultRule::on(Fault::ServerError, "POST", "/v1/packages"));
        faults.push(FaultRule::any(Fault::Drop));
        assert_eq!(faults.next_for("GET", "/v1/packages"), Some(Fault::Drop));
        assert_eq!(faults.next_for("GET", "/v1/packages"), None);
        assert_eq!(
            faults.next_for("post", "/v1/packages/p-1/publish"),
            Some(Fault::ServerError)
        );
        assert_eq!(faults.next_for("POST", "/v1/packages"), None);
    }

    #[test]
    fn periodic_fault_hits_every_nth_matching_request() {
        let faults = Faults::default();
        faults.every(
            3,
            FaultRule::any(Fault::RateLimit {
                retry_after_secs: 2,
            }),
        );
        let hits: Vec<bool> = (0..7)
            .map(|_| faults.next_for("GET", "/x").is_some())
            .collect();
        assert_eq!(hits, [false, false, true, false, false, true, false]);
    }

    #[test]
    fn plan_reads_from_json() {
        let plan: FaultPlan = serde_json::from_value(serde_json::json!({
            "queue": [{"fault": {"kind": "latency", "ms": 5}, "path_prefix": "/a"}],
            "every": [{"n": 2, "fault": {"kind": "drop"}}]
        }))
        .unwrap();
        assert_eq!(plan.queue[0].fault, Fault::Latency { ms: 5 });
        assert_eq!(plan.every[0].rule.fault, Fault::Drop);
        let lost: Fault =
            serde_json::from_value(serde_json::json!({"kind": "lose_response"})).unwrap();
        assert_eq!(lost, Fault::LoseResponse);
    }
}
