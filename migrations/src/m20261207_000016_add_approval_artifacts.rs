//! Adds `artifacts` to the approvals read model: the artifacts an approval binds
//! (`approval.bind`), a JSON array as text; `NULL` for an approval that binds none.

use sea_orm_migration::prelude::*;

/// The migration that adds `approval.artifacts`.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000016_add_approval_artifacts"
    }
}

#[derive(DeriveIden)]
enum Approval {
    Table,
    Artifacts,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Approval::Table)
                    .add_column(ColumnDef::new(Approval::Artifacts).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Approval::Table)
                    .drop_column(Approval::Artifacts)
                    .to_owned(),
            )
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
