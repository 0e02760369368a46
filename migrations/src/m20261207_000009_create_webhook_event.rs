//! Creates `webhook_event`: the ids of the webhook events already received, by source, so
//! that each event is delivered once (DESIGN.md §5, `POST /events/{source}`).
//!
//! A row is inserted when a delivery claims the event (`claimed_at`) and marked when the
//! delivery is done (`delivered_at`); rows are pruned by `received_at` after a retention
//! window.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// The migration that creates `webhook_event`.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000009_create_webhook_event"
    }
}

#[derive(DeriveIden)]
enum WebhookEvent {
    Table,
    Source,
    EventId,
    ReceivedAt,
    ClaimedAt,
    DeliveredAt,
}

/// The index that pruning by age reads.
const RECEIVED_AT_INDEX: &str = "webhook_event_received_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let postgres = manager.get_database_backend() == DbBackend::Postgres;
        let mut source = ColumnDef::new(WebhookEvent::Source);
        source.string().not_null();
        let mut event_id = ColumnDef::new(WebhookEvent::EventId);
        event_id.string().not_null();
        if postgres {
            source.extra("COLLATE \"C\"");
            event_id.extra("COLLATE \"C\"");
        }
        manager
            .create_table(
                Table::create()
                    .table(WebhookEvent::Table)
                    .col(source)
                    .col(event_id)
                    .col(
                        ColumnDef::new(WebhookEvent::ReceivedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEvent::ClaimedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEvent::DeliveredAt)
                            .big_integer()
                            .null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(WebhookEvent::Source)
                            .col(WebhookEvent::EventId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(RECEIVED_AT_INDEX)
                    .table(WebhookEvent::Table)
                    .col(WebhookEvent::ReceivedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(WebhookEvent::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
