//! Creates the `token` table: API tokens by the SHA-256 of their text, with the user,
//! role and groups they name. The token itself is never stored.

use sea_orm_migration::prelude::*;

/// The migration that creates the `token` table.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261122_000003_create_token"
    }
}

#[derive(DeriveIden)]
enum Token {
    Table,
    /// Lowercase hex SHA-256 of the token's text.
    Hash,
    /// The user the token names (`user` is a reserved word in PostgreSQL).
    Username,
    Role,
    /// JSON array of group names.
    Groups,
    CreatedAt,
    CreatedBy,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Token::Table)
                    // Looked up by equality only, so the collation does not matter here.
                    .col(
                        ColumnDef::new(Token::Hash)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Token::Username).string().not_null())
                    .col(ColumnDef::new(Token::Role).string().not_null())
                    .col(ColumnDef::new(Token::Groups).text().not_null())
                    .col(ColumnDef::new(Token::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Token::CreatedBy).string().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Token::Table).if_exists().to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
