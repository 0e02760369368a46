//! HTTP tests of the approval and signal routes: the router built with `app(state)`,
//! wrapped with `approvals::acting_as` to act as users other than `admin`, called with
//! `oneshot` over an engine on the in-memory store.

// The helpers below are test code too; `allow-unwrap-in-tests` covers only `#[test]` items.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use gridflow::http::auth::Caller;
use gridflow::http::auth::acting_as;
use gridflow::http::role::Role;
use gridflow::{AppState, app};
use support::Harness;

const TOKEN: &str = "test-admin-token";

/// Quorum 2 of ann, bob, cid (and admin, who starts the instances and so may not decide),
/// a form, then a wait for `partner_ack`.
const REVIEW: &str = r#"
id: http-review
steps:
  - id: review
    approval:
      title: "Ship ${input.order}?"
      users: [admin, ann, bob, cid]
      groups: [brand]
      quorum: 2
      due: 48h
      on_timeout: reject
      form: {type: object, properties: {budget: {type: integer, maximum: 100}}}
  - id: ack
    needs: [review]
    wait: {signal: partner_ack}
output: {decision: "${steps.review.decision}", ack: "${steps.ack.output.payload}"}
"#;

struct Answer {
    status: StatusCode,
    body: Value,
}

struct Api {
    state: AppState,
}

impl Api {
    async fn new() -> Self {
        let state = Harness::start(TOKEN).await.state;
        let api = Self { state };
        let answer = api
            .call(
                None,
                Method::POST,
                "/api/v1/definitions",
                Some(REVIEW.to_owned()),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        api
    }

    fn router(&self, user: Option<(&str, &[&str])>) -> Router {
        let router = app(self.state.clone());
        match user {
            None => router,
            Some((user, groups)) => acting_as(
                router,
                Caller {
                    user: user.to_owned(),
                    groups: groups.iter().map(|group| group.to_string()).collect(),
                    role: Role::Approver,
                },
            ),
        }
    }

    async fn call(
        &self,
        user: Option<(&str, &[&str])>,
        method: Method,
        uri: &str,
        body: Option<String>,
    ) -> Answer {
        let request = support::request(method, uri, Some(TOKEN))
            .body(body.map_or_else(Body::empty, Body::from))
            .expect("the test request is well-formed");
        let reply = support::send(&self.router(user), request).await;
        Answer {
            status: reply.status,
            body: reply.json_or_null(),
        }
    }

    async fn start(&self, order: u32) -> String {
        let answer = self
            .call(
                None,
                Method::POST,
                "/api/v1/definitions/http-review/instances",
                Some(json!({"input": {"order": order}}).to_string()),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.body["instance_id"].as_str().unwrap().to_owned()
    }

    async fn pending_for(&self, user: &str, groups: &[&str]) -> Vec<Value> {
        let answer = self
            .call(
                Some((user, groups)),
                Method::GET,
                "/api/v1/approvals?status=pending",
                None,
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.body["items"].as_array().unwrap().clone()
    }

    async fn decide(&self, user: &str, groups: &[&str], id: &str, body: Value) -> Answer {
        self.call(
            Some((user, groups)),
            Method::POST,
            &format!("/api/v1/approvals/{id}/decision"),
            Some(body.to_string()),
        )
        .await
    }

    async fn wait_for_status(&self, instance: &str, wanted: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = self
                .call(
                    None,
                    Method::GET,
                    &format!("/api/v1/instances/{instance}"),
                    None,
                )
                .await;
            if answer.body["status"] == wanted {
                return answer.body;
            }
            assert!(
                Instant::now() < deadline,
                "instance {instance} did not become {wanted}: {}",
                answer.body
            );
            tokio::task::yield_now().await;
        }
    }
}

fn approval_of(items: &[Value], instance: &str) -> String {
    items
        .iter()
        .find(|item| item["instance_id"] == instance)
        .and_then(|item| item["id"].as_str())
        .unwrap_or_else(|| panic!("no approval of {instance} in {items:?}"))
        .to_owned()
}

#[tokio::test]
async fn quorum_two_of_three_then_a_late_decision_is_409() {
    let api = Api::new().await;
    let instance = api.start(7).await;
    let approval = approval_of(&api.pending_for("ann", &[]).await, &instance);
    // A group member sees it too.
    approval_of(&api.pending_for("gus", &["brand"]).await, &instance);
    assert!(api.pending_for("eve", &["legal"]).await.is_empty());

    let answer = api
        .decide(
            "ann",
            &[],
            &approval,
            json!({"decision": "approve", "comment": "ok"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["status"], "pending");
    let answer = api
        .decide(
            "bob",
            &[],
            &approval,
            json!({"decision": "approve", "data": {"budget": 5}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["status"], "approved");
    let answer = api
        .decide("cid", &[], &approval, json!({"decision": "approve"}))
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.body);
    assert_eq!(answer.body["error"]["code"], "conflict");

    let answer = api
        .call(
            None,
            Method::GET,
            &format!("/api/v1/approvals/{approval}"),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.body;
    assert_eq!(body["instance_id"], instance.as_str());
    assert_eq!(body["step"], "review");
    assert_eq!(body["title"], "Ship 7?");
    assert_eq!(body["quorum"], 2);
    assert_eq!(body["assignees"]["groups"], json!(["brand"]));
    assert!(body["due_at"].is_string(), "{body}");
    let decisions = body["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 2);
    assert_eq!(decisions[0]["user"], "ann");
    assert_eq!(decisions[0]["decision"], "approve");
    assert_eq!(decisions[0]["comment"], "ok");
    assert!(decisions[0]["at"].is_string());

    // The signal completes the wait step.
    let answer = api
        .call(
            Some(("partner", &[])),
            Method::POST,
            &format!("/api/v1/instances/{instance}/signals/partner_ack"),
            Some(json!({"received": true}).to_string()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let done = api.wait_for_status(&instance, "completed").await;
    assert_eq!(
        done["output"],
        json!({"decision": "approved", "ack": {"received": true}})
    );
    assert_eq!(done["steps"]["review"]["decision"], "approved");
}

#[tokio::test]
async fn one_rejection_rejects() {
    let api = Api::new().await;
    let instance = api.start(1).await;
    let approval = approval_of(&api.pending_for("ann", &[]).await, &instance);
    let answer = api
        .decide(
            "ann",
            &[],
            &approval,
            json!({"decision": "reject", "comment": "no"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["status"], "rejected");
    assert!(api.pending_for("bob", &[]).await.is_empty());
}

#[tokio::test]
async fn self_approval_and_outsiders_are_403_and_form_violations_422() {
    let api = Api::new().await;
    let instance = api.start(2).await;
    let approval = approval_of(&api.pending_for("ann", &[]).await, &instance);
    let answer = api
        .decide("admin", &[], &approval, json!({"decision": "approve"}))
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    assert_eq!(answer.body["error"]["code"], "forbidden");
    let answer = api
        .decide("eve", &["legal"], &approval, json!({"decision": "approve"}))
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    let answer = api
        .decide(
            "ann",
            &[],
            &approval,
            json!({"decision": "approve", "data": {"budget": "lots"}}),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    assert_eq!(answer.body["error"]["details"][0]["path"], "data.budget");
    let answer = api
        .decide("ann", &[], &approval, json!({"decision": "maybe"}))
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    let answer = api
        .call(None, Method::GET, "/api/v1/approvals/nope:review:1", None)
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let answer = api
        .call(
            Some(("ann", &[])),
            Method::GET,
            "/api/v1/approvals?status=soon",
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
}

#[tokio::test]
async fn delegation_assigns_the_delegate() {
    let api = Api::new().await;
    let instance = api.start(3).await;
    let approval = approval_of(&api.pending_for("ann", &[]).await, &instance);
    let answer = api
        .decide("ann", &[], &approval, json!({"decision": "delegate"}))
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    let answer = api
        .decide(
            "ann",
            &[],
            &approval,
            json!({"decision": "delegate", "to": "dan"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(
        answer.body["assignees"]["users"]
            .as_array()
            .unwrap()
            .contains(&json!("dan"))
    );
    approval_of(&api.pending_for("dan", &[]).await, &instance);
    let answer = api
        .decide("ann", &[], &approval, json!({"decision": "approve"}))
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    let answer = api
        .decide("dan", &[], &approval, json!({"decision": "approve"}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

#[tokio::test]
async fn a_signal_before_the_wait_step_is_kept_and_unknown_instances_are_404() {
    let api = Api::new().await;
    let instance = api.start(4).await;
    let answer = api
        .call(
            None,
            Method::POST,
            &format!("/api/v1/instances/{instance}/signals/partner_ack"),
            Some("{\"early\": true}".to_owned()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let approval = approval_of(&api.pending_for("ann", &[]).await, &instance);
    api.decide("ann", &[], &approval, json!({"decision": "approve"}))
        .await;
    api.decide("bob", &[], &approval, json!({"decision": "approve"}))
        .await;
    let done = api.wait_for_status(&instance, "completed").await;
    assert_eq!(done["output"]["ack"], json!({"early": true}));

    let answer = api
        .call(
            None,
            Method::POST,
            "/api/v1/instances/nope/signals/x",
            Some("{}".to_owned()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    let answer = api
        .call(
            None,
            Method::POST,
            &format!("/api/v1/instances/{instance}/signals/partner_ack"),
            Some("{}".to_owned()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.body);
}

/// An approval bound to an artifact shows it, in the decision's reply and in the step's
/// output too.
#[tokio::test]
async fn a_bound_approval_shows_its_artifacts() {
    let api = Api::new().await;
    let definition = r#"
id: http-bound
steps:
  - id: review
    approval: {title: "Send?", users: [ann], bind: "${input.artifact}"}
"#;
    let answer = api
        .call(
            None,
            Method::POST,
            "/api/v1/definitions",
            Some(definition.to_owned()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let artifact = json!({"system": "otmm", "asset_id": "a-1", "version": "2",
        "sha256": "ab".repeat(32), "size": 5, "content_type": "image/jpeg", "file_name": "a.jpg"});
    let answer = api
        .call(
            None,
            Method::POST,
            "/api/v1/definitions/http-bound/instances",
            Some(json!({"input": {"artifact": artifact}}).to_string()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let instance = answer.body["instance_id"].as_str().unwrap().to_owned();
    let approval = approval_of(&api.pending_for("ann", &[]).await, &instance);

    let shown = api
        .call(
            Some(("ann", &[])),
            Method::GET,
            &format!("/api/v1/approvals/{approval}"),
            None,
        )
        .await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert_eq!(shown.body["artifacts"], json!([artifact]));
    let decided = api
        .decide("ann", &[], &approval, json!({"decision": "approve"}))
        .await;
    assert_eq!(decided.status, StatusCode::OK, "{}", decided.body);
    assert_eq!(decided.body["artifacts"], json!([artifact]));
    let view = api.wait_for_status(&instance, "completed").await;
    assert_eq!(
        view["steps"]["review"]["output"]["artifacts"],
        json!([artifact])
    );
    assert_eq!(view["steps"]["review"]["decision"], "approved");
}
