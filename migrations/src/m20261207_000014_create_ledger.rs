//! The distribution ledger (issue 13, item 4): `ledger_delivery`, one row per delivery
//! (what was delivered to whom, by which step, its current status and the head of its
//! chain), and `ledger_entry`, its hash-chained entries (`delivered` first, then each
//! status change, with its origin: the step attempt or the event source and id).
//!
//! Instants are BIGINT microseconds, JSON is TEXT. The indexes serve the ledger's
//! queries: by asset (and version), by partner, by status, by system and channel, the
//! status changes' lookup by channel and reference, the deliveries of an instance (audit),
//! and the page order (`delivered_at`, `delivery_id`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// The migration that creates `ledger_delivery` and `ledger_entry`.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000014_create_ledger"
    }
}

const INDEXES: [(&str, &str); 6] = [
    ("ledger_delivery_by_asset", "system, asset_id, version"),
    ("ledger_delivery_by_partner", "partner, delivered_at"),
    ("ledger_delivery_by_status", "status, delivered_at"),
    ("ledger_delivery_by_reference", "channel, reference"),
    ("ledger_delivery_by_instance", "instance_id"),
    ("ledger_delivery_by_time", "delivered_at, delivery_id"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Keys compare by bytes on both backends, like `instance.id`.
        let collate = match manager.get_database_backend() {
            DbBackend::Postgres => " COLLATE \"C\"",
            _ => "",
        };
        let text = |name: &str| format!("{name} VARCHAR{collate} NOT NULL");
        let connection = manager.get_connection();
        connection
            .execute_unprepared(&format!(
                "CREATE TABLE ledger_delivery ({}, {}, {}, {}, {}, {}, {}, {}, \
                 receipt VARCHAR{collate}, instance_id VARCHAR{collate}, step VARCHAR{collate}, \
                 item BIGINT, attempt BIGINT, delivered_at BIGINT NOT NULL, {}, \
                 status_at BIGINT NOT NULL, downloaded_at BIGINT, acknowledged_at BIGINT, \
                 head_seq BIGINT NOT NULL, head_hash VARCHAR NOT NULL, \
                 PRIMARY KEY (delivery_id))",
                text("delivery_id"),
                text("system"),
                text("asset_id"),
                text("version"),
                text("sha256"),
                text("partner"),
                text("channel"),
                text("reference"),
                text("status"),
            ))
            .await?;
        for (name, columns) in INDEXES {
            connection
                .execute_unprepared(&format!(
                    "CREATE INDEX {name} ON ledger_delivery ({columns})"
                ))
                .await?;
        }
        connection
            .execute_unprepared(&format!(
                "CREATE TABLE ledger_entry ({}, seq BIGINT NOT NULL, status VARCHAR NOT NULL, \
                 at BIGINT NOT NULL, detail TEXT NOT NULL, origin TEXT NOT NULL, \
                 prev_hash VARCHAR NOT NULL, hash VARCHAR NOT NULL, \
                 PRIMARY KEY (delivery_id, seq))",
                text("delivery_id"),
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        connection
            .execute_unprepared("DROP TABLE ledger_entry")
            .await?;
        connection
            .execute_unprepared("DROP TABLE ledger_delivery")
            .await?;
        Ok(())
    }
}
