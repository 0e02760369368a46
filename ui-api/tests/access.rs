//! Identity, roles, OpenAPI and metrics through the router (`app(state)` and `oneshot`):
//! every route of the access policy is called with no token, a bad token, every role that
//! may not call it (403) and every role that may (success), and the OpenAPI document is
//! compared with the policy and the router.
//!
//! The route × role walk iterates over `gridflow::http::policy::RULES`, so a route added to the
//! policy is covered without touching this file. Routes this file knows get realistic
//! fixtures and must succeed (2xx); a route it does not know yet gets placeholder ids and
//! must at least pass authorization (neither 401 nor 403) and not fail with 5xx.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use gridflow::http::auth::token_hash;
use gridflow::http::policy::{self, Access, RULES, Rule};
use gridflow::http::role::Role;
use gridflow_core::InstanceStatus;
use gridflow_runtime::Engine;
use gridflow_store::{MemoryStore, TokenStore};
use support::Harness;

const ADMIN_TOKEN: &str = "test-admin-token";

/// One step that waits an hour: the instance stays `waiting` until cancelled.
const SLEEPY: &str = "id: sleepy\nsteps:\n  - id: nap\n    sleep: 1h\n";

/// One step that fails for good at its first attempt: the instance ends `failed`.
const FAILING: &str = r#"
id: failing
steps:
  - id: boom
    action: core.fail
    with: {message: "on purpose"}
    retry: {max_attempts: 1}
"#;

/// Echoes its input's `name`.
const ECHO: &str = r#"
id: echo
input:
  type: object
  properties:
    name: {type: string}
steps:
  - id: say
    action: core.echo
    with: {message: "hello ${input.name}"}
"#;

struct Answer {
    status: StatusCode,
    content_type: String,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.text))
    }
}

struct TestApp {
    router: Router,
    engine: Engine,
    store: Arc<MemoryStore>,
    /// A stored token per role (the admin one too, besides the configured admin token).
    tokens: HashMap<Role, String>,
}

impl TestApp {
    async fn new() -> Self {
        let Harness {
            store,
            engine,
            router,
            ..
        } = Harness::start(ADMIN_TOKEN).await;
        let mut app = Self {
            router,
            engine,
            store,
            tokens: HashMap::new(),
        };
        for (role, user, groups) in [
            (Role::Analyst, "ana", vec![]),
            (Role::Approver, "bob", vec!["brand-managers"]),
            (Role::Auditor, "otto", vec![]),
            (Role::Admin, "root", vec![]),
        ] {
            let token = app.create_token(role, user, &groups).await;
            app.tokens.insert(role, token);
        }
        app
    }

    async fn create_token(&self, role: Role, user: &str, groups: &[&str]) -> String {
        let answer = self
            .call(
                Method::POST,
                "/api/v1/tokens",
                Some(ADMIN_TOKEN),
                Some(json!({"user": user, "role": role, "groups": groups}).to_string()),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
        let body = answer.json();
        assert_eq!(body["user"], user);
        assert_eq!(body["role"], role.as_str());
        body["token"].as_str().expect("a token").to_owned()
    }

    fn token(&self, role: Role) -> &str {
        &self.tokens[&role]
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> Answer {
        let request = support::request(method, uri, token)
            .body(body.map_or_else(Body::empty, Body::from))
            .expect("the test request is well-formed");
        let reply = support::send(&self.router, request).await;
        Answer {
            status: reply.status,
            content_type: reply.content_type().unwrap_or_default(),
            text: reply.text(),
        }
    }

    async fn deploy(&self, source: &str) {
        let answer = self
            .call(
                Method::POST,
                "/api/v1/definitions",
                Some(ADMIN_TOKEN),
                Some(source.to_owned()),
            )
            .await;
        assert!(answer.status.is_success(), "{}", answer.text);
    }

    /// Starts an instance as `token`'s user and waits until it is `expected` (or, for
    /// `waiting`, until the start call answered: a sleep is waiting right away).
    async fn start(&self, definition: &str, token: &str, input: Value) -> String {
        let answer = self
            .call(
                Method::POST,
                &format!("/api/v1/definitions/{definition}/instances"),
                Some(token),
                Some(json!({ "input": input }).to_string()),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
        answer.json()["instance_id"]
            .as_str()
            .expect("an instance id")
            .to_owned()
    }

    /// Starts an instance and waits, with a deadline, for the engine to announce that it
    /// finished with `status`.
    async fn run_to_end(&self, definition: &str, input: Value, status: InstanceStatus) -> String {
        let mut finished = self.engine.subscribe_finished();
        let instance = self.start(definition, ADMIN_TOKEN, input).await;
        let wait = async {
            loop {
                let (id, ended) = finished.recv().await.expect("the engine runs");
                if id.as_str() == instance {
                    return ended;
                }
            }
        };
        let ended = tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("instance {instance} did not finish within 10 s"));
        assert_eq!(ended, status, "instance {instance}");
        instance
    }
}

/// A request for `rule` that should succeed, with fresh fixtures where the route changes
/// state. `None` for a route this file does not know.
async fn sample(app: &TestApp, rule: &Rule) -> Option<(String, Option<String>)> {
    let sample = match (rule.method.as_str(), rule.path) {
        ("post", "/definitions") => {
            // New content every time, so each call creates a version.
            let unique = uuid_like();
            (
                "/definitions".to_owned(),
                Some(format!("{ECHO}description: \"{unique}\"\n")),
            )
        }
        ("get", "/definitions") => ("/definitions".to_owned(), None),
        ("get", "/definitions/{definition_id}") => ("/definitions/echo".to_owned(), None),
        ("get", "/definitions/{definition_id}/versions") => {
            ("/definitions/echo/versions".to_owned(), None)
        }
        ("get", "/definitions/{definition_id}/versions/{version}") => {
            ("/definitions/echo/versions/1".to_owned(), None)
        }
        ("post", "/definitions/{definition_id}/instances") => (
            "/definitions/echo/instances".to_owned(),
            Some(json!({"input": {"name": "x"}}).to_string()),
        ),
        ("get", "/instances") => ("/instances?limit=5".to_owned(), None),
        ("get", "/instances/{instance_id}") => {
            let instance = app.start("sleepy", ADMIN_TOKEN, json!({})).await;
            (format!("/instances/{instance}"), None)
        }
        ("post", "/instances/{instance_id}/cancel") => {
            let instance = app.start("sleepy", ADMIN_TOKEN, json!({})).await;
            (
                format!("/instances/{instance}/cancel"),
                Some("{}".to_owned()),
            )
        }
        ("post", "/instances/{instance_id}/steps/{step_id}/retry") => {
            let instance = app
                .run_to_end("failing", json!({}), InstanceStatus::Failed)
                .await;
            (format!("/instances/{instance}/steps/boom/retry"), None)
        }
        ("get", "/instances/{instance_id}/history") => {
            let instance = app.start("sleepy", ADMIN_TOKEN, json!({})).await;
            (format!("/instances/{instance}/history"), None)
        }
        ("get", "/instances/{instance_id}/replay") => {
            let instance = app.start("sleepy", ADMIN_TOKEN, json!({})).await;
            (format!("/instances/{instance}/replay?at=1"), None)
        }
        ("post", "/tokens") => (
            "/tokens".to_owned(),
            Some(json!({"user": "zed", "role": "analyst"}).to_string()),
        ),
        ("get", "/tokens") => ("/tokens".to_owned(), None),
        ("delete", "/tokens/{token_id}") => {
            let answer = app
                .call(
                    Method::POST,
                    "/api/v1/tokens",
                    Some(ADMIN_TOKEN),
                    Some(json!({"user": "victim", "role": "analyst"}).to_string()),
                )
                .await;
            assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
            let id = answer.json()["id"].as_str().expect("a token id").to_owned();
            (format!("/tokens/{id}"), None)
        }
        ("get", "/openapi.json") => ("/openapi.json".to_owned(), None),
        ("get", "/connectors") => ("/connectors".to_owned(), None),
        _ => return None,
    };
    Some((format!("/api/v1{}", sample.0), sample.1))
}

/// Text that differs between calls, without a clock or randomness in the test.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("sample {}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// `rule`'s path with placeholder values, for requests that never reach the handler.
fn placeholder_path(rule: &Rule) -> String {
    let mut path = String::from("/api/v1");
    for segment in rule.path.split('/').skip(1) {
        path.push('/');
        if segment.starts_with('{') {
            path.push_str("placeholder");
        } else {
            path.push_str(segment);
        }
    }
    path
}

#[tokio::test]
async fn every_route_answers_401_403_or_success_for_each_role() {
    let app = TestApp::new().await;
    app.deploy(ECHO).await;
    app.deploy(SLEEPY).await;
    app.deploy(FAILING).await;
    let mut checked = 0;
    for rule in RULES {
        let method = rule.method.method();
        let allowed = match rule.access {
            Access::Roles(roles) => roles,
            // Signed routes authenticate themselves; their own tests cover them.
            Access::Signed => continue,
        };
        let route = format!("{} {}", method, rule.path);
        let anonymous_path = placeholder_path(rule);

        for token in [None, Some("not-a-token"), Some("gf_0000")] {
            let answer = app.call(method.clone(), &anonymous_path, token, None).await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{route} with token {token:?}: {}",
                answer.text
            );
            assert_eq!(answer.json()["error"]["code"], "unauthorized", "{route}");
        }

        for role in Role::ALL {
            let token = app.token(role).to_owned();
            if !allowed.contains(&role) {
                let answer = app
                    .call(method.clone(), &anonymous_path, Some(&token), None)
                    .await;
                assert_eq!(
                    answer.status,
                    StatusCode::FORBIDDEN,
                    "{route} as {role}: {}",
                    answer.text
                );
                assert_eq!(answer.json()["error"]["code"], "forbidden", "{route}");
                continue;
            }
            match sample(&app, rule).await {
                Some((path, body)) => {
                    let answer = app.call(method.clone(), &path, Some(&token), body).await;
                    assert!(
                        answer.status.is_success(),
                        "{route} as {role}: {} {}",
                        answer.status,
                        answer.text
                    );
                }
                None => {
                    let answer = app
                        .call(
                            method.clone(),
                            &anonymous_path,
                            Some(&token),
                            Some("{}".into()),
                        )
                        .await;
                    assert!(
                        !matches!(
                            answer.status,
                            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                        ) && !answer.status.is_server_error(),
                        "{route} as {role}: {} {}",
                        answer.status,
                        answer.text
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= RULES.len(), "only {checked} allowed calls made");
}

#[tokio::test]
async fn the_configured_admin_token_may_call_every_route() {
    let app = TestApp::new().await;
    for rule in RULES {
        if matches!(rule.access, Access::Roles(roles) if roles.contains(&Role::Admin)) {
            let answer = app
                .call(
                    rule.method.method(),
                    &placeholder_path(rule),
                    Some(ADMIN_TOKEN),
                    None,
                )
                .await;
            assert!(
                !matches!(
                    answer.status,
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                ),
                "{:?} {}: {}",
                rule.method,
                rule.path,
                answer.text
            );
        }
    }
}

#[tokio::test]
async fn openapi_document_lists_exactly_the_routes_of_the_policy_and_the_router() {
    let app = TestApp::new().await;
    let answer = app
        .call(
            Method::GET,
            "/api/v1/openapi.json",
            Some(app.token(Role::Auditor)),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(answer.content_type.starts_with("application/json"));
    let document = answer.json();
    assert_eq!(document["openapi"], "3.1.0");

    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            documented.insert((method.clone(), path.clone()));
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|responses| responses.contains_key("default")),
                "{method} {path} has no error response"
            );
        }
    }
    let policy: BTreeSet<(String, String)> = RULES
        .iter()
        .map(|rule| {
            (
                rule.method.as_str().to_owned(),
                format!("/api/v1{}", rule.path),
            )
        })
        .collect();
    assert_eq!(documented, policy, "document and policy differ");

    // The router serves every documented route: none falls through to the router's
    // "no such route" or "method not allowed" answers.
    for rule in RULES {
        let answer = app
            .call(
                rule.method.method(),
                &placeholder_path(rule),
                Some(ADMIN_TOKEN),
                None,
            )
            .await;
        assert_ne!(
            answer.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{}",
            rule.path
        );
        assert!(
            !answer.text.contains("no such route"),
            "{:?} {} is documented but not served",
            rule.method,
            rule.path
        );
    }

    // Each operation names its roles, and every schema it refers to exists.
    let restricted = &document["paths"]["/api/v1/tokens"]["post"];
    assert_eq!(restricted["security"], json!([{"bearer": ["admin"]}]));
    assert!(restricted["responses"]["403"].is_object());
    let schemas = document["components"]["schemas"]
        .as_object()
        .expect("component schemas");
    for name in [
        "Instance",
        "Definition",
        "History",
        "ErrorBody",
        "TokenRequest",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    let text = document.to_string();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap_or_default();
        assert!(schemas.contains_key(name), "dangling $ref to {name}");
    }
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn tokens_are_stored_as_hashes_and_name_the_acting_user_in_history() {
    let app = TestApp::new().await;
    app.deploy(SLEEPY).await;
    let analyst = app.token(Role::Analyst).to_owned();
    assert!(analyst.starts_with("gf_"));
    // The store knows the hash, never the token.
    assert!(app.store.token_by_hash(&analyst).await.unwrap().is_none());
    let stored = app
        .store
        .token_by_hash(&token_hash(&analyst))
        .await
        .unwrap()
        .expect("the token's hash is stored");
    assert_eq!(stored.user, "ana");
    assert_eq!(stored.role, "analyst");
    assert_eq!(stored.created_by, "admin");

    let instance = app.start("sleepy", &analyst, json!({})).await;
    let cancelled = app
        .call(
            Method::POST,
            &format!("/api/v1/instances/{instance}/cancel"),
            Some(&analyst),
            None,
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
    let history = app
        .call(
            Method::GET,
            &format!("/api/v1/instances/{instance}/history"),
            Some(app.token(Role::Auditor)),
            None,
        )
        .await
        .json();
    let events = history["events"].as_array().expect("events");
    let actor_of = |event_type: &str| {
        events
            .iter()
            .find(|event| event["type"] == event_type)
            .map(|event| event["actor"].clone())
    };
    assert_eq!(actor_of("instance_started"), Some(json!("ana")));
    assert_eq!(actor_of("instance_cancelled"), Some(json!("ana")));
    assert!(
        !history.to_string().contains(&analyst),
        "a token in history"
    );
}

#[tokio::test]
async fn bad_token_requests_are_listed_and_create_nothing() {
    let app = TestApp::new().await;
    let admin = app.token(Role::Admin).to_owned();
    let invalid = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&admin),
            Some(json!({"user": "no spaces", "role": "analyst", "groups": ["ok", ""]}).to_string()),
        )
        .await;
    assert_eq!(
        invalid.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        invalid.text
    );
    let body = invalid.json();
    assert_eq!(body["error"]["code"], "invalid");
    let paths: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|detail| detail["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["user", "groups[1]"]);

    let unknown_role = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&admin),
            Some(json!({"user": "zed", "role": "boss"}).to_string()),
        )
        .await;
    assert_eq!(
        unknown_role.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unknown_role.text
    );

    // A stored admin token creates tokens too, and the new one works at once.
    let approver = app
        .create_token(Role::Approver, "bea", &["brand-managers"])
        .await;
    let listed = app
        .call(Method::GET, "/api/v1/instances", Some(&approver), None)
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let refused = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&approver),
            Some(json!({"user": "eve", "role": "admin"}).to_string()),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
}

#[tokio::test]
async fn unknown_api_paths_need_a_token_before_they_are_not_found() {
    let app = TestApp::new().await;
    let anonymous = app.call(Method::GET, "/api/v1/nothing", None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let known = app
        .call(
            Method::GET,
            "/api/v1/nothing",
            Some(app.token(Role::Auditor)),
            None,
        )
        .await;
    assert_eq!(known.status, StatusCode::NOT_FOUND);
    // A method the path does not serve: 401 without a token, 405 with one.
    let anonymous = app.call(Method::DELETE, "/api/v1/tokens", None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let wrong_method = app
        .call(
            Method::DELETE,
            "/api/v1/tokens",
            Some(app.token(Role::Analyst)),
            None,
        )
        .await;
    assert_eq!(
        wrong_method.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "{}",
        wrong_method.text
    );
}

#[tokio::test]
async fn metrics_are_open_and_count_instances_steps_and_commits() {
    let app = TestApp::new().await;
    app.deploy(ECHO).await;
    app.deploy(FAILING).await;
    app.run_to_end("echo", json!({"name": "x"}), InstanceStatus::Completed)
        .await;
    app.run_to_end("failing", json!({}), InstanceStatus::Failed)
        .await;
    app.engine.record_approval_wait(Duration::from_secs(90));

    let answer = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(
        answer
            .content_type
            .starts_with("application/openmetrics-text")
    );
    let value = |name: &str| -> f64 {
        answer
            .text
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{name} missing in\n{}", answer.text))
            .parse()
            .unwrap()
    };
    assert_eq!(value("gridflow_instances{status=\"completed\"}"), 1.0);
    assert_eq!(value("gridflow_instances{status=\"failed\"}"), 1.0);
    assert_eq!(value("gridflow_instances{status=\"running\"}"), 0.0);
    assert_eq!(value("gridflow_steps_started_total"), 2.0);
    assert_eq!(value("gridflow_steps_succeeded_total"), 1.0);
    assert_eq!(value("gridflow_steps_failed_total"), 1.0);
    assert_eq!(value("gridflow_work_queue_depth"), 0.0);
    assert!(value("gridflow_commit_batch_size_count") >= 2.0);
    assert_eq!(value("gridflow_approval_wait_seconds_count"), 1.0);
    assert_eq!(
        value("gridflow_approval_wait_seconds_bucket{le=\"60.0\"}"),
        0.0
    );
    assert_eq!(
        value("gridflow_approval_wait_seconds_bucket{le=\"300.0\"}"),
        1.0
    );
}

#[tokio::test]
async fn definitions_and_versions_are_listed_a_page_at_a_time() {
    let app = TestApp::new().await;
    for id in ["alpha", "beta", "gamma"] {
        app.deploy(&ECHO.replace("id: echo", &format!("id: {id}")))
            .await;
    }
    app.deploy(&format!("{ECHO}description: second\n")).await;
    app.deploy(&format!("{ECHO}description: third\n")).await;
    app.deploy(ECHO).await; // a third version
    let analyst = app.token(Role::Analyst).to_owned();
    let get = |uri: String| {
        let app = &app;
        let analyst = analyst.clone();
        async move {
            let answer = app.call(Method::GET, &uri, Some(&analyst), None).await;
            assert_eq!(answer.status, StatusCode::OK, "{uri}: {}", answer.text);
            answer.json()
        }
    };
    let ids = |page: &Value, field: &str| -> Vec<Value> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item[field].clone())
            .collect()
    };

    let first = get("/api/v1/definitions?limit=2".to_owned()).await;
    assert_eq!(ids(&first, "id"), [json!("alpha"), json!("beta")]);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = get(format!("/api/v1/definitions?limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&second, "id"), [json!("echo"), json!("gamma")]);
    assert_eq!(second["next_cursor"], Value::Null);

    let versions = get("/api/v1/definitions/echo/versions?limit=2".to_owned()).await;
    assert_eq!(ids(&versions, "version"), [json!(1), json!(2)]);
    let cursor = versions["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let rest = get(format!(
        "/api/v1/definitions/echo/versions?limit=2&cursor={cursor}"
    ))
    .await;
    assert_eq!(ids(&rest, "version"), [json!(3)]);
    assert_eq!(rest["next_cursor"], Value::Null);

    for uri in [
        "/api/v1/definitions?limit=0",
        "/api/v1/definitions/echo/versions?cursor=latest",
    ] {
        let answer = app.call(Method::GET, uri, Some(&analyst), None).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{uri}: {}",
            answer.text
        );
        assert!(answer.json()["error"]["details"][0]["path"].is_string());
    }
}

#[test]
fn every_signed_route_is_outside_the_role_walk() {
    // The walk above skips signed routes; make sure that is the only thing it skips.
    for rule in RULES {
        if let Access::Roles(roles) = rule.access {
            assert!(!roles.is_empty(), "{} has no role", rule.path);
            assert!(policy::roles(rule.access).contains(&Role::Admin));
        }
    }
}

/// Whether `value` matches the document's component schema `name`; the errors if not.
fn schema_errors(document: &Value, name: &str, value: &Value) -> Vec<String> {
    // The whole document is the schema root, so `#/components/schemas/…` references
    // resolve; its other keys are not JSON Schema keywords and are ignored.
    let mut schema = document.clone();
    schema["$ref"] = json!(format!("#/components/schemas/{name}"));
    let validator = jsonschema::draft202012::new(&schema)
        .unwrap_or_else(|error| panic!("schema {name} does not compile: {error}"));
    validator
        .iter_errors(value)
        .map(|error| format!("{}: {error}", error.instance_path()))
        .collect()
}

#[tokio::test]
async fn responses_match_the_schemas_the_document_gives_them() {
    let app = TestApp::new().await;
    app.deploy(ECHO).await;
    app.deploy(FAILING).await;
    let completed = app
        .run_to_end("echo", json!({"name": "x"}), InstanceStatus::Completed)
        .await;
    let failed = app
        .run_to_end("failing", json!({}), InstanceStatus::Failed)
        .await;
    let document = openapi_document(&app).await;
    let get = |uri: String| {
        let app = &app;
        async move {
            let answer = app.call(Method::GET, &uri, Some(ADMIN_TOKEN), None).await;
            assert_eq!(answer.status, StatusCode::OK, "{uri}: {}", answer.text);
            answer.json()
        }
    };
    let mut checks = vec![
        (
            "Instance",
            get(format!("/api/v1/instances/{completed}")).await,
        ),
        ("Instance", get(format!("/api/v1/instances/{failed}")).await),
        (
            "History",
            get(format!("/api/v1/instances/{failed}/history")).await,
        ),
        (
            "Replay",
            get(format!("/api/v1/instances/{completed}/replay")).await,
        ),
        (
            "Definition",
            get("/api/v1/definitions/echo".to_owned()).await,
        ),
        ("Catalogue", get("/api/v1/connectors".to_owned()).await),
    ];
    let error = app
        .call(
            Method::GET,
            "/api/v1/instances/nothing",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    checks.push(("ErrorBody", error.json()));
    for (name, value) in &checks {
        let errors = schema_errors(&document, name, value);
        assert!(errors.is_empty(), "{name}: {errors:?}\n{value}");
    }
    // The check can fail: a value without the required fields does not match.
    assert!(!schema_errors(&document, "Instance", &json!({"id": "x"})).is_empty());
}

async fn openapi_document(app: &TestApp) -> Value {
    let answer = app
        .call(Method::GET, "/api/v1/openapi.json", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    answer.json()
}
