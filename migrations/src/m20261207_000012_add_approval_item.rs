//! Adds `item` to the approvals read model: the fan-out item whose approval a row is
//! (`for_each` on an approval step gives each item its own approval, id
//! `<instance>:<step>:<attempt>:<item>`); `NULL` for the approval of a whole step.

use sea_orm_migration::prelude::*;

/// The migration that adds `approval.item`.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000012_add_approval_item"
    }
}

#[derive(DeriveIden)]
enum Approval {
    Table,
    Item,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Approval::Table)
                    .add_column(ColumnDef::new(Approval::Item).big_integer().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Approval::Table)
                    .drop_column(Approval::Item)
                    .to_owned(),
            )
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
