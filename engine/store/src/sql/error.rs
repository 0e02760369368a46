//! Turning sea-orm's `DbErr` into [`crate::Error`], by what the caller can do about it.
//! `DbErr` itself never leaves the crate except as the opaque source of `Unavailable`.

use std::fmt::Display;
use std::ops::Deref;

use sea_orm::{DbErr, RuntimeErr, SqlErr};

use crate::Error;

/// What a database error means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A unique or primary-key constraint refused a row.
    Duplicate,
    /// A stored value could not be decoded into its Rust type.
    Undecodable,
    /// Anything else: the connection, the server, a busy database, a lock timeout.
    Other,
}

/// Classifies a database error.
pub(crate) fn kind(error: &DbErr) -> Kind {
    if let Some(SqlErr::UniqueConstraintViolation(_)) = error.sql_err() {
        return Kind::Duplicate;
    }
    match error {
        DbErr::Type(_) | DbErr::Json(_) | DbErr::TryIntoErr { .. } => Kind::Undecodable,
        DbErr::Query(RuntimeErr::SqlxError(sqlx_error))
        | DbErr::Exec(RuntimeErr::SqlxError(sqlx_error)) => match sqlx_error.deref() {
            sea_orm::sqlx::Error::ColumnDecode { .. } | sea_orm::sqlx::Error::Decode(_) => {
                Kind::Undecodable
            }
            _ => Kind::Other,
        },
        _ => Kind::Other,
    }
}

/// Maps a database error met while doing `context` (a lowercase phrase naming the ids
/// involved, such as `reading instance 42`). Unique violations become `Conflict`: callers
/// that can name the conflicting instance better do so before calling this.
pub(crate) fn db_error(error: DbErr, context: impl Display) -> Error {
    match kind(&error) {
        Kind::Duplicate => Error::Conflict(format!("{context}: {error}")),
        Kind::Undecodable => Error::Corrupt(format!("{context}: {error}")),
        Kind::Other => Error::Unavailable {
            message: format!("{context}: {error}"),
            source: Some(Box::new(error)),
        },
    }
}

/// A stored value that is not what the schema promises.
pub(crate) fn corrupt(context: impl Display, problem: impl Display) -> Error {
    Error::Corrupt(format!("{context}: {problem}"))
}
