//! [`Role`]: what a token allows. The access policy, the token routes and the CLI's
//! `token create` all name roles; a leaf, so that none of them depends on another for it.

use std::fmt;
use std::str::FromStr;

/// What a token allows (DESIGN.md §5): analysts deploy, start, cancel and read; approvers
/// decide the approvals assigned to them or their groups; auditors read history, replay,
/// verify and export; admins do everything, tokens included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum Role {
    /// Deploys definitions, starts, cancels and reads instances.
    Analyst,
    /// Decides the approvals assigned to the user or one of the user's groups.
    Approver,
    /// Reads history, replays, verifies and exports.
    Auditor,
    /// Everything, including creating tokens.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Analyst, Role::Approver, Role::Auditor, Role::Admin];

    /// The lowercase name used in the API, the CLI and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Analyst => "analyst",
            Role::Approver => "approver",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| {
                format!("unknown role {text:?}: expected analyst, approver, auditor or admin")
            })
    }
}
