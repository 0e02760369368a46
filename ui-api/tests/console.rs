//! The console's first slice over the in-process harness: sign-in and its cookie, CSP on
//! every page, the inbox, an approval's page and its form, decisions with their refusals
//! shown on the page, CSRF, the role check and sign-out. Plain HTTP through `oneshot`,
//! with the cookie sent back by hand (the browser tests of issue 15 come later).

// The helpers below are test code too; `allow-unwrap-in-tests` covers only `#[test]` items.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};

use gridflow::console::CSP;
use support::{Harness, Reply};

const TOKEN: &str = "test-admin-token";

/// One approval with a form, assigned to ann and the `brand` group; quorum 1.
const REVIEW: &str = r#"
id: console-review
steps:
  - id: review
    approval:
      title: "Ship order ${input.order}?"
      users: [ann]
      groups: [brand]
      form:
        type: object
        required: [channel]
        properties:
          channel: {enum: [web, print]}
          budget: {type: integer, maximum: 100}
          urgent: {type: boolean}
          markets: {type: array, items: {type: string}}
output: {decision: "${steps.review.decision}"}
"#;

struct Console {
    harness: Harness,
}

impl Console {
    async fn new() -> Self {
        let harness = Harness::start(TOKEN).await;
        let console = Self { harness };
        let (status, body) = console
            .api(Method::POST, "/api/v1/definitions", REVIEW.to_owned())
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        console
    }

    async fn api(&self, method: Method, uri: &str, body: String) -> (StatusCode, Value) {
        let request = support::request(method, uri, Some(TOKEN))
            .body(Body::from(body))
            .unwrap();
        let reply = self.harness.send(request).await;
        (reply.status, reply.json_or_null())
    }

    /// A stored token for `user` with `role` and `groups`.
    async fn token(&self, user: &str, role: &str, groups: &[&str]) -> String {
        let (status, body) = self
            .api(
                Method::POST,
                "/api/v1/tokens",
                json!({"user": user, "role": role, "groups": groups}).to_string(),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    async fn start(&self, order: u32) -> String {
        let (status, body) = self
            .api(
                Method::POST,
                "/api/v1/definitions/console-review/instances",
                json!({"input": {"order": order}}).to_string(),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["instance_id"].as_str().unwrap().to_owned()
    }

    async fn get(&self, uri: &str, cookie: Option<&str>) -> Reply {
        let mut request = Request::builder().method(Method::GET).uri(uri);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.harness
            .send(request.body(Body::empty()).unwrap())
            .await
    }

    async fn post(&self, uri: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Reply {
        let body: Vec<String> = fields
            .iter()
            .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
            .collect();
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.harness
            .send(request.body(Body::from(body.join("&"))).unwrap())
            .await
    }

    /// Signs in with `token`; the `Cookie` header value of the session.
    async fn sign_in(&self, token: &str) -> String {
        let reply = self.post("/signin", None, &[("token", token)]).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
        let set = header_text(&reply, header::SET_COOKIE);
        set.split(';').next().unwrap().to_owned()
    }

    async fn wait_for_status(&self, instance: &str, wanted: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, body) = self
                .api(
                    Method::GET,
                    &format!("/api/v1/instances/{instance}"),
                    String::new(),
                )
                .await;
            if body["status"] == wanted {
                return;
            }
            assert!(Instant::now() < deadline, "{instance}: {body}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn header_text(reply: &Reply, name: header::HeaderName) -> String {
    reply
        .headers
        .get(name)
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The value of the first hidden `csrf` field in a page posting to `action`.
fn csrf_of(page: &str, action: &str) -> String {
    let form = &page[page
        .find(&format!("action=\"{action}\""))
        .unwrap_or_else(|| panic!("no form posting to {action} in {page}"))..];
    let start = form.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    form[start..start + 64].to_owned()
}

fn assert_secure_headers(reply: &Reply) {
    assert_eq!(header_text(reply, header::CONTENT_SECURITY_POLICY), CSP);
    assert_eq!(
        header_text(reply, header::X_CONTENT_TYPE_OPTIONS),
        "nosniff"
    );
    assert_eq!(header_text(reply, header::REFERRER_POLICY), "no-referrer");
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_and_root_redirects_by_session() {
    let console = Console::new().await;
    let root = console.get("/", None).await;
    assert_eq!(root.status, StatusCode::SEE_OTHER);
    assert_eq!(header_text(&root, header::LOCATION), "/signin");
    let page = console.get("/signin", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("name=\"token\""), "{}", page.text());

    let token = console.token("ann", "approver", &[]).await;
    let reply = console.post("/signin", None, &[("token", &token)]).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(header_text(&reply, header::LOCATION), "/inbox");
    let cookie = header_text(&reply, header::SET_COOKIE);
    assert!(cookie.starts_with("gridflow_session="), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie} lacks {flag}");
    }
    assert!(!cookie.contains(&token), "the cookie is not the token");
    let cookie = cookie.split(';').next().unwrap();
    let root = console.get("/", Some(cookie)).await;
    assert_eq!(header_text(&root, header::LOCATION), "/inbox");
}

#[tokio::test]
async fn a_wrong_token_is_refused_with_a_page() {
    let console = Console::new().await;
    let reply = console
        .post("/signin", None, &[("token", "gf_not-a-token")])
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(header_text(&reply, header::SET_COOKIE).is_empty());
    assert!(
        reply
            .content_type()
            .unwrap_or_default()
            .starts_with("text/html")
    );
    assert!(reply.text().contains("Sign-in refused"), "{}", reply.text());
    assert_secure_headers(&reply);
}

#[tokio::test]
async fn every_console_page_carries_the_security_headers() {
    let console = Console::new().await;
    let cookie = console.sign_in(TOKEN).await;
    console.start(1).await;
    for (uri, cookie) in [
        ("/", None),
        ("/signin", None),
        ("/inbox", None),
        ("/inbox", Some(cookie.as_str())),
        ("/console/style.css", None),
    ] {
        let reply = console.get(uri, cookie).await;
        assert_secure_headers(&reply);
    }
    let refused = console.post("/signout", Some(&cookie), &[]).await;
    assert_secure_headers(&refused);
}

#[tokio::test]
async fn the_inbox_lists_a_pending_approval_and_its_page_shows_the_form() {
    let console = Console::new().await;
    let instance = console.start(7).await;
    let cookie = console
        .sign_in(&console.token("gus", "approver", &["brand"]).await)
        .await;
    let inbox = console.get("/inbox", Some(&cookie)).await;
    assert_eq!(inbox.status, StatusCode::OK);
    let text = inbox.text();
    assert!(text.contains("Ship order 7?"), "{text}");
    assert!(text.contains(&instance), "{text}");
    let approval = format!("{instance}:review:1");
    assert!(
        text.contains(&format!("href=\"/approvals/{approval}\"")),
        "{text}"
    );

    let page = console
        .get(&format!("/approvals/{approval}"), Some(&cookie))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let text = page.text();
    for expected in [
        "<select id=\"f-channel\" name=\"data.channel\">",
        "<option>print</option>",
        "type=\"number\" step=\"1\" name=\"data.budget\"",
        "type=\"checkbox\" name=\"data.urgent\"",
        "name=\"data.markets\" placeholder=\"comma-separated\"",
        "name=\"comment\"",
        "value=\"approve\"",
        "value=\"reject\"",
        "&#34;order&#34;: 7",
    ] {
        assert!(text.contains(expected), "{expected} missing from {text}");
    }
}

#[tokio::test]
async fn approving_through_the_form_completes_the_instance_and_a_second_post_shows_409() {
    let console = Console::new().await;
    let instance = console.start(8).await;
    let approval = format!("{instance}:review:1");
    let action = format!("/approvals/{approval}/decide");
    let cookie = console
        .sign_in(&console.token("ann", "approver", &[]).await)
        .await;
    let page = console
        .get(&format!("/approvals/{approval}"), Some(&cookie))
        .await;
    let csrf = csrf_of(&page.text(), &action);

    // A field the form refuses: shown on the page with its path.
    let refused = console
        .post(
            &action,
            Some(&cookie),
            &[
                ("csrf", &csrf),
                ("data.channel", "web"),
                ("data.budget", "500"),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let text = refused.text();
    assert!(text.contains("not filled in correctly"), "{text}");
    assert!(text.contains("budget"), "{text}");
    assert!(!text.trim_start().starts_with('{'), "not raw JSON: {text}");

    let fields = [
        ("csrf", csrf.as_str()),
        ("data.channel", "print"),
        ("data.budget", "40"),
        ("data.markets", "DE, FR"),
        ("comment", "fine <b>by</b> me"),
        ("decision", "approve"),
    ];
    let decided = console.post(&action, Some(&cookie), &fields).await;
    assert_eq!(decided.status, StatusCode::SEE_OTHER, "{}", decided.text());
    let location = header_text(&decided, header::LOCATION);
    assert_eq!(location, format!("/approvals/{approval}?decided=1"));
    console.wait_for_status(&instance, "completed").await;
    let shown = console.get(&location, Some(&cookie)).await;
    let text = shown.text();
    assert!(text.contains("Your decision was recorded."), "{text}");
    assert!(text.contains("<strong>ann</strong>: approve"), "{text}");
    assert!(
        text.contains("fine &#60;b&#62;by&#60;/b&#62; me"),
        "escaped: {text}"
    );

    let again = console.post(&action, Some(&cookie), &fields).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let text = again.text();
    assert!(
        text.contains("This approval cannot take your decision any more"),
        "{text}"
    );
    assert!(text.contains("class=\"notice error\""), "{text}");
}

#[tokio::test]
async fn a_post_without_a_valid_csrf_token_is_refused() {
    let console = Console::new().await;
    let instance = console.start(9).await;
    let action = format!("/approvals/{instance}:review:1/decide");
    let cookie = console
        .sign_in(&console.token("ann", "approver", &[]).await)
        .await;
    for fields in [
        vec![("decision", "approve"), ("data.channel", "web")],
        vec![("csrf", "00"), ("decision", "approve")],
    ] {
        let reply = console.post(&action, Some(&cookie), &fields).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert!(
            reply.text().contains("This form has expired"),
            "{}",
            reply.text()
        );
    }
    // The sign-out form's token is not the decision form's.
    let inbox = console.get("/inbox", Some(&cookie)).await;
    let sign_out = csrf_of(&inbox.text(), "/signout");
    let reply = console
        .post(
            &action,
            Some(&cookie),
            &[("csrf", &sign_out), ("decision", "approve")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let (_, body) = console
        .api(
            Method::GET,
            &format!("/api/v1/instances/{instance}"),
            String::new(),
        )
        .await;
    assert_eq!(body["status"], "waiting", "undecided: {body}");
}

#[tokio::test]
async fn an_analyst_gets_a_403_page_for_the_inbox() {
    let console = Console::new().await;
    let cookie = console
        .sign_in(&console.token("ana", "analyst", &[]).await)
        .await;
    let reply = console.get("/inbox", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let text = reply.text();
    assert!(text.contains("Not allowed"), "{text}");
    assert!(text.contains("analyst"), "{text}");
    assert_secure_headers(&reply);
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let console = Console::new().await;
    let cookie = console
        .sign_in(&console.token("ann", "approver", &[]).await)
        .await;
    let inbox = console.get("/inbox", Some(&cookie)).await;
    assert_eq!(inbox.status, StatusCode::OK);
    let csrf = csrf_of(&inbox.text(), "/signout");
    let reply = console
        .post("/signout", Some(&cookie), &[("csrf", &csrf)])
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(header_text(&reply, header::LOCATION), "/signin");
    assert!(header_text(&reply, header::SET_COOKIE).contains("Max-Age=0"));
    let after = console.get("/inbox", Some(&cookie)).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert_eq!(header_text(&after, header::LOCATION), "/signin");
}

#[tokio::test]
async fn a_revoked_token_ends_its_sessions() {
    let console = Console::new().await;
    let (status, created) = console
        .api(
            Method::POST,
            "/api/v1/tokens",
            json!({"user": "ann", "role": "approver"}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let cookie = console.sign_in(created["token"].as_str().unwrap()).await;
    assert_eq!(
        console.get("/inbox", Some(&cookie)).await.status,
        StatusCode::OK
    );
    let id = created["id"].as_str().unwrap();
    let (status, body) = console
        .api(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            String::new(),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let after = console.get("/inbox", Some(&cookie)).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
}
