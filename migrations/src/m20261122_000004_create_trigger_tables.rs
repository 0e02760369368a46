//! Creates the tables of cron triggers: `trigger_tick` (one row per claimed tick, whose
//! primary key makes inserting a tick the claim, so a tick fires once across nodes) and
//! `lease` (named leases with a holder and an expiry, such as the one node that fires
//! cron ticks).
//!
//! Instants are `BIGINT` microseconds since the Unix epoch (UTC), text keys compare by
//! bytes on both backends (see the crate documentation).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// The migration that creates `trigger_tick` and `lease`.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261122_000004_create_trigger_tables"
    }
}

#[derive(DeriveIden)]
enum TriggerTick {
    Table,
    DefinitionId,
    TriggerIndex,
    TickAt,
    State,
    InstanceId,
    ClaimedBy,
    ClaimedAt,
}

#[derive(DeriveIden)]
enum Lease {
    Table,
    Name,
    Holder,
    ExpiresAt,
}

/// A text key column that sorts and compares by bytes on both backends.
fn key(column: impl IntoIden, backend: DbBackend) -> ColumnDef {
    let mut definition = ColumnDef::new(column);
    definition.string().not_null();
    if backend == DbBackend::Postgres {
        definition.extra("COLLATE \"C\"");
    }
    definition
}

fn big_integer(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).big_integer().not_null().to_owned()
}

fn string(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).string().not_null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table(TriggerTick::Table)
                    .col(key(TriggerTick::DefinitionId, backend))
                    .col(big_integer(TriggerTick::TriggerIndex))
                    .col(big_integer(TriggerTick::TickAt))
                    .col(string(TriggerTick::State))
                    .col(ColumnDef::new(TriggerTick::InstanceId).string().null())
                    .col(string(TriggerTick::ClaimedBy))
                    .col(big_integer(TriggerTick::ClaimedAt))
                    .primary_key(
                        Index::create()
                            .name("pk_trigger_tick")
                            .col(TriggerTick::DefinitionId)
                            .col(TriggerTick::TriggerIndex)
                            .col(TriggerTick::TickAt),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Lease::Table)
                    .col(key(Lease::Name, backend).primary_key())
                    .col(string(Lease::Holder))
                    .col(big_integer(Lease::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [Lease::Table.into_iden(), TriggerTick::Table.into_iden()] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
