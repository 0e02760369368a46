//! HTTP API tests: the router built with `app(state)`, called with `oneshot`, over an
//! engine on the in-memory store. No socket.

mod support;

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use support::{Harness, Reply};

const TOKEN: &str = "test-admin-token";

/// Three steps in a chain: echo, noop, echo; the input needs a string `name`.
const CHAIN: &str = r#"
id: chain
name: A chain of core steps
input:
  type: object
  required: [name]
  properties:
    name: {type: string}
    count: {type: integer}
steps:
  - id: first
    action: core.echo
    with: {message: "hello ${input.name}"}
  - id: second
    needs: [first]
    action: core.noop
  - id: third
    needs: [second]
    action: core.echo
    with: {previous: "${steps.first.output.message}"}
output: {message: "${steps.third.output.previous}"}
"#;

/// `CHAIN` with one more step: new content, so a new version.
fn chain_v2() -> String {
    CHAIN.replace(
        "output:",
        "  - id: fourth\n    needs: [third]\n    action: core.noop\noutput:",
    )
}

/// `alpha` needs `gamma`, `beta` needs `alpha`, `gamma` needs `beta`: a cycle of three.
const CYCLIC: &str = r#"
id: cyclic
steps:
  - id: alpha
    needs: [gamma]
    action: core.noop
  - id: beta
    needs: [alpha]
    action: core.noop
  - id: gamma
    needs: [beta]
    action: core.noop
"#;

struct TestApp {
    router: Router,
}

struct Answer {
    status: StatusCode,
    body: Value,
}

impl TestApp {
    async fn new() -> Self {
        let router = Harness::start(TOKEN).await.router;
        Self { router }
    }

    async fn request(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        let request = support::request(method, uri, token)
            .body(body.map_or_else(Body::empty, |body| Body::from(body.to_owned())))
            .expect("the test request is well-formed");
        let Reply { status, bytes, .. } = support::send(&self.router, request).await;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                panic!(
                    "the body of {uri} is not JSON ({error}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Answer { status, body }
    }

    async fn get(&self, uri: &str) -> Answer {
        self.request(Method::GET, uri, Some(TOKEN), None).await
    }

    async fn post(&self, uri: &str, body: &str) -> Answer {
        self.request(Method::POST, uri, Some(TOKEN), Some(body))
            .await
    }

    async fn deploy(&self, source: &str) -> Answer {
        self.post("/api/v1/definitions", source).await
    }

    async fn start(&self, definition: &str, input: Value) -> String {
        let answer = self
            .post(
                &format!("/api/v1/definitions/{definition}/instances"),
                &json!({ "input": input }).to_string(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.body["instance_id"]
            .as_str()
            .expect("a start answers the instance id")
            .to_owned()
    }

    /// Polls the instance until its status is terminal, for at most ten seconds.
    async fn wait_until_finished(&self, instance: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = self.get(&format!("/api/v1/instances/{instance}")).await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
            let status = answer.body["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if matches!(status.as_str(), "completed" | "failed" | "cancelled") {
                // Every instance this suite runs to the end must replay to its stored state.
                let replay = self
                    .get(&format!("/api/v1/instances/{instance}/replay"))
                    .await;
                assert_eq!(
                    replay.body["matches_stored"], true,
                    "instance {instance}: replay differs from the stored state: {}",
                    replay.body
                );
                return answer.body;
            }
            assert!(
                Instant::now() < deadline,
                "instance {instance} still {status} after 10s: {}",
                answer.body
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn assert_error(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.body["error"]["code"], code, "{}", answer.body);
    assert!(
        answer.body["error"]["message"].is_string(),
        "{}",
        answer.body
    );
    assert!(
        answer.body["error"]["details"].is_array(),
        "{}",
        answer.body
    );
}

fn detail_text(answer: &Answer) -> String {
    answer.body["error"]["details"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|detail| format!("{}: {}", detail["path"], detail["message"]))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn requests_without_a_token_are_unauthorized() {
    let app = TestApp::new().await;
    let answer = app
        .request(Method::GET, "/api/v1/instances", None, None)
        .await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "unauthorized");
    // Unknown routes do not reveal themselves to anonymous callers either.
    let unknown = app
        .request(Method::GET, "/api/v1/nothing-here", None, None)
        .await;
    assert_error(&unknown, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn requests_with_a_wrong_token_are_unauthorized() {
    let app = TestApp::new().await;
    let answer = app
        .request(
            Method::POST,
            "/api/v1/definitions",
            Some("not-the-token"),
            Some(CHAIN),
        )
        .await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(!answer.body.to_string().contains(TOKEN));
}

#[tokio::test]
async fn healthz_needs_no_token() {
    let app = TestApp::new().await;
    let answer = app.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, json!({"status": "ok"}));
}

#[tokio::test]
async fn only_a_sandbox_has_a_clock_to_move() {
    let app = TestApp::new().await;
    let answer = app
        .request(
            Method::POST,
            "/api/v1/sandbox/clock",
            Some(TOKEN),
            Some(r#"{"advance": "1h"}"#),
        )
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
    assert!(
        answer.body.to_string().contains("not a sandbox"),
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn deploy_creates_then_recognizes_unchanged_then_versions_changes() {
    let app = TestApp::new().await;
    let first = app.deploy(CHAIN).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body, json!({"id": "chain", "version": 1}));

    let again = app.deploy(CHAIN).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body, json!({"id": "chain", "version": 1}));

    let changed = app.deploy(&chain_v2()).await;
    assert_eq!(changed.status, StatusCode::CREATED, "{}", changed.body);
    assert_eq!(changed.body, json!({"id": "chain", "version": 2}));

    let latest = app.get("/api/v1/definitions/chain").await;
    assert_eq!(latest.status, StatusCode::OK);
    assert_eq!(latest.body["version"], 2);
    let versions = app.get("/api/v1/definitions/chain/versions").await;
    let numbers: Vec<&Value> = versions.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| &item["version"])
        .collect();
    assert_eq!(numbers, [&json!(1), &json!(2)]);
    let first_version = app.get("/api/v1/definitions/chain/versions/1").await;
    assert_eq!(first_version.status, StatusCode::OK);
    assert_eq!(first_version.body["source"], CHAIN);
    let list = app.get("/api/v1/definitions").await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["next_cursor"], Value::Null);
}

#[tokio::test]
async fn deploy_accepts_json() {
    let app = TestApp::new().await;
    let definition = json!({"id": "json-def", "steps": [{"id": "only", "action": "core.noop"}]});
    let answer = app.deploy(&definition.to_string()).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.body["id"], "json-def");
}

#[tokio::test]
async fn cyclic_definition_is_invalid_and_names_every_step_of_the_cycle() {
    let app = TestApp::new().await;
    let answer = app.deploy(CYCLIC).await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    let details = detail_text(&answer);
    for step in ["alpha", "beta", "gamma"] {
        assert!(details.contains(step), "{step} missing from {details}");
    }
    assert!(details.contains("cycle"), "{details}");
    let missing = app.get("/api/v1/definitions/cyclic").await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn unknown_need_is_invalid_and_named() {
    let app = TestApp::new().await;
    let answer = app
        .deploy(
            r#"
id: unknown-need
steps:
  - id: only
    needs: [nowhere]
    action: core.noop
"#,
        )
        .await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    let details = answer.body["error"]["details"].as_array().unwrap();
    assert!(
        details.iter().any(|detail| {
            detail["path"] == "steps[0].needs[0]"
                && detail["message"].as_str().unwrap().contains("nowhere")
        }),
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn every_definition_error_is_listed_at_once() {
    let app = TestApp::new().await;
    let answer = app
        .deploy(
            r#"
id: many-problems
steps:
  - id: first
    action: core.no_such_action
  - id: second
    needs: [nowhere]
    action: core.noop
  - id: first
    action: core.noop
"#,
        )
        .await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    let details = detail_text(&answer);
    assert!(
        answer.body["error"]["details"].as_array().unwrap().len() >= 3,
        "{details}"
    );
    assert!(details.contains("steps[0].action"), "{details}");
    assert!(details.contains("steps[1].needs[0]"), "{details}");
    assert!(details.contains("steps[2].id"), "{details}");
}

#[tokio::test]
async fn start_with_input_violating_the_schema_lists_the_violations() {
    let app = TestApp::new().await;
    app.deploy(CHAIN).await;
    let answer = app
        .post(
            "/api/v1/definitions/chain/instances",
            &json!({"input": {"count": "many"}}).to_string(),
        )
        .await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    let details = detail_text(&answer);
    assert!(details.contains("name"), "{details}");
    assert!(details.contains("input.count"), "{details}");
    assert_eq!(answer.body["error"]["details"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn start_of_an_unknown_definition_is_not_found() {
    let app = TestApp::new().await;
    let answer = app
        .post("/api/v1/definitions/nowhere/instances", r#"{"input": {}}"#)
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn started_chain_completes_with_its_output() {
    let app = TestApp::new().await;
    app.deploy(CHAIN).await;
    let instance = app.start("chain", json!({"name": "Ada"})).await;
    let finished = app.wait_until_finished(&instance).await;
    assert_eq!(finished["status"], "completed", "{finished}");
    assert_eq!(finished["id"], instance.as_str());
    assert_eq!(finished["definition"], "chain");
    assert_eq!(finished["version"], 1);
    assert_eq!(finished["input"], json!({"name": "Ada"}));
    assert_eq!(finished["output"], json!({"message": "hello Ada"}));
    for step in ["first", "second", "third"] {
        assert_eq!(finished["steps"][step]["status"], "succeeded", "{finished}");
        assert_eq!(finished["steps"][step]["attempts"], 1, "{finished}");
    }
    assert_eq!(
        finished["steps"]["first"]["output"],
        json!({"message": "hello Ada"})
    );
    for key in ["error", "created_at", "updated_at"] {
        assert!(finished.get(key).is_some(), "{key} missing: {finished}");
    }
}

#[tokio::test]
async fn history_lists_chained_events() {
    let app = TestApp::new().await;
    app.deploy(CHAIN).await;
    let instance = app.start("chain", json!({"name": "Ada"})).await;
    app.wait_until_finished(&instance).await;
    let answer = app
        .get(&format!("/api/v1/instances/{instance}/history"))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["instance_id"], instance.as_str());
    let events = answer.body["events"].as_array().unwrap();
    assert_eq!(events[0]["type"], "instance_started");
    assert_eq!(events[0]["actor"], "admin");
    assert_eq!(events.last().unwrap()["type"], "instance_completed");
    for (index, event) in events.iter().enumerate() {
        let keys: Vec<&str> = event
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 7, "unexpected fields in {event}: {keys:?}");
        for key in ["seq", "type", "at", "actor", "data", "prev_hash", "hash"] {
            assert!(event.get(key).is_some(), "{key} missing from {event}");
        }
        assert_eq!(event["seq"], index + 1);
        if index > 0 {
            assert_eq!(event["prev_hash"], events[index - 1]["hash"]);
        }
    }
    let succeeded = events
        .iter()
        .filter(|event| event["type"] == "step_succeeded")
        .count();
    assert_eq!(succeeded, 3);
}

#[tokio::test]
async fn replay_folds_history_up_to_a_seq() {
    let app = TestApp::new().await;
    app.deploy(CHAIN).await;
    let instance = app.start("chain", json!({"name": "Ada"})).await;
    app.wait_until_finished(&instance).await;
    let full = app
        .get(&format!("/api/v1/instances/{instance}/replay"))
        .await;
    assert_eq!(full.status, StatusCode::OK, "{}", full.body);
    assert_eq!(full.body["at"], full.body["last_seq"]);
    assert!(full.body["matches_stored"].is_boolean(), "{}", full.body);
    assert_eq!(full.body["state"]["status"], "completed");
    assert_eq!(
        full.body["state"]["output"],
        json!({"message": "hello Ada"})
    );
    let first = app
        .get(&format!("/api/v1/instances/{instance}/replay?at=1"))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["at"], 1);
    assert_eq!(first.body["state"]["status"], "running");
    let bad = app
        .get(&format!("/api/v1/instances/{instance}/replay?at=soon"))
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "bad_request");
}

// The clock returns microseconds, the precision the store keeps, so the state folded from
// stored events equals the stored snapshot.
#[tokio::test]
async fn full_replay_matches_the_stored_state() {
    let app = TestApp::new().await;
    app.deploy(CHAIN).await;
    let instance = app.start("chain", json!({"name": "Ada"})).await;
    app.wait_until_finished(&instance).await;
    let full = app
        .get(&format!("/api/v1/instances/{instance}/replay"))
        .await;
    assert_eq!(full.body["matches_stored"], true, "{}", full.body);
}

#[tokio::test]
async fn instance_list_is_paginated() {
    let app = TestApp::new().await;
    app.deploy(CHAIN).await;
    let older = app.start("chain", json!({"name": "one"})).await;
    let newer = app.start("chain", json!({"name": "two"})).await;

    let first_page = app.get("/api/v1/instances?limit=1").await;
    assert_eq!(first_page.status, StatusCode::OK, "{}", first_page.body);
    let items = first_page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], newer.as_str());
    let cursor = first_page.body["next_cursor"]
        .as_str()
        .expect("a full page has a next cursor");

    let second_page = app
        .get(&format!("/api/v1/instances?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(second_page.status, StatusCode::OK, "{}", second_page.body);
    assert_eq!(second_page.body["items"][0]["id"], older.as_str());

    let filtered = app
        .get("/api/v1/instances?definition=chain&status=&cursor=")
        .await;
    assert_eq!(filtered.status, StatusCode::OK, "{}", filtered.body);
    assert_eq!(filtered.body["items"].as_array().unwrap().len(), 2);
    let none = app.get("/api/v1/instances?definition=other").await;
    assert_eq!(none.body["items"], json!([]));
    assert_eq!(none.body["next_cursor"], Value::Null);
}

#[tokio::test]
async fn instance_list_names_a_bad_parameter() {
    let app = TestApp::new().await;
    let status = app.get("/api/v1/instances?status=done").await;
    assert_error(&status, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(status.body["error"]["details"][0]["path"], "status");
    assert!(
        status.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("done")
    );
    let limit = app.get("/api/v1/instances?limit=0").await;
    assert_error(&limit, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(limit.body["error"]["details"][0]["path"], "limit");
}

#[tokio::test]
async fn cancel_of_a_finished_instance_conflicts() {
    let app = TestApp::new().await;
    app.deploy(CHAIN).await;
    let instance = app.start("chain", json!({"name": "Ada"})).await;
    app.wait_until_finished(&instance).await;
    let with_reason = app
        .post(
            &format!("/api/v1/instances/{instance}/cancel"),
            r#"{"reason": "too late"}"#,
        )
        .await;
    assert_error(&with_reason, StatusCode::CONFLICT, "conflict");
    let without_body = app
        .request(
            Method::POST,
            &format!("/api/v1/instances/{instance}/cancel"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_error(&without_body, StatusCode::CONFLICT, "conflict");
}

#[tokio::test]
async fn retry_of_a_step_that_did_not_fail_conflicts() {
    let app = TestApp::new().await;
    app.deploy(CHAIN).await;
    let instance = app.start("chain", json!({"name": "Ada"})).await;
    app.wait_until_finished(&instance).await;
    let answer = app
        .post(
            &format!("/api/v1/instances/{instance}/steps/first/retry"),
            "",
        )
        .await;
    assert_error(&answer, StatusCode::CONFLICT, "conflict");
}

#[tokio::test]
async fn cancel_of_a_waiting_instance_answers_it_cancelled() {
    let app = TestApp::new().await;
    let answer = app
        .deploy(
            r#"
id: sleepy
steps:
  - id: nap
    sleep: 1h
"#,
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let instance = app.start("sleepy", json!({})).await;
    let cancelled = app
        .post(
            &format!("/api/v1/instances/{instance}/cancel"),
            r#"{"reason": "not needed"}"#,
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    let history = app
        .get(&format!("/api/v1/instances/{instance}/history"))
        .await;
    let last = history.body["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["type"], "instance_cancelled");
    assert_eq!(last["actor"], "admin");
}

#[tokio::test]
async fn unknown_instance_is_not_found() {
    let app = TestApp::new().await;
    for uri in [
        "/api/v1/instances/no-such-instance",
        "/api/v1/instances/no-such-instance/history",
        "/api/v1/instances/no-such-instance/replay",
    ] {
        let answer = app.get(uri).await;
        assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
    }
    let cancel = app
        .post("/api/v1/instances/no-such-instance/cancel", "")
        .await;
    assert_error(&cancel, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn malformed_json_is_a_bad_request_with_our_error_body() {
    let app = TestApp::new().await;
    app.deploy(CHAIN).await;
    let answer = app
        .post("/api/v1/definitions/chain/instances", r#"{"input": "#)
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "bad_request");
    let wrong_field = app
        .post(
            "/api/v1/definitions/chain/instances",
            r#"{"inputs": {"name": "Ada"}}"#,
        )
        .await;
    assert_error(&wrong_field, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
}

#[tokio::test]
async fn unknown_routes_and_methods_use_our_error_body() {
    let app = TestApp::new().await;
    let route = app.get("/api/v1/nothing-here").await;
    assert_error(&route, StatusCode::NOT_FOUND, "not_found");
    let root = app.request(Method::GET, "/nothing", None, None).await;
    assert_error(&root, StatusCode::NOT_FOUND, "not_found");
    let method = app
        .request(Method::DELETE, "/api/v1/instances", Some(TOKEN), None)
        .await;
    assert_error(
        &method,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    let version = app.get("/api/v1/definitions/chain/versions/latest").await;
    assert_error(&version, StatusCode::BAD_REQUEST, "bad_request");
}
