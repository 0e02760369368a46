//! gridflow-migrations: the database schema of gridflow, as sea-orm-migration migrations
//! for SQLite and PostgreSQL.
//!
//! [`Migrator`] lists every migration in order; `gridflow-store` runs it when it connects.
//! Migrations are append-only once merged: a schema change is a new file named
//! `mYYYYMMDD_HHMMSS_verb_object.rs`, and every migration has a working `down`.
//!
//! Conventions every migration keeps, so that SQLite and PostgreSQL order and compare
//! rows identically:
//! - instants are `BIGINT` microseconds since the Unix epoch (UTC);
//! - JSON is `TEXT` (the store never asks the database to look inside it);
//! - counters and versions are `BIGINT`;
//! - text keys that are ordered or compared use byte order (`COLLATE "C"` on PostgreSQL,
//!   SQLite's default `BINARY` collation).
//!
//! This crate depends on no other workspace crate and holds no domain logic.
#![warn(missing_docs)]

use sea_orm_migration::prelude::*;

mod m20261122_000001_create_tables;
mod m20261122_000002_create_approval;
mod m20261122_000003_create_token;
mod m20261122_000004_create_trigger_tables;
mod m20261122_000005_create_audit_tables;
mod m20261122_000006_create_poll_cursor;
mod m20261207_000008_add_token_lifecycle;
mod m20261207_000009_create_webhook_event;
mod m20261207_000010_create_instance_state;
mod m20261207_000011_create_child_instance;
mod m20261207_000012_add_approval_item;
mod m20261207_000013_create_signal_wait;
mod m20261207_000014_create_ledger;
mod m20261207_000015_create_rights_window;
mod m20261207_000016_add_approval_artifacts;

/// Every migration of the gridflow schema, in the order they apply.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_tables::Migration),
            Box::new(m20261122_000002_create_approval::Migration),
            Box::new(m20261122_000003_create_token::Migration),
            Box::new(m20261122_000004_create_trigger_tables::Migration),
            Box::new(m20261122_000005_create_audit_tables::Migration),
            Box::new(m20261122_000006_create_poll_cursor::Migration),
            Box::new(m20261207_000008_add_token_lifecycle::Migration),
            Box::new(m20261207_000009_create_webhook_event::Migration),
            Box::new(m20261207_000010_create_instance_state::Migration),
            Box::new(m20261207_000011_create_child_instance::Migration),
            Box::new(m20261207_000012_add_approval_item::Migration),
            Box::new(m20261207_000013_create_signal_wait::Migration),
            Box::new(m20261207_000014_create_ledger::Migration),
            Box::new(m20261207_000015_create_rights_window::Migration),
            Box::new(m20261207_000016_add_approval_artifacts::Migration),
        ]
    }
}

/// Re-exported so that callers can run [`Migrator`] (`Migrator::up(&db, None)`) without
/// depending on sea-orm-migration themselves.
pub use sea_orm_migration::MigratorTrait;
