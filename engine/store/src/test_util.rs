//! Helpers for tests that need a real database: a fresh PostgreSQL database per test under
//! `DATABASE_URL`, and a SQLite file in a temporary directory.
//!
//! These helpers panic on setup failures (a server that is configured but unreachable):
//! a test cannot do anything useful without its database, and the panic says why.

use std::path::Path;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

/// A PostgreSQL database created for one test; drop it with [`TestDatabase::drop`].
#[derive(Debug)]
pub struct TestDatabase {
    /// The url of the new database.
    pub url: String,
    admin_url: String,
    name: String,
}

/// Creates a fresh, uniquely named database (`gridflow_t_<random hex>`) on the PostgreSQL
/// server named by the environment variable `DATABASE_URL`.
///
/// Returns `None`, after printing `skipping PostgreSQL: DATABASE_URL is not set` to
/// stderr, when the variable is unset or empty, so that a local run without PostgreSQL
/// skips those tests (CI sets the variable and so runs them).
///
/// # Panics
///
/// When `DATABASE_URL` is set but is not a `postgres://` url, or the server refuses to
/// create the database.
pub async fn postgres_database() -> Option<TestDatabase> {
    let admin_url = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        Ok(_) | Err(_) => {
            eprintln!("skipping PostgreSQL: DATABASE_URL is not set");
            return None;
        }
    };
    let name = format!("gridflow_t_{}", uuid::Uuid::new_v4().simple());
    let url = with_database(&admin_url, &name).unwrap_or_else(|problem| {
        panic!("DATABASE_URL {admin_url:?} is not a postgres:// url: {problem}")
    });
    let admin = connect_admin(&admin_url).await;
    if let Err(error) = admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
    {
        panic!("creating test database {name} on DATABASE_URL failed: {error}");
    }
    let _ = admin.close().await;
    Some(TestDatabase {
        url,
        admin_url,
        name,
    })
}

impl TestDatabase {
    /// The name of the database.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database, closing any connection still open to it.
    ///
    /// # Panics
    ///
    /// When the server refuses.
    pub async fn drop(self) {
        let admin = connect_admin(&self.admin_url).await;
        if let Err(error) = admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .await
        {
            panic!("dropping test database {} failed: {error}", self.name);
        }
        let _ = admin.close().await;
    }
}

async fn connect_admin(url: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url);
    options.sqlx_logging(false).max_connections(1);
    Database::connect(options)
        .await
        .unwrap_or_else(|error| panic!("connecting to DATABASE_URL failed: {error}"))
}

/// `url` with its database name replaced by `database`; the query string is kept.
fn with_database(url: &str, database: &str) -> Result<String, &'static str> {
    let (scheme, rest) = url.split_once("://").ok_or("no scheme")?;
    if scheme != "postgres" && scheme != "postgresql" {
        return Err("the scheme is not postgres");
    }
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    let authority = location.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err("no host");
    }
    let mut result = format!("{scheme}://{authority}/{database}");
    if let Some(query) = query {
        result.push('?');
        result.push_str(query);
    }
    Ok(result)
}

/// A temporary directory, deleted with everything in it when dropped.
#[derive(Debug)]
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    /// Where the directory is.
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// A url for a new SQLite database file in a fresh temporary directory
/// (`sqlite:///tmp/…/gridflow.db?mode=rwc`); keep the directory alive while the
/// database is used.
///
/// # Panics
///
/// When no temporary directory can be created.
pub fn sqlite_file() -> (TempDir, String) {
    let directory = tempfile::Builder::new()
        .prefix("gridflow-store-")
        .tempdir()
        .unwrap_or_else(|error| panic!("creating a temporary directory failed: {error}"));
    let url = format!(
        "sqlite://{}?mode=rwc",
        directory.path().join("gridflow.db").display()
    );
    (TempDir(directory), url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced_and_query_kept() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "t1").unwrap(),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgresql://u:p@db/x?sslmode=disable", "t2").unwrap(),
            "postgresql://u:p@db/t2?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://db", "t3").unwrap(),
            "postgres://db/t3"
        );
        assert!(with_database("sqlite::memory:", "t4").is_err());
    }
}
