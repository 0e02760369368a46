//! The demo users of `serve --sandbox` (DESIGN.md §9) and the end of their tokens.
//!
//! Each run prints fresh demo tokens. They are stored with the run's id
//! ([`TokenSettings::server_run`]), and `auth::authenticate` accepts such a token only on
//! that run, so a demo token ends with its server even after a SIGKILL. The stored state
//! follows: a server revokes the demo tokens of earlier runs at start-up and its own at
//! a graceful shutdown, each recorded in the audit log.

use gridflow_runtime::Engine;

use crate::http::error::ApiError;
use crate::http::role::Role;
use crate::http::state::TokenSettings;
use crate::http::tokens::{self, TokenRequest};

/// The demo users: an analyst; approvers for each desk the bundled processes ask
/// (`brand-managers` twice, for quorum and a second decider, `legal`, `content-team`,
/// `curators`, `marketing-directors` for escalations); an auditor.
pub fn sandbox_users() -> Vec<TokenRequest> {
    let user = |name: &str, role: Role, groups: &[&str]| TokenRequest {
        user: name.to_owned(),
        role,
        groups: groups.iter().map(|group| (*group).to_owned()).collect(),
        expires_in: None,
    };
    vec![
        user("ana", Role::Analyst, &[]),
        user("bob", Role::Approver, &["brand-managers"]),
        user("bea", Role::Approver, &["brand-managers"]),
        user("lea", Role::Approver, &["legal"]),
        user("cody", Role::Approver, &["content-team"]),
        user("cara", Role::Approver, &["curators"]),
        user("max", Role::Approver, &["marketing-directors"]),
        user("otto", Role::Auditor, &[]),
    ]
}

/// Creates a fresh token for each sandbox user, bound to this server run; returns
/// `(user, token)` pairs to print once.
pub async fn create_sandbox_tokens(
    engine: &Engine,
    settings: &TokenSettings,
) -> Result<Vec<(TokenRequest, String)>, ApiError> {
    let mut created = Vec::new();
    for request in sandbox_users() {
        let token = tokens::create_token(
            engine,
            settings,
            &request,
            gridflow_core::event::SYSTEM_ACTOR,
            Some(&settings.server_run),
        )
        .await?;
        created.push((request, token.token));
    }
    Ok(created)
}

/// Revokes the demo tokens still valid of earlier runs (`current = false`, at start-up)
/// or of this run (`current = true`, at shutdown); returns how many it revoked.
pub async fn revoke_sandbox_tokens(
    engine: &Engine,
    settings: &TokenSettings,
    current: bool,
) -> Result<usize, ApiError> {
    let mut revoked = 0;
    for record in engine.list_tokens().await? {
        let Some(run) = &record.server_run else {
            continue;
        };
        if record.revoked_at.is_some() || (run.as_str() == &*settings.server_run) != current {
            continue;
        }
        tokens::revoke_token(engine, &record.id, gridflow_core::event::SYSTEM_ACTOR).await?;
        revoked += 1;
    }
    Ok(revoked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_has_an_analyst_an_auditor_and_approvers_for_each_desk() {
        let users = sandbox_users();
        let with_role = |role| users.iter().filter(|user| user.role == role).count();
        assert_eq!(with_role(Role::Analyst), 1);
        assert_eq!(with_role(Role::Auditor), 1);
        assert_eq!(with_role(Role::Admin), 0);
        let approvers: Vec<_> = users
            .iter()
            .filter(|user| user.role == Role::Approver)
            .collect();
        let in_group = |group: &str| {
            approvers
                .iter()
                .filter(|user| user.groups.iter().any(|name| name == group))
                .count()
        };
        assert_eq!(approvers.len(), 6);
        assert_eq!(in_group("brand-managers"), 2);
        for desk in ["legal", "content-team", "curators", "marketing-directors"] {
            assert_eq!(in_group(desk), 1, "{desk}");
        }
    }
}
