//! Keeping a connection whose transaction state is unknown out of the pool.
//!
//! sqlx counts the transactions it opened on each connection (its "depth") and decrements
//! the count only when a `COMMIT` or `ROLLBACK` succeeds. When one fails (a full disk, a
//! connection killed mid-commit), the count stays up while the database may already have
//! ended the transaction itself: the next `BEGIN` on that connection becomes a
//! `SAVEPOINT`, and every later "commit" only releases a savepoint inside a transaction
//! that never ends. Nothing reaches the file, yet every commit answers success.
//!
//! [`release_check`] runs each time a connection goes back to its pool and closes it
//! (the pool opens a fresh one on the next acquire) when it is still inside a
//! transaction, or when the store marked it as [`Poison`]ed. A fresh connection is
//! always in a known state: closing a connection ends whatever transaction it had open.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sea_orm::sqlx::pool::PoolConnectionMetadata;
use sea_orm::sqlx::{Connection, Database, Error};

/// A pinned, boxed future, the shape sqlx's pool callbacks return.
type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Set by the store when the connection it just used must not be reused (its rollback
/// failed); read and cleared by [`release_check`] when that connection is released.
///
/// Only meaningful on a pool of one connection (the SQLite writer), where the released
/// connection is the one that failed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Poison(Arc<AtomicBool>);

impl Poison {
    /// Marks the connection in use as not reusable.
    pub(crate) fn set(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn take(&self) -> bool {
        self.0.swap(false, Ordering::AcqRel)
    }
}

/// The pool's `after_release` callback: `Ok(true)` keeps the connection, `Ok(false)`
/// closes it, an error closes it without a goodbye (it is broken).
///
/// The check costs an atomic load when the connection is idle, as it is after every
/// successful commit or rollback. Only a connection still counted inside a transaction
/// is pinged first: on SQLite a rollback queued when a transaction was dropped runs on
/// the connection's worker thread, and the ping waits for it.
pub(crate) fn release_check<DB: Database>(
    poison: Option<Poison>,
) -> impl for<'c> Fn(
    &'c mut DB::Connection,
    PoolConnectionMetadata,
) -> BoxFuture<'c, Result<bool, Error>>
+ Send
+ Sync
+ 'static {
    move |connection, _metadata| {
        let poisoned = poison.as_ref().is_some_and(Poison::take);
        Box::pin(async move {
            if poisoned {
                tracing::warn!(
                    "closing the database writer connection: its failed transaction could not be rolled back"
                );
                return Ok(false);
            }
            if !connection.is_in_transaction() {
                return Ok(true);
            }
            connection.ping().await?;
            if connection.is_in_transaction() {
                tracing::warn!(
                    "closing a database connection left inside a transaction after a failed commit or rollback"
                );
                return Ok(false);
            }
            Ok(true)
        })
    }
}
