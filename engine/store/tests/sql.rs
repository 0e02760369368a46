//! Behaviour of the SQL store that the in-memory store has no counterpart for: connecting,
//! SQLite's journal, and data that was changed behind the store's back.

// The helpers below are test code too; `allow-unwrap-in-tests` covers only `#[test]` items.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::{TimeZone, Utc};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::json;

use gridflow_core::{InstanceId, InstanceStatus};
use gridflow_store::sql::{Backend, SqliteSynchronous};
use gridflow_store::test_util::{postgres_database, sqlite_file};
use gridflow_store::{
    Batch, BatchCommitter, Error, InstanceFilter, InstanceReader, InstanceRecord, InstanceWrite,
    SqlOptions, SqlStore, Store,
};

async fn raw(url: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url);
    options.sqlx_logging(false).max_connections(1);
    Database::connect(options).await.unwrap()
}

fn instance(id: &str) -> InstanceWrite {
    let at = Utc.timestamp_opt(1_763_800_000, 0).unwrap();
    InstanceWrite {
        record: InstanceRecord {
            id: InstanceId::from(id),
            definition_id: "media".into(),
            definition_version: 1,
            status: InstanceStatus::Running,
            state: json!({}),
            input: json!({}),
            output: None,
            error: None,
            created_at: at,
            updated_at: at,
            last_seq: 0,
            snapshot_seq: 0,
            last_hash: String::new(),
            row_version: 1,
        },
        expected_row_version: None,
        events: Vec::new(),
        snapshot: true,
    }
}

/// Stored rows that do not decode are reported as `Corrupt`, naming the instance.
async fn undecodable_rows_are_corrupt(url: &str) {
    let store = SqlStore::connect(url, SqlOptions::default()).await.unwrap();
    store
        .commit(&Batch {
            instances: vec![instance("bad-json"), instance("bad-status")],
            ..Batch::default()
        })
        .await
        .unwrap();
    let db = raw(url).await;
    let backend = db.get_database_backend();
    for sql in [
        "UPDATE instance_state SET state = '{not json' WHERE instance_id = 'bad-json'",
        "UPDATE instance SET status = 'sleeping' WHERE id = 'bad-status'",
    ] {
        db.execute_raw(Statement::from_string(backend, sql))
            .await
            .unwrap();
    }
    db.close().await.unwrap();

    for id in ["bad-json", "bad-status"] {
        match store.instance(&InstanceId::from(id)).await {
            Err(Error::Corrupt(message)) => assert!(message.contains(id), "{message}"),
            other => panic!("expected corrupt data for {id}, got {other:?}"),
        }
    }
    assert!(matches!(
        store
            .list_instances(&InstanceFilter::default(), None, 10)
            .await,
        Err(Error::Corrupt(_))
    ));
    store.close().await.unwrap();
}

#[tokio::test]
async fn undecodable_rows_are_corrupt_on_sqlite() {
    let (_directory, url) = sqlite_file();
    undecodable_rows_are_corrupt(&url).await;
}

#[tokio::test]
async fn undecodable_rows_are_corrupt_on_postgres() {
    let Some(database) = postgres_database().await else {
        return;
    };
    let url = database.url.clone();
    let outcome = tokio::spawn(async move { undecodable_rows_are_corrupt(&url).await }).await;
    database.drop().await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

#[tokio::test]
async fn sqlite_file_is_journaled_in_wal_mode() {
    let (_directory, url) = sqlite_file();
    let options = SqlOptions {
        sqlite_synchronous: SqliteSynchronous::Normal,
        ..SqlOptions::default()
    };
    let store = SqlStore::connect(&url, options).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    store.health().await.unwrap();
    let db = raw(&url).await;
    let mode = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "PRAGMA journal_mode",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<String>(0)
        .unwrap();
    assert_eq!(mode, "wal");
    db.close().await.unwrap();
    store.close().await.unwrap();
}

#[tokio::test]
async fn committed_data_survives_reconnecting() {
    let (_directory, url) = sqlite_file();
    let store = SqlStore::connect(&url, SqlOptions::default())
        .await
        .unwrap();
    store
        .commit(&Batch {
            instances: vec![instance("kept")],
            ..Batch::default()
        })
        .await
        .unwrap();
    store.close().await.unwrap();
    let store = SqlStore::connect(&url, SqlOptions::default())
        .await
        .unwrap();
    let kept = store.instance(&InstanceId::from("kept")).await.unwrap();
    assert_eq!(kept, instance("kept").record);
    store.close().await.unwrap();
}

#[tokio::test]
async fn unsupported_url_is_invalid() {
    assert!(matches!(
        SqlStore::connect("mysql://root@127.0.0.1/gridflow", SqlOptions::default()).await,
        Err(Error::Invalid(_))
    ));
}

#[tokio::test]
async fn unreachable_database_is_unavailable_without_password_in_message() {
    let options = SqlOptions {
        acquire_timeout: Duration::from_secs(2),
        ..SqlOptions::default()
    };
    match SqlStore::connect("postgres://gridflow:secret@127.0.0.1:1/gridflow", options).await {
        Err(Error::Unavailable { message, .. }) => {
            assert!(!message.contains("secret"), "{message}");
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
}

/// An instance whose state takes a few pages, so that a batch of them needs new pages.
fn bulky(id: &str) -> InstanceWrite {
    let mut write = instance(id);
    write.record.state = json!({"padding": "x".repeat(8_000)});
    write
}

/// A commit refused by a full SQLite file fails, and so does every later one until there
/// is space again: none is answered as committed while nothing reaches the file (the
/// writer connection must not stay inside the failed transaction). Once space is back,
/// commits land, and exactly the acknowledged ones are in the file.
#[tokio::test]
async fn sqlite_commits_on_a_full_file_fail_until_space_is_back() {
    let (_directory, url) = sqlite_file();
    let store = SqlStore::connect(&url, SqlOptions::default())
        .await
        .unwrap();
    store.limit_sqlite_pages(Some(1));
    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    // Batches of one and of three instances in turn: SQLite rolls back the whole
    // transaction when a one-row statement finds the file full, and only the statement
    // when a multi-row one does (it has a statement journal); the lost writer state
    // came from the mix.
    let batch = |prefix: &str, n: usize| {
        let ids: Vec<String> = (0..1 + 2 * (n % 2))
            .map(|k| format!("{prefix}-{n}-{k}"))
            .collect();
        let batch = Batch {
            instances: ids.iter().map(|id| bulky(id)).collect(),
            ..Batch::default()
        };
        (ids, batch)
    };
    for n in 0..20 {
        let (ids, batch) = batch("full", n);
        match store.commit(&batch).await {
            Ok(()) => acknowledged.extend(ids),
            Err(Error::Unavailable { .. }) => refused.extend(ids),
            Err(other) => panic!("a full file gave {other:?}"),
        }
    }
    assert!(
        refused.len() >= 38,
        "only {refused:?} refused on a full file"
    );
    store.limit_sqlite_pages(None);
    for n in 0..4 {
        let (ids, batch) = batch("after", n);
        store.commit(&batch).await.unwrap();
        acknowledged.extend(ids);
    }

    // Read through a connection of its own: only what reached the file.
    let db = raw(&url).await;
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT id FROM instance ORDER BY id",
        ))
        .await
        .unwrap();
    let mut stored: Vec<String> = rows
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).unwrap())
        .collect();
    stored.sort();
    acknowledged.sort();
    assert_eq!(stored, acknowledged);
    db.close().await.unwrap();
    store.close().await.unwrap();
}
