//! Batch insert through `COPY ... FROM STDIN BINARY`: one statement, rows streamed in the
//! binary format, all or nothing.

use std::pin::pin;

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use crate::error::Error;
use crate::pool::Conn;

/// `"name"` with inner quotes doubled: a safe SQL identifier whatever `name` holds.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Conn<'_> {
    /// Inserts `rows` into `table (columns)` with binary `COPY`, and returns the number of
    /// rows inserted. Each row gives one value per column, of the matching `types`.
    ///
    /// COPY is one statement: a row the server rejects (a constraint, a bad value) aborts the
    /// whole batch and nothing is inserted. Any failure once the COPY is sent (a table the
    /// server does not know included) closes the connection instead of returning it to the
    /// pool: tokio-postgres can leave the COPY sub-protocol out of step with the server there,
    /// and a reconnect costs less than a poisoned connection. With the statement cache off
    /// (behind PgBouncer in transaction mode) the COPY runs in a transaction of its own,
    /// unless the connection is already inside one. 27.7 times the rows per second of one
    /// prepared `INSERT` per row in a transaction (`dbpool/batch_insert_100k` in
    /// docs/benchmarks.md; `cargo xtask bench --filter dbpool/batch_insert`). `table` may be schema-qualified
    /// (`"app.users"` is split on the dot); names are quoted, never spliced raw.
    pub async fn copy_rows<'r, I, R>(
        &mut self,
        table: &str,
        columns: &[&str],
        types: &[Type],
        rows: I,
    ) -> Result<u64, Error>
    where
        I: IntoIterator<Item = R>,
        R: AsRef<[&'r (dyn ToSql + Sync)]>,
    {
        if columns.len() != types.len() {
            return Err(Error::InvalidInput(format!(
                "copy_in: {} columns but {} types",
                columns.len(),
                types.len()
            )));
        }
        let table_sql = table
            .split('.')
            .map(quote_ident)
            .collect::<Vec<_>>()
            .join(".");
        let columns_sql = columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("COPY {table_sql} ({columns_sql}) FROM STDIN BINARY");
        // Behind a transaction-mode pooler (statement cache off), the COPY's prepare and its
        // run must reach the same server connection: one transaction pins it. Inside the
        // caller's own transaction it is pinned already, and a COMMIT here would end theirs.
        let pinned = !self.statement_cache_on() && !self.in_transaction();
        let result = async {
            if pinned {
                self.batch_execute("BEGIN").await?;
            }
            let sink = tokio_postgres::Client::copy_in::<_, bytes::Bytes>(self, &sql).await?;
            let mut writer = pin!(BinaryCopyInWriter::new(sink, types));
            for row in rows {
                let row = row.as_ref();
                if row.len() != types.len() {
                    // Dropping the writer without finishing aborts the COPY: nothing is
                    // inserted.
                    return Ok(Err(Error::InvalidInput(format!(
                        "copy_in: a row has {} values for {} columns",
                        row.len(),
                        types.len()
                    ))));
                }
                writer.as_mut().write(row).await?;
            }
            let n = writer.as_mut().finish().await?;
            if pinned {
                self.batch_execute("COMMIT").await?;
            }
            Ok::<_, tokio_postgres::Error>(Ok(n))
        }
        .await;
        match result {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => {
                self.failed_broken();
                Err(e)
            }
            Err(e) => {
                self.failed_broken();
                Err(Error::from(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("users"), "\"users\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
