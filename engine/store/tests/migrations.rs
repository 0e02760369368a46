//! The schema migrations go up, down and up again on SQLite and PostgreSQL, and the store
//! works on the result.

// The helpers below are test code too; `allow-unwrap-in-tests` covers only `#[test]` items.
#![allow(clippy::unwrap_used)]

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};

use gridflow_migrations::{Migrator, MigratorTrait};
use gridflow_store::test_util::{postgres_database, sqlite_file};
use gridflow_store::{
    Batch, BatchCommitter, SignalWaitStore, SqlOptions, SqlStore, Store, WorkItem, WorkReader,
};

const TABLES: [&str; 21] = [
    "definition",
    "instance",
    "instance_state",
    "history_event",
    "work_item",
    "timer",
    "approval",
    "approval_assignee",
    "token",
    "trigger_tick",
    "lease",
    "checkpoint",
    "checkpoint_head",
    "audit_log",
    "signal_wait",
    "signal_key_path",
    "signal_wait_unindexed",
    "rights_window",
    "rights_firing",
    "ledger_delivery",
    "ledger_entry",
];

async fn connect(url: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url);
    options.sqlx_logging(false).max_connections(1);
    Database::connect(options).await.unwrap()
}

async fn table_exists(db: &DatabaseConnection, table: &str) -> bool {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .is_ok()
}

async fn assert_tables(db: &DatabaseConnection, present: bool) {
    for table in TABLES {
        assert_eq!(
            table_exists(db, table).await,
            present,
            "table {table} should {}exist",
            if present { "" } else { "not " }
        );
    }
}

async fn migrate_up_down_up(url: &str) {
    let db = connect(url).await;
    Migrator::up(&db, None).await.unwrap();
    assert_tables(&db, true).await;
    assert!(
        Migrator::get_pending_migrations(&db)
            .await
            .unwrap()
            .is_empty()
    );

    Migrator::down(&db, None).await.unwrap();
    assert_tables(&db, false).await;
    assert_eq!(
        Migrator::get_applied_migrations(&db).await.unwrap().len(),
        0
    );

    Migrator::up(&db, None).await.unwrap();
    assert_tables(&db, true).await;
    if db.get_database_backend() == DbBackend::Sqlite {
        // An in-memory database lives only as long as this connection: check it here.
        let sql = "INSERT INTO work_item (id, instance_id, payload, created_at) VALUES ('w', 'i', '{}', 0)";
        db.execute_unprepared(sql).await.unwrap();
    }
    db.close().await.unwrap();
}

/// Connecting runs no migration twice, and the store works on the migrated schema.
async fn store_works_after_migrations(url: &str) {
    let store = SqlStore::connect(url, SqlOptions::default()).await.unwrap();
    let item = WorkItem {
        id: "after-migrations".to_owned(),
        instance_id: "instance".into(),
        payload: serde_json::json!({}),
        created_at: chrono::DateTime::UNIX_EPOCH,
    };
    store
        .commit(&Batch {
            work_added: vec![item.clone()],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert!(store.queued_work().await.unwrap().contains(&item));
    store.close().await.unwrap();
}

/// The instances unfinished when the signal index is created are found by every signal
/// (the machine decides) until a commit writes their rows.
async fn instances_older_than_the_signal_index_are_found_until_indexed(url: &str) {
    let db = connect(url).await;
    let before_index = Migrator::migrations()
        .iter()
        .position(|migration| migration.name() == "m20261207_000013_create_signal_wait")
        .unwrap() as u32;
    Migrator::up(&db, Some(before_index)).await.unwrap();
    for (id, status) in [("old-waiting", "waiting"), ("old-done", "completed")] {
        let sql = format!(
            "INSERT INTO instance (id, definition_id, definition_version, status, input, \
             created_at, updated_at, last_seq, last_hash, row_version) \
             VALUES ('{id}', 'd', 1, '{status}', '{{}}', 0, 0, 1, 'h', 1)"
        );
        db.execute_unprepared(&sql).await.unwrap();
    }
    db.close().await.unwrap();
    let store = SqlStore::connect(url, SqlOptions::default()).await.unwrap();
    let found = store.signal_waits("any.signal", &[]).await.unwrap();
    let ids: Vec<&str> = found.iter().map(|wait| wait.instance_id.as_str()).collect();
    assert_eq!(ids, ["old-waiting"], "the unfinished instance only");
    store
        .commit(&Batch {
            signal_waits: vec![gridflow_store::SignalWaitsWrite {
                instance_id: "old-waiting".into(),
                waits: Vec::new(),
            }],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert!(
        store
            .signal_waits("any.signal", &[])
            .await
            .unwrap()
            .is_empty()
    );
    store.close().await.unwrap();
}

#[tokio::test]
async fn old_instances_are_found_until_indexed_on_sqlite() {
    let (_directory, url) = sqlite_file();
    instances_older_than_the_signal_index_are_found_until_indexed(&url).await;
}

#[tokio::test]
async fn old_instances_are_found_until_indexed_on_postgres() {
    let Some(database) = postgres_database().await else {
        return;
    };
    let url = database.url.clone();
    let outcome = tokio::spawn(async move {
        instances_older_than_the_signal_index_are_found_until_indexed(&url).await;
    })
    .await;
    database.drop().await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

#[tokio::test]
async fn migrations_go_up_down_and_up_on_sqlite_memory() {
    migrate_up_down_up("sqlite::memory:").await;
}

#[tokio::test]
async fn migrations_go_up_down_and_up_on_sqlite_file() {
    let (_directory, url) = sqlite_file();
    migrate_up_down_up(&url).await;
    store_works_after_migrations(&url).await;
    // Connecting again finds the schema current and keeps the data.
    store_works_after_migrations(&url).await;
}

#[tokio::test]
async fn migrations_go_up_down_and_up_on_postgres() {
    let Some(database) = postgres_database().await else {
        return;
    };
    let url = database.url.clone();
    let outcome = tokio::spawn(async move {
        migrate_up_down_up(&url).await;
        store_works_after_migrations(&url).await;
        store_works_after_migrations(&url).await;
    })
    .await;
    database.drop().await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

#[tokio::test]
async fn nodes_starting_together_migrate_once_on_postgres() {
    let Some(database) = postgres_database().await else {
        return;
    };
    let url = database.url.clone();
    let outcome = tokio::spawn(async move {
        let connects = (0..4).map(|_| {
            let url = url.clone();
            tokio::spawn(async move { SqlStore::connect(&url, SqlOptions::default()).await })
        });
        let mut stores = Vec::new();
        for connect in connects.collect::<Vec<_>>() {
            stores.push(connect.await.unwrap().unwrap());
        }
        for store in stores {
            store.health().await.unwrap();
            store.close().await.unwrap();
        }
    })
    .await;
    database.drop().await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}
