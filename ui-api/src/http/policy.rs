//! The access policy of `/api/v1`: ONE table, [`RULES`], says which roles may call each
//! route. The `authorize` middleware applies it to every matched route before any handler
//! runs, so no handler can forget it; a route missing from the table is refused (500) for
//! everyone, and tests compare the table with the router and the OpenAPI document.
//!
//! Adding a route: one line in [`RULES`] (method, path as registered, who), and the
//! handler registered with `routes!` in the router (`http/mod.rs`) (which documents it in OpenAPI).
//!
//! Decisions (see ARCHITECTURE.md "Identity and access"): every role reads definitions,
//! instances and the connector catalogue (what definitions may call, and the state of
//! runs, are needed to approve or audit them); analysts deploy, start, cancel, retry,
//! re-run, migrate, signal and read history; approvers list and
//! decide approvals (assignment is checked by the approval handlers, 403 otherwise);
//! auditors read history, replay, verify and export; admins do everything, and alone
//! create, list and revoke tokens.

use axum::http::Method;

use crate::http::role::Role;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Callers with a bearer token of one of these roles.
    Roles(&'static [Role]),
    /// No bearer token: the handler authenticates the request itself (inbound webhooks
    /// signed with HMAC). Use for nothing else.
    Signed,
}

/// One row of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The HTTP method.
    pub method: Verb,
    /// The path as registered, relative to `/api/v1` (`/instances/{instance_id}`).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

/// HTTP methods the API uses; `const`-friendly, unlike [`Method`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// GET (HEAD is treated as GET).
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

impl Verb {
    /// The verb of a request method; `None` for methods the API never serves.
    pub fn of(method: &Method) -> Option<Self> {
        match *method {
            Method::GET | Method::HEAD => Some(Verb::Get),
            Method::POST => Some(Verb::Post),
            Method::PUT => Some(Verb::Put),
            Method::PATCH => Some(Verb::Patch),
            Method::DELETE => Some(Verb::Delete),
            _ => None,
        }
    }

    /// The method.
    pub fn method(self) -> Method {
        match self {
            Verb::Get => Method::GET,
            Verb::Post => Method::POST,
            Verb::Put => Method::PUT,
            Verb::Patch => Method::PATCH,
            Verb::Delete => Method::DELETE,
        }
    }

    /// Lowercase name, as OpenAPI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Put => "put",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }
}

use Role::{Admin, Analyst, Approver, Auditor};

/// Every role: reads of the catalogue and of instance state.
pub const EVERYONE: &[Role] = &[Analyst, Approver, Auditor, Admin];
/// Deploy, start, cancel, retry, signal.
pub const OPERATORS: &[Role] = &[Analyst, Admin];
/// History: those who watch runs and those who audit them.
pub const HISTORY_READERS: &[Role] = &[Analyst, Auditor, Admin];
/// Replay, verify, export.
pub const AUDITORS: &[Role] = &[Auditor, Admin];
/// List and decide approvals (the handler checks the assignment).
pub const APPROVERS: &[Role] = &[Approver, Admin];
/// Tokens.
pub const ADMINS: &[Role] = &[Admin];

const fn rule(method: Verb, path: &'static str, roles: &'static [Role]) -> Rule {
    Rule {
        method,
        path,
        access: Access::Roles(roles),
    }
}

/// The policy: every route of `/api/v1`, one line each.
pub const RULES: &[Rule] = &[
    rule(Verb::Post, "/definitions", OPERATORS),
    rule(Verb::Post, "/sandbox/clock", OPERATORS),
    rule(Verb::Get, "/definitions", EVERYONE),
    rule(Verb::Get, "/definitions/{definition_id}", EVERYONE),
    rule(Verb::Get, "/definitions/{definition_id}/versions", EVERYONE),
    rule(
        Verb::Get,
        "/definitions/{definition_id}/versions/{version}",
        EVERYONE,
    ),
    rule(
        Verb::Post,
        "/definitions/{definition_id}/instances",
        OPERATORS,
    ),
    rule(Verb::Get, "/instances", EVERYONE),
    rule(Verb::Get, "/instances/{instance_id}", EVERYONE),
    rule(Verb::Post, "/instances/{instance_id}/cancel", OPERATORS),
    rule(
        Verb::Post,
        "/instances/{instance_id}/steps/{step_id}/retry",
        OPERATORS,
    ),
    rule(
        Verb::Get,
        "/instances/{instance_id}/history",
        HISTORY_READERS,
    ),
    rule(Verb::Get, "/instances/{instance_id}/replay", AUDITORS),
    rule(Verb::Post, "/tokens", ADMINS),
    rule(Verb::Get, "/tokens", ADMINS),
    rule(Verb::Delete, "/tokens/{token_id}", ADMINS),
    rule(Verb::Get, "/openapi.json", EVERYONE),
    rule(
        Verb::Post,
        "/instances/{instance_id}/signals/{name}",
        OPERATORS,
    ),
    rule(Verb::Get, "/approvals", APPROVERS),
    rule(Verb::Get, "/approvals/{approval_id}", APPROVERS),
    rule(Verb::Post, "/approvals/{approval_id}/decision", APPROVERS),
    rule(Verb::Get, "/audit/key", AUDITORS),
    rule(Verb::Get, "/audit/checkpoints", AUDITORS),
    rule(Verb::Post, "/audit/checkpoints", AUDITORS),
    rule(Verb::Get, "/audit/verify", AUDITORS),
    rule(Verb::Get, "/audit/export", AUDITORS),
    rule(Verb::Get, "/ledger", HISTORY_READERS),
    rule(Verb::Get, "/ledger/{delivery_id}", HISTORY_READERS),
    rule(Verb::Get, "/connectors", EVERYONE),
    rule(Verb::Post, "/instances/{instance_id}/rerun", OPERATORS),
    rule(
        Verb::Post,
        "/definitions/{definition_id}/migrations",
        OPERATORS,
    ),
    Rule {
        method: Verb::Post,
        path: "/events/{source}",
        access: Access::Signed,
    },
];

/// What the policy says about a request to `path` (relative to `/api/v1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The route has a rule.
    Rule(Access),
    /// The path has rules, but none for this method: 405 once authenticated.
    MethodNotAllowed,
    /// The route is served but has no rule: a bug, refused for everyone.
    Missing,
}

/// Looks up the rule of `method` on `path`.
pub fn decide(method: &Method, path: &str) -> Decision {
    let verb = Verb::of(method);
    let mut path_known = false;
    for rule in RULES {
        if rule.path == path {
            if Some(rule.method) == verb {
                return Decision::Rule(rule.access);
            }
            path_known = true;
        }
    }
    if path_known {
        Decision::MethodNotAllowed
    } else {
        Decision::Missing
    }
}

/// The roles of `access`, for documentation; empty for [`Access::Signed`].
pub fn roles(access: Access) -> &'static [Role] {
    match access {
        Access::Roles(roles) => roles,
        Access::Signed => &[],
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_route_has_one_rule() {
        let mut seen = HashSet::new();
        for rule in RULES {
            assert!(
                seen.insert((rule.method, rule.path)),
                "{:?} {} has two rules",
                rule.method,
                rule.path
            );
            assert!(rule.path.starts_with('/'), "{}", rule.path);
        }
    }

    #[test]
    fn tokens_are_for_admins_only_and_admins_may_do_everything() {
        assert_eq!(
            decide(&Method::POST, "/tokens"),
            Decision::Rule(Access::Roles(ADMINS))
        );
        for rule in RULES {
            if let Access::Roles(roles) = rule.access {
                assert!(roles.contains(&Admin), "{} is closed to admins", rule.path);
            }
        }
    }

    #[test]
    fn unknown_methods_and_routes_are_told_apart() {
        assert_eq!(
            decide(&Method::DELETE, "/tokens"),
            Decision::MethodNotAllowed
        );
        assert_eq!(decide(&Method::GET, "/nothing"), Decision::Missing);
        assert_eq!(
            decide(&Method::HEAD, "/instances"),
            Decision::Rule(Access::Roles(EVERYONE))
        );
    }
}
