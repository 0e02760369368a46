//! Tokens, idempotent starts and the anonymous edge, through the router (`app(state)` and
//! `oneshot`) on the memory store, with a manual clock where time matters:
//! - tokens expire (default lifetime or `expires_in`), are listed without their secret,
//!   are revoked, and both creation and revocation are in the audit log; reserved user
//!   names are refused in any letter case; demo tokens work only on their server run;
//! - a start with an `Idempotency-Key` happens once, however often or concurrently it is
//!   sent, and the same key with another body is refused naming the key;
//! - anonymous `OPTIONS` and unknown methods get the same 401 as anything else under
//!   `/api/v1`, with no `allow` header.

// The helpers below are test code too; `allow-unwrap-in-tests` covers only `#[test]` items.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode, header};
use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use gridflow::http::state::TokenSettings;
use gridflow_runtime::{Engine, ManualClock};
use gridflow_store::MemoryStore;
use support::{Harness, Options};

const ADMIN_TOKEN: &str = "identity-admin-token";

const SLEEPY: &str = "id: sleepy\ninput:\n  type: object\nsteps:\n  - id: nap\n    sleep: 1h\n";

struct TestApp {
    router: Router,
    engine: Engine,
    clock: Arc<ManualClock>,
    store: Arc<MemoryStore>,
    settings: TokenSettings,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl TestApp {
    async fn new() -> Self {
        let store = Arc::new(MemoryStore::new());
        Self::on(
            store,
            TokenSettings {
                default_lifetime: Duration::from_secs(3600),
                max_lifetime: Duration::from_secs(24 * 3600),
                server_run: Arc::from("run-1"),
            },
        )
        .await
    }

    /// An app on `store` (a server run of its own when `settings` name another run).
    async fn on(store: Arc<MemoryStore>, settings: TokenSettings) -> Self {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 12, 7, 8, 0, 0).unwrap(),
        ));
        let options = Options {
            store: store.clone(),
            clock: clock.clone(),
            tokens: settings.clone(),
            ..Options::new(ADMIN_TOKEN)
        };
        let Harness { engine, router, .. } = Harness::with(options).await;
        Self {
            router,
            engine,
            clock,
            store,
            settings,
        }
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Answer {
        let mut request = support::request(method, uri, token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        // A JSON string is sent as raw text (a YAML definition); anything else as JSON.
        let body = match body {
            None => Body::empty(),
            Some(Value::String(raw)) => Body::from(raw),
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
        };
        let request = request.body(body).unwrap();
        let reply = support::send(&self.router, request).await;
        Answer {
            status: reply.status,
            body: reply.json_or_null(),
            headers: reply.headers,
        }
    }

    /// Creates a token as the admin; returns the answer's body (`token`, `id`, …).
    async fn create(&self, request: Value) -> Value {
        let answer = self
            .call(
                Method::POST,
                "/api/v1/tokens",
                Some(ADMIN_TOKEN),
                &[],
                Some(request),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.body
    }

    /// The status of `GET /instances` with `token`.
    async fn status_with(&self, token: &str) -> (StatusCode, Value) {
        let answer = self
            .call(Method::GET, "/api/v1/instances", Some(token), &[], None)
            .await;
        (answer.status, answer.body)
    }

    async fn start(&self, token: &str, key: Option<&str>, body: Value) -> Answer {
        let headers: Vec<(&str, &str)> = key
            .map(|key| ("Idempotency-Key", key))
            .into_iter()
            .collect();
        self.call(
            Method::POST,
            "/api/v1/definitions/sleepy/instances",
            Some(token),
            &headers,
            Some(body),
        )
        .await
    }

    async fn instance_count(&self) -> usize {
        let answer = self
            .call(
                Method::GET,
                "/api/v1/instances?limit=500",
                Some(ADMIN_TOKEN),
                &[],
                None,
            )
            .await;
        answer.body["items"].as_array().unwrap().len()
    }
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap()
}

#[tokio::test]
async fn tokens_expire_after_the_default_lifetime_or_expires_in() {
    let app = TestApp::new().await;
    let default = app.create(json!({"user": "ana", "role": "analyst"})).await;
    let short = app
        .create(json!({"user": "bob", "role": "analyst", "expires_in": "10m"}))
        .await;
    let in_seconds = app
        .create(json!({"user": "cid", "role": "analyst", "expires_in": 120}))
        .await;
    assert_eq!(default["expires_at"], "2026-12-07T09:00:00Z");
    assert_eq!(short["expires_at"], "2026-12-07T08:10:00Z");
    assert_eq!(in_seconds["expires_at"], "2026-12-07T08:02:00Z");
    for token in [&default, &short, &in_seconds] {
        assert_eq!(
            app.status_with(text(&token["token"])).await.0,
            StatusCode::OK
        );
    }

    app.clock.advance(Duration::from_secs(120));
    let (status, body) = app.status_with(text(&in_seconds["token"])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(
        text(&body["error"]["message"]).contains("expired"),
        "{body}"
    );
    assert_eq!(
        app.status_with(text(&short["token"])).await.0,
        StatusCode::OK
    );

    app.clock.advance(Duration::from_secs(3600));
    for token in [&default, &short] {
        assert_eq!(
            app.status_with(text(&token["token"])).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // The list still shows them, with their expiry.
    let listed = app
        .call(Method::GET, "/api/v1/tokens", Some(ADMIN_TOKEN), &[], None)
        .await;
    assert_eq!(
        listed.body["items"][0]["expires_at"],
        "2026-12-07T09:00:00Z"
    );
}

#[tokio::test]
async fn lifetimes_beyond_the_maximum_or_malformed_are_refused() {
    let app = TestApp::new().await;
    for expires_in in [json!("2d"), json!(0), json!("soon"), json!(-1)] {
        let answer = app
            .call(
                Method::POST,
                "/api/v1/tokens",
                Some(ADMIN_TOKEN),
                &[],
                Some(json!({"user": "ana", "role": "analyst", "expires_in": expires_in})),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{expires_in}"
        );
        assert_eq!(answer.body["error"]["details"][0]["path"], "expires_in");
    }
    assert!(app.engine.list_tokens().await.unwrap().is_empty());
}

#[tokio::test]
async fn tokens_are_listed_without_secrets_and_revoked_tokens_are_refused() {
    let app = TestApp::new().await;
    let ana = app
        .create(json!({"user": "ana", "role": "approver", "groups": ["legal", "brand"]}))
        .await;
    let otto = app.create(json!({"user": "otto", "role": "auditor"})).await;

    let listed = app
        .call(Method::GET, "/api/v1/tokens", Some(ADMIN_TOKEN), &[], None)
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], ana["id"]);
    assert_eq!(items[0]["user"], "ana");
    assert_eq!(items[0]["role"], "approver");
    assert_eq!(items[0]["groups"], json!(["brand", "legal"]));
    assert_eq!(items[0]["created_at"], "2026-12-07T08:00:00Z");
    assert_eq!(items[0]["created_by"], "admin");
    assert_eq!(items[0]["revoked"], false);
    assert_eq!(listed.body["next_cursor"], Value::Null);
    // Neither a token nor its hash is in the list.
    let text_of_list = listed.body.to_string();
    for token in [&ana, &otto] {
        let secret = text(&token["token"]);
        assert!(!text_of_list.contains(secret));
        assert!(!text_of_list.contains(&gridflow::http::auth::token_hash(secret)));
    }
    // Paging.
    let first = app
        .call(
            Method::GET,
            "/api/v1/tokens?limit=1",
            Some(ADMIN_TOKEN),
            &[],
            None,
        )
        .await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 1);
    let cursor = text(&first.body["next_cursor"]).to_owned();
    let second = app
        .call(
            Method::GET,
            &format!("/api/v1/tokens?limit=1&cursor={cursor}"),
            Some(ADMIN_TOKEN),
            &[],
            None,
        )
        .await;
    assert_eq!(second.body["items"][0]["id"], otto["id"]);
    assert_eq!(second.body["next_cursor"], Value::Null);

    // Only admins list or revoke.
    let forbidden = app
        .call(
            Method::GET,
            "/api/v1/tokens",
            Some(text(&otto["token"])),
            &[],
            None,
        )
        .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);

    app.clock.advance(Duration::from_secs(60));
    let path = format!("/api/v1/tokens/{}", text(&ana["id"]));
    let revoked = app
        .call(Method::DELETE, &path, Some(ADMIN_TOKEN), &[], None)
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert_eq!(revoked.body["revoked"], true);
    assert_eq!(revoked.body["revoked_at"], "2026-12-07T08:01:00Z");
    let (status, body) = app.status_with(text(&ana["token"])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        text(&body["error"]["message"]).contains("revoked"),
        "{body}"
    );
    assert_eq!(
        app.status_with(text(&otto["token"])).await.0,
        StatusCode::OK
    );
    // Revoking again changes nothing; an unknown id is 404.
    app.clock.advance(Duration::from_secs(60));
    let again = app
        .call(Method::DELETE, &path, Some(ADMIN_TOKEN), &[], None)
        .await;
    assert_eq!(again.body["revoked_at"], "2026-12-07T08:01:00Z");
    let unknown = app
        .call(
            Method::DELETE,
            "/api/v1/tokens/nope",
            Some(ADMIN_TOKEN),
            &[],
            None,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    // The audit log has both creations and one revocation, never a secret.
    let log = app.engine.audit_log().await.unwrap();
    let kinds: Vec<(&str, &str)> = log
        .iter()
        .map(|record| (record.event_type.as_str(), record.actor.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("token_created", "admin"),
            ("token_created", "admin"),
            ("token_revoked", "admin")
        ]
    );
    assert_eq!(log[2].data["id"], ana["id"]);
    assert_eq!(log[2].data["user"], "ana");
    let log_text = serde_json::to_string(&log.iter().map(|r| &r.data).collect::<Vec<_>>()).unwrap();
    assert!(!log_text.contains(text(&ana["token"])));
}

#[tokio::test]
async fn reserved_user_names_are_refused_in_any_letter_case() {
    let app = TestApp::new().await;
    for user in ["admin", "Admin", "ADMIN", "system", "System", "SYSTEM"] {
        let answer = app
            .call(
                Method::POST,
                "/api/v1/tokens",
                Some(ADMIN_TOKEN),
                &[],
                Some(json!({"user": user, "role": "analyst"})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{user}");
        assert_eq!(answer.body["error"]["details"][0]["path"], "user");
        assert!(
            text(&answer.body["error"]["details"][0]["message"]).contains("reserved"),
            "{}",
            answer.body
        );
    }
    assert!(app.engine.list_tokens().await.unwrap().is_empty());
}

#[tokio::test]
async fn demo_tokens_work_only_on_their_server_run_and_are_revoked_by_the_next() {
    let first = TestApp::new().await;
    let demo =
        gridflow::http::sandbox_tokens::create_sandbox_tokens(&first.engine, &first.settings)
            .await
            .unwrap();
    let users = gridflow::http::sandbox_tokens::sandbox_users().len();
    assert_eq!(demo.len(), users);
    for (_, token) in &demo {
        assert_eq!(first.status_with(token).await.0, StatusCode::OK);
    }
    // Another run on the same store (the first was killed): refused at once.
    let second = TestApp::on(
        first.store.clone(),
        TokenSettings {
            server_run: Arc::from("run-2"),
            ..first.settings.clone()
        },
    )
    .await;
    for (_, token) in &demo {
        let (status, body) = second.status_with(token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            text(&body["error"]["message"]).contains("sandbox"),
            "{body}"
        );
    }
    // Its start-up revokes them, once; its own stay valid until its shutdown.
    let revoked = gridflow::http::sandbox_tokens::revoke_sandbox_tokens(
        &second.engine,
        &second.settings,
        false,
    )
    .await
    .unwrap();
    assert_eq!(revoked, users);
    let own =
        gridflow::http::sandbox_tokens::create_sandbox_tokens(&second.engine, &second.settings)
            .await
            .unwrap();
    assert_eq!(
        gridflow::http::sandbox_tokens::revoke_sandbox_tokens(
            &second.engine,
            &second.settings,
            false
        )
        .await
        .unwrap(),
        0
    );
    assert_eq!(second.status_with(&own[0].1).await.0, StatusCode::OK);
    assert_eq!(
        gridflow::http::sandbox_tokens::revoke_sandbox_tokens(
            &second.engine,
            &second.settings,
            true
        )
        .await
        .unwrap(),
        users
    );
    assert_eq!(
        second.status_with(&own[0].1).await.0,
        StatusCode::UNAUTHORIZED
    );
    let listed = second.engine.list_tokens().await.unwrap();
    assert_eq!(listed.len(), 2 * users);
    assert!(listed.iter().all(|token| token.revoked_at.is_some()));
    let revocations = second
        .engine
        .audit_log()
        .await
        .unwrap()
        .iter()
        .filter(|record| record.event_type == "token_revoked" && record.actor == "system")
        .count();
    assert_eq!(revocations, 2 * users);
}

#[tokio::test]
async fn anonymous_options_and_unknown_methods_get_401_without_allow() {
    let app = TestApp::new().await;
    let token = app.create(json!({"user": "ana", "role": "analyst"})).await;
    for path in [
        "/api/v1/tokens",
        "/api/v1/instances",
        "/api/v1/nothing",
        "/api/v1",
    ] {
        for method in [
            Method::OPTIONS,
            Method::TRACE,
            Method::from_bytes(b"PROPFIND").unwrap(),
            Method::PUT,
        ] {
            let answer = app.call(method.clone(), path, None, &[], None).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_eq!(answer.body["error"]["code"], "unauthorized");
            assert!(
                answer.headers.get(header::ALLOW).is_none(),
                "{method} {path} reveals {:?}",
                answer.headers.get(header::ALLOW)
            );
        }
    }
    // With a token, a method the API never serves is 405.
    let answer = app
        .call(
            Method::OPTIONS,
            "/api/v1/instances",
            Some(text(&token["token"])),
            &[],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.body["error"]["code"], "method_not_allowed");
    // ... and, as HTTP asks of a 405, names the methods the path serves.
    let allow = answer
        .headers
        .get(header::ALLOW)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    assert!(allow.contains("GET"), "allow: {allow:?}");
}

#[tokio::test]
async fn a_start_with_an_idempotency_key_happens_once() {
    let app = TestApp::new().await;
    let deployed = app
        .call(
            Method::POST,
            "/api/v1/definitions",
            Some(ADMIN_TOKEN),
            &[],
            Some(Value::String(SLEEPY.to_owned())),
        )
        .await;
    assert!(deployed.status.is_success(), "{}", deployed.body);
    let ana = app.create(json!({"user": "ana", "role": "analyst"})).await;
    let ana = text(&ana["token"]).to_owned();
    let body = json!({"input": {"n": 1}});

    let first = app.start(&ana, Some("key-1"), body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let instance = text(&first.body["instance_id"]).to_owned();
    for _ in 0..3 {
        let again = app.start(&ana, Some("key-1"), body.clone()).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.body);
        assert_eq!(again.body["instance_id"], instance.as_str());
        assert_eq!(
            again.headers.get(header::LOCATION).unwrap(),
            &format!("/api/v1/instances/{instance}")
        );
    }
    assert_eq!(app.instance_count().await, 1);

    // The same key with another body is refused, naming the key; nothing starts.
    for other in [
        json!({"input": {"n": 2}}),
        json!({"input": {"n": 1}, "version": 2}),
    ] {
        let refused = app.start(&ana, Some("key-1"), other.clone()).await;
        assert!(
            refused.status == StatusCode::CONFLICT,
            "{other}: {} {}",
            refused.status,
            refused.body
        );
        assert!(
            text(&refused.body["error"]["message"]).contains("\"key-1\""),
            "{}",
            refused.body
        );
    }
    // The key is the caller's: another user with the same key starts another instance.
    let other_user = app.start(ADMIN_TOKEN, Some("key-1"), body.clone()).await;
    assert_eq!(other_user.status, StatusCode::CREATED);
    assert_ne!(other_user.body["instance_id"], instance.as_str());
    // Without a key, every call starts one; a bad key is a 400 naming the header.
    assert_eq!(
        app.start(&ana, None, body.clone()).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.start(&ana, None, body.clone()).await.status,
        StatusCode::CREATED
    );
    let bad = app.start(&ana, Some(&"k".repeat(256)), body.clone()).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["error"]["details"][0]["path"], "Idempotency-Key");
    assert_eq!(app.instance_count().await, 4);
}

#[tokio::test]
async fn concurrent_starts_with_one_key_start_one_instance() {
    let app = Arc::new(TestApp::new().await);
    let deployed = app
        .call(
            Method::POST,
            "/api/v1/definitions",
            Some(ADMIN_TOKEN),
            &[],
            Some(Value::String(SLEEPY.to_owned())),
        )
        .await;
    assert!(deployed.status.is_success());
    let mut calls = Vec::new();
    for _ in 0..20 {
        let app = app.clone();
        calls.push(tokio::spawn(async move {
            app.start(ADMIN_TOKEN, Some("together"), json!({"input": {}}))
                .await
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut created = 0;
    for call in calls {
        let answer = call.await.unwrap();
        assert!(
            answer.status.is_success(),
            "{} {}",
            answer.status,
            answer.body
        );
        if answer.status == StatusCode::CREATED {
            created += 1;
        }
        ids.insert(text(&answer.body["instance_id"]).to_owned());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(created, 1);
    assert_eq!(app.instance_count().await, 1);
}
