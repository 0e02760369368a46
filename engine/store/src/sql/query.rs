//! Building parameterized statements by hand, for both backends.
//!
//! The batch write path builds multi-row `INSERT`s and `IN (…)` lists whose size varies
//! from batch to batch. Writing the SQL text directly (rather than through sea-query's
//! expression trees) keeps that path to one string and one value vector per statement.
//! Only fixed table and column names are ever written into the text; every value is bound.

use std::fmt::Write as _;

use sea_orm::{DbBackend, Statement, Value};

/// SQLite's default limit on bound variables per statement (`SQLITE_MAX_VARIABLE_NUMBER`).
const SQLITE_MAX_VARIABLES: usize = 32_766;
/// PostgreSQL's limit on bound parameters per statement (a 16-bit count in the protocol).
const POSTGRES_MAX_VARIABLES: usize = 65_535;

/// Row counts of the multi-row statements, largest first.
///
/// A batch of `n` rows is written as chunks of these sizes (250 rows: 64 + 64 + 64 + 16 +
/// 16 + 16 + 4 + 4 + 1 + 1). Each (table, size) pair is then one SQL text that the driver's
/// per-connection prepared-statement cache keeps, instead of a new text to parse and plan
/// for every distinct batch size, while a batch still takes only a few statements.
const CHUNK_ROWS: [usize; 5] = [256, 64, 16, 4, 1];

/// A statement being built: SQL text with placeholders, and the values they bind.
#[derive(Debug)]
pub(crate) struct Query {
    backend: DbBackend,
    sql: String,
    values: Vec<Value>,
}

impl Query {
    /// An empty statement for `backend`, with room for `values` bound values.
    pub(crate) fn new(backend: DbBackend, values: usize) -> Self {
        Self {
            backend,
            sql: String::with_capacity(64 + values * 4),
            values: Vec::with_capacity(values),
        }
    }

    /// A statement of fixed SQL and no values.
    pub(crate) fn text(backend: DbBackend, sql: &str) -> Self {
        let mut query = Self::new(backend, 0);
        query.sql(sql);
        query
    }

    /// Appends SQL text.
    pub(crate) fn sql(&mut self, text: &str) -> &mut Self {
        self.sql.push_str(text);
        self
    }

    /// Appends a placeholder and binds `value` to it.
    pub(crate) fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => {
                // Writing to a String cannot fail.
                let _ = write!(self.sql, "${}", self.values.len());
            }
            _ => self.sql.push('?'),
        }
        self
    }

    /// Appends `(v1, v2, …)`, binding each value.
    pub(crate) fn bind_row<const N: usize>(&mut self, row: [Value; N]) -> &mut Self {
        self.sql.push('(');
        for (index, value) in row.into_iter().enumerate() {
            if index > 0 {
                self.sql.push_str(", ");
            }
            self.bind(value);
        }
        self.sql.push(')');
        self
    }

    /// Appends `v1, v2, …` (for an `IN (…)` list), binding each value.
    pub(crate) fn bind_list<V: Into<Value>>(
        &mut self,
        values: impl IntoIterator<Item = V>,
    ) -> &mut Self {
        for (index, value) in values.into_iter().enumerate() {
            if index > 0 {
                self.sql.push_str(", ");
            }
            self.bind(value);
        }
        self
    }

    /// The finished statement.
    pub(crate) fn build(self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.sql, self.values)
    }
}

/// Splits `items` into the chunks of one multi-row statement each, for rows of
/// `columns` bound values, within the backend's limit on bound variables.
pub(crate) fn chunks<T>(
    backend: DbBackend,
    columns: usize,
    items: &[T],
) -> impl Iterator<Item = &[T]> {
    let max_variables = match backend {
        DbBackend::Postgres => POSTGRES_MAX_VARIABLES,
        _ => SQLITE_MAX_VARIABLES,
    };
    let max_rows = (max_variables / columns.max(1)).max(1);
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let rows = CHUNK_ROWS
            .iter()
            .copied()
            .find(|&rows| rows <= rest.len() && rows <= max_rows)
            .unwrap_or(1);
        let (chunk, after) = rest.split_at(rows);
        rest = after;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_on_postgres_and_anonymous_on_sqlite() {
        let mut postgres = Query::new(DbBackend::Postgres, 3);
        postgres
            .sql("INSERT INTO t (a, b) VALUES ")
            .bind_row([Value::from(1i64), Value::from("x")]);
        postgres.sql(" WHERE c IN (").bind_list([7i64]).sql(")");
        let statement = postgres.build();
        assert_eq!(
            statement.sql,
            "INSERT INTO t (a, b) VALUES ($1, $2) WHERE c IN ($3)"
        );

        let mut sqlite = Query::new(DbBackend::Sqlite, 2);
        sqlite.sql("SELECT ").bind_list(["a", "b"]);
        assert_eq!(sqlite.build().sql, "SELECT ?, ?");
    }

    #[test]
    fn chunks_use_few_fixed_sizes() {
        let items: Vec<u32> = (0..250).collect();
        let sizes: Vec<usize> = chunks(DbBackend::Sqlite, 8, &items)
            .map(<[u32]>::len)
            .collect();
        assert_eq!(sizes, vec![64, 64, 64, 16, 16, 16, 4, 4, 1, 1]);
        let rejoined: Vec<u32> = chunks(DbBackend::Sqlite, 8, &items)
            .flatten()
            .copied()
            .collect();
        assert_eq!(rejoined, items);
    }

    #[test]
    fn chunks_respect_the_variable_limit() {
        let items: Vec<u32> = (0..1000).collect();
        assert!(chunks(DbBackend::Sqlite, 1000, &items).all(|chunk| chunk.len() * 1000 <= 32_766));
        assert_eq!(chunks(DbBackend::Postgres, 8, &[] as &[u32]).count(), 0);
    }
}
