//! [`SqlStore`]: the store on sea-orm, for SQLite (one node, WAL) and PostgreSQL (several
//! nodes).
//!
//! The schema is the one of `gridflow-migrations`, applied by [`SqlStore::connect`].
//! Statements are plain SQL that both backends accept, executed through sea-orm's
//! connection; the differences between the backends are confined to connecting
//! ([`SqlStore::connect`]), starting a write transaction and placeholders (`query.rs`).
//!
//! SQLite: one connection writes (`BEGIN IMMEDIATE`, so a write transaction never has to
//! upgrade a read lock and fail with `SQLITE_BUSY`), and a small pool of other connections
//! reads, which WAL lets proceed while a commit is being written. An in-memory database
//! (`sqlite::memory:`) uses one connection for everything, because each connection would
//! otherwise see its own database.

mod approvals;
mod audit;
mod children;
mod commit;
mod cursors;
mod definitions;
mod error;
mod hygiene;
mod ledger;
mod query;
mod read;
mod rights;
mod row;
mod signal_waits;
mod snapshots;
mod tokens;
mod triggers;
mod webhooks;

use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous as SqlxSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use gridflow_migrations::{Migrator, MigratorTrait};

use self::error::db_error;
use self::hygiene::{Poison, release_check};
use self::query::Query;
use crate::{Error, Result, Store};

/// How SQLite makes a commit durable (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteSynchronous {
    /// Every commit is synced to disk before it returns: a commit survives a power loss.
    #[default]
    Full,
    /// WAL commits are synced at checkpoints only: a commit survives a crash of the process
    /// but the last ones may be lost on a power loss. Faster.
    Normal,
}

/// Options of [`SqlStore::connect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlOptions {
    /// SQLite only: how commits are made durable.
    pub sqlite_synchronous: SqliteSynchronous,
    /// SQLite only: how long a statement waits for another process's lock before it fails
    /// with `Unavailable`.
    pub busy_timeout: Duration,
    /// PostgreSQL: the size of the connection pool. SQLite file: the number of reading
    /// connections, beside the one writing connection.
    pub max_connections: u32,
    /// How long an operation waits for a free pooled connection (or, while the database
    /// is unreachable, for a new one) before it fails with `Unavailable`. Short, so that
    /// callers get a 503 quickly during an outage instead of hanging.
    pub acquire_timeout: Duration,
}

impl Default for SqlOptions {
    fn default() -> Self {
        Self {
            sqlite_synchronous: SqliteSynchronous::Full,
            busy_timeout: Duration::from_secs(5),
            max_connections: 8,
            acquire_timeout: Duration::from_millis(1500),
        }
    }
}

/// Which database a [`SqlStore`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite: one node; there are no row locks, so one runtime at a time.
    Sqlite,
    /// PostgreSQL: any number of nodes.
    Postgres,
}

/// The store on a SQL database. Cheap to clone: clones share the connection pools.
#[derive(Debug, Clone)]
pub struct SqlStore {
    /// Runs every write transaction (commits, deploys) and the migrations.
    writer: DatabaseConnection,
    /// Runs reads. The same pool as `writer` except on a SQLite file.
    reader: DatabaseConnection,
    backend: DbBackend,
    /// Marks the SQLite writer connection as not reusable (see `hygiene`); `None` on
    /// PostgreSQL (a pool of many) and on an in-memory SQLite database (closing its one
    /// connection would delete it).
    poison: Option<Poison>,
    /// Test hook: `PRAGMA max_page_count` applied to every write transaction (0: none).
    #[cfg(feature = "test-util")]
    page_limit: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// The PostgreSQL advisory lock that serializes migrations when several nodes start at
/// once (an arbitrary constant: "gridflow" in ASCII).
const MIGRATION_LOCK: i64 = 0x6772_6964_666c_6f77;

impl SqlStore {
    /// Connects to `url` and brings the schema up to date.
    ///
    /// `url` is `sqlite://path/to/file.db?mode=rwc` (add `mode=rwc` to create the file),
    /// `sqlite::memory:`, or `postgres://user@host:port/database`.
    pub async fn connect(url: &str, options: SqlOptions) -> Result<Self> {
        let store = if url.starts_with("sqlite:") {
            Self::connect_sqlite(url, &options).await?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::connect_postgres(url, &options).await?
        } else {
            return Err(Error::Invalid(format!(
                "unsupported database url {:?}: expected sqlite:… or postgres://…",
                redact(url)
            )));
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn connect_sqlite(url: &str, options: &SqlOptions) -> Result<Self> {
        let in_memory = is_sqlite_memory(url);
        let synchronous = match options.sqlite_synchronous {
            SqliteSynchronous::Full => SqlxSynchronous::Full,
            SqliteSynchronous::Normal => SqlxSynchronous::Normal,
        };
        let busy_timeout = options.busy_timeout;
        let configure = |connect: &mut ConnectOptions| {
            connect
                .sqlx_logging(false)
                .test_before_acquire(false)
                .acquire_timeout(options.acquire_timeout)
                .map_sqlx_sqlite_opts(move |sqlite| {
                    let sqlite = sqlite
                        .synchronous(synchronous)
                        .busy_timeout(busy_timeout)
                        .foreign_keys(true);
                    if in_memory {
                        sqlite
                    } else {
                        sqlite.journal_mode(SqliteJournalMode::Wal)
                    }
                });
        };

        // The writing connection is opened first: it creates the file and switches it to
        // WAL before any reader opens it. It is kept open for the life of the store (an
        // in-memory database would vanish with its last connection).
        let poison = (!in_memory).then(Poison::default);
        let mut writer_options = ConnectOptions::new(url);
        configure(&mut writer_options);
        if let Some(poison) = poison.clone() {
            writer_options.map_sqlx_sqlite_pool_opts(move |pool| {
                pool.after_release(release_check::<sea_orm::sqlx::Sqlite>(Some(poison.clone())))
            });
        }
        writer_options
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
        let writer = Database::connect(writer_options)
            .await
            .map_err(|error| db_error(error, format_args!("connecting to {}", redact(url))))?;
        let reader = if in_memory {
            writer.clone()
        } else {
            let mut reader_options = ConnectOptions::new(url);
            configure(&mut reader_options);
            reader_options
                .map_sqlx_sqlite_pool_opts(|pool| {
                    pool.after_release(release_check::<sea_orm::sqlx::Sqlite>(None))
                })
                .max_connections(options.max_connections.max(1))
                .min_connections(0);
            Database::connect(reader_options)
                .await
                .map_err(|error| db_error(error, format_args!("connecting to {}", redact(url))))?
        };
        Ok(Self {
            writer,
            reader,
            backend: DbBackend::Sqlite,
            poison,
            #[cfg(feature = "test-util")]
            page_limit: std::sync::Arc::default(),
        })
    }

    async fn connect_postgres(url: &str, options: &SqlOptions) -> Result<Self> {
        let mut connect = ConnectOptions::new(url);
        connect
            .sqlx_logging(false)
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .map_sqlx_postgres_pool_opts(|pool| {
                pool.after_release(release_check::<sea_orm::sqlx::Postgres>(None))
            })
            // Pinging every checkout costs a round trip per statement; ping only connections
            // that sat idle long enough for a proxy or the server to have dropped them.
            .test_before_acquire_if_idle_for(Duration::from_secs(30));
        let pool = Database::connect(connect)
            .await
            .map_err(|error| db_error(error, format_args!("connecting to {}", redact(url))))?;
        Ok(Self {
            writer: pool.clone(),
            reader: pool,
            backend: DbBackend::Postgres,
            poison: None,
            #[cfg(feature = "test-util")]
            page_limit: std::sync::Arc::default(),
        })
    }

    /// Applies the pending migrations. On PostgreSQL, an advisory lock held by the
    /// migrating transaction keeps nodes that start together from migrating at once.
    async fn migrate(&self) -> Result<()> {
        let failed = |error| db_error(error, "migrating the database schema");
        match self.backend {
            DbBackend::Postgres => {
                let tx = self.writer.begin().await.map_err(failed)?;
                let mut lock = Query::new(self.backend, 1);
                lock.sql("SELECT pg_advisory_xact_lock(")
                    .bind(MIGRATION_LOCK)
                    .sql(")");
                tx.execute_raw(lock.build()).await.map_err(failed)?;
                Migrator::up(&tx, None).await.map_err(failed)?;
                tx.commit().await.map_err(failed)
            }
            _ => Migrator::up(&self.writer, None).await.map_err(failed),
        }
    }

    /// Which database this store runs on.
    pub fn backend(&self) -> Backend {
        match self.backend {
            DbBackend::Postgres => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }

    /// Closes the connection pools, which every clone of this store shares, waiting for
    /// the connections in use to be returned. On SQLite the last connection to close
    /// checkpoints the WAL into the database file.
    pub async fn close(self) -> Result<()> {
        let closed = |error| db_error(error, "closing the database connections");
        if self.backend == DbBackend::Sqlite {
            // Readers first, so that the writer is the last connection to close.
            self.reader.close_by_ref().await.map_err(closed)?;
        }
        self.writer.close().await.map_err(closed)
    }

    /// Starts a write transaction on the writing connection.
    async fn begin_write(&self) -> Result<DatabaseTransaction> {
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        let tx = self
            .writer
            .begin_with_options(options)
            .await
            .map_err(|error| db_error(error, "starting a write transaction"))?;
        #[cfg(feature = "test-util")]
        {
            let pages = self.page_limit.load(std::sync::atomic::Ordering::Acquire);
            if pages > 0 && self.backend == DbBackend::Sqlite {
                tx.execute_unprepared(&format!("PRAGMA max_page_count = {pages}"))
                    .await
                    .map_err(|error| db_error(error, "limiting the database size"))?;
            }
        }
        Ok(tx)
    }

    /// Test hook (SQLite): makes the database file "full" by capping it at `pages` pages
    /// (`PRAGMA max_page_count`, which never goes below the pages in use; `Some(1)`
    /// means "no page more than now"), applied to every later write transaction;
    /// `None` gives the space back.
    #[cfg(feature = "test-util")]
    pub fn limit_sqlite_pages(&self, pages: Option<u32>) {
        // SQLite's largest page count: setting it lifts any earlier cap.
        let pages = pages.map_or(4_294_967_294, u64::from);
        self.page_limit
            .store(pages, std::sync::atomic::Ordering::Release);
    }

    /// Marks the SQLite writer connection as not reusable once it is released: its
    /// transaction state is unknown.
    fn discard_writer(&self) {
        if let Some(poison) = &self.poison {
            poison.set();
        }
    }
}

/// Whether a SQLite url names an in-memory database.
fn is_sqlite_memory(url: &str) -> bool {
    let database = url.trim_start_matches("sqlite:").trim_start_matches("//");
    database == ":memory:" || database.starts_with(":memory:?") || url.contains("mode=memory")
}

/// `url` without the password, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn health(&self) -> Result<()> {
        self.reader
            .execute_raw(Query::text(self.backend, "SELECT 1").build())
            .await
            .map(|_| ())
            .map_err(|error| db_error(error, "checking the database"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_urls_are_recognised() {
        assert!(is_sqlite_memory("sqlite::memory:"));
        assert!(is_sqlite_memory("sqlite://:memory:"));
        assert!(is_sqlite_memory(
            "sqlite://file:test?mode=memory&cache=shared"
        ));
        assert!(!is_sqlite_memory("sqlite://gridflow.db?mode=rwc"));
    }

    #[test]
    fn passwords_are_left_out_of_messages() {
        assert_eq!(
            redact("postgres://user:secret@db:5432/gridflow"),
            "postgres://user@db:5432/gridflow"
        );
        assert_eq!(redact("postgres://db/gridflow"), "postgres://db/gridflow");
        assert_eq!(redact("sqlite::memory:"), "sqlite::memory:");
    }
}
