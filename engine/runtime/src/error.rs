//! Errors of the engine handle, by what the caller can do about them.

use serde::Serialize;

use gridflow_core::machine::StepError;

/// One problem in a request: where and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detail {
    /// Where (`steps[2].needs[0]`, `input.partner_id`); empty for the whole thing.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Errors of [`crate::Engine`] calls.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The named definition, instance or step does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// Well-formed but invalid: a definition or an input that fails validation.
    #[error("{message}")]
    Invalid {
        /// Summary.
        message: String,
        /// Every problem, with its path.
        details: Vec<Detail>,
    },
    /// The request conflicts with the instance's state (cancel a finished instance).
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this (not an assignee of the approval, self-approval).
    #[error("{0}")]
    Forbidden(String),
    /// The input exceeds a limit of `[limits]` (a signal payload too large, too many signals
    /// kept); nothing of it was stored. The limit's key is in the message.
    #[error("{0}")]
    LimitExceeded(gridflow_core::limits::LimitExceeded),
    /// The database is unavailable or the engine is shutting down; retrying may help.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or corrupt data; details are logged, not shown.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<gridflow_store::Error> for Error {
    fn from(error: gridflow_store::Error) -> Self {
        match error {
            gridflow_store::Error::NotFound(what) => Error::NotFound(what),
            gridflow_store::Error::Conflict(what) => Error::Conflict(what),
            gridflow_store::Error::Unavailable { message, .. } => Error::Unavailable(message),
            gridflow_store::Error::Corrupt(what) => {
                Error::Internal(format!("corrupt data: {what}"))
            }
            gridflow_store::Error::Invalid(what) => Error::Invalid {
                message: what.clone(),
                details: vec![Detail {
                    path: String::new(),
                    message: what,
                }],
            },
        }
    }
}

impl From<Vec<gridflow_core::validate::DefinitionError>> for Error {
    fn from(errors: Vec<gridflow_core::validate::DefinitionError>) -> Self {
        let count = errors.len();
        Error::Invalid {
            message: format!("{count} problem{} found", if count == 1 { "" } else { "s" }),
            details: errors
                .into_iter()
                .map(|error| Detail {
                    path: error.path,
                    message: error.message,
                })
                .collect(),
        }
    }
}

/// The runtime error for a refusal of the core that is the caller's doing.
pub(crate) fn refusal_error(refusal: StepError) -> Error {
    match refusal {
        StepError::Forbidden { message, .. } => Error::Forbidden(message),
        StepError::InvalidDecision {
            message,
            violations,
            ..
        } => Error::Invalid {
            message,
            details: violations
                .into_iter()
                .map(|violation| match violation.split_once(": ") {
                    Some((path, message)) => Detail {
                        path: path.to_owned(),
                        message: message.to_owned(),
                    },
                    None => Detail {
                        path: String::new(),
                        message: violation,
                    },
                })
                .collect(),
        },
        other @ (StepError::InvalidTransition { .. }
        | StepError::UnknownStep { .. }
        | StepError::Rejected { .. }) => Error::Internal(other.to_string()),
    }
}
