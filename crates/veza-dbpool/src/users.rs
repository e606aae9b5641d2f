//! The guide's `users` example, done with this crate's helpers: a migration (unique index on
//! email, an index for keyset pages) and a typed repository. Tests, examples and benchmarks use
//! it; copy it as a model for your own tables.

use std::sync::Arc;
use std::time::SystemTime;

use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};
use veza_core::{AsyncCache, BoxError};

use crate::cursor::Cursor;
use crate::error::Error;
use crate::pool::Pool;

/// Creates the `users` table and its indexes in the current schema (idempotent).
pub const MIGRATION: &str = "\
CREATE TABLE IF NOT EXISTS users (
    id BIGSERIAL PRIMARY KEY,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users (email);
CREATE INDEX IF NOT EXISTS users_created_at_id ON users (created_at DESC, id DESC);";

/// A user row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The primary key.
    pub id: i64,
    /// Unique.
    pub email: String,
    /// Display name.
    pub name: String,
    /// When the row was created.
    pub created_at: SystemTime,
}

/// A user to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Unique.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Creation time (the database default is `now()`; batch imports carry their own).
    pub created_at: SystemTime,
}

const COLUMNS: &str = "id, email, name, created_at";

impl User {
    fn from_row(row: &Row) -> User {
        User {
            id: row.get(0),
            email: row.get(1),
            name: row.get(2),
            created_at: row.get(3),
        }
    }

    /// This row's position for keyset pagination: `(created_at, id)`.
    pub fn cursor(&self) -> Cursor {
        Cursor::from_key(&(self.created_at, self.id))
    }
}

/// The repository: typed queries on a pool, every value a bind parameter (never spliced
/// into SQL).
#[derive(Debug, Clone, Copy)]
pub struct Users<'p> {
    pool: &'p Pool,
}

/// Why a user was not loaded into the cache: it does not exist.
#[derive(Debug)]
struct NotFound;

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no such user")
    }
}

impl std::error::Error for NotFound {}

impl<'p> Users<'p> {
    /// The repository on `pool`.
    pub fn new(pool: &'p Pool) -> Self {
        Users { pool }
    }

    /// Runs [`MIGRATION`].
    pub async fn migrate(&self) -> Result<(), Error> {
        let mut conn = self.pool.get().await?;
        conn.batch_execute(MIGRATION)
            .await
            .map_err(|e| conn.failed(e))
    }

    /// Inserts one user.
    pub async fn insert(&self, email: &str, name: &str) -> Result<User, Error> {
        let mut conn = self.pool.get().await?;
        let sql = format!("INSERT INTO users (email, name) VALUES ($1, $2) RETURNING {COLUMNS}");
        let rows = conn
            .query_cached(&sql, &[(&email, Type::TEXT), (&name, Type::TEXT)])
            .await?;
        rows.first()
            .map(User::from_row)
            .ok_or_else(|| Error::InvalidInput("the insert returned no row".into()))
    }

    /// The user with this email (an indexed lookup; the email is a parameter, so
    /// `' OR 1=1 --` is just an email that matches nobody).
    pub async fn by_email(&self, email: &str) -> Result<Option<User>, Error> {
        let mut conn = self.pool.get().await?;
        let sql = format!("SELECT {COLUMNS} FROM users WHERE email = $1 LIMIT 1");
        let started = std::time::Instant::now();
        let rows = conn.query_cached(&sql, &[(&email, Type::TEXT)]).await?;
        conn.record("users.by_email", started);
        Ok(rows.first().map(User::from_row))
    }

    /// The user with this id.
    pub async fn by_id(&self, id: i64) -> Result<Option<User>, Error> {
        let mut conn = self.pool.get().await?;
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        let started = std::time::Instant::now();
        let rows = conn.query_cached(&sql, &[(&id, Type::INT8)]).await?;
        conn.record("users.by_id", started);
        Ok(rows.first().map(User::from_row))
    }

    /// Cache-aside by id through any `veza_core::AsyncCache` (veza-cache's `Cache` is one):
    /// concurrent misses on one id query once; unknown ids are not cached.
    pub async fn by_id_cached(
        &self,
        cache: &dyn AsyncCache<i64, User>,
        id: i64,
    ) -> Result<Option<User>, BoxError> {
        let load = async move {
            match self.by_id(id).await {
                Ok(Some(user)) => Ok(user),
                Ok(None) => Err(BoxError::from(NotFound)),
                Err(e) => Err(BoxError::from(e)),
            }
        };
        match cache.get_or_load(id, Box::pin(load)).await {
            Ok(user) => Ok(Some(user)),
            Err(e) if e.downcast_ref::<NotFound>().is_some() => Ok(None),
            Err(e) => Err(Box::new(SharedCause(e))),
        }
    }

    /// Inserts `users` with one binary `COPY`: all or nothing.
    pub async fn batch_insert(&self, users: &[NewUser]) -> Result<u64, Error> {
        let mut conn = self.pool.get().await?;
        let rows = users.iter().map(|u| {
            [
                &u.email as &(dyn ToSql + Sync),
                &u.name as &(dyn ToSql + Sync),
                &u.created_at as &(dyn ToSql + Sync),
            ]
        });
        conn.copy_rows(
            "users",
            &["email", "name", "created_at"],
            &[Type::TEXT, Type::TEXT, Type::TIMESTAMPTZ],
            rows,
        )
        .await
    }

    /// A page of users, newest first, after `cursor` (from the previous page's last row), and
    /// the cursor of the next page when there may be one.
    pub async fn page_after(
        &self,
        cursor: Option<&Cursor>,
        limit: i64,
    ) -> Result<(Vec<User>, Option<Cursor>), Error> {
        let mut conn = self.pool.get().await?;
        let rows = match cursor {
            None => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM users ORDER BY created_at DESC, id DESC LIMIT $1"
                );
                conn.query_cached(&sql, &[(&limit, Type::INT8)]).await
            }
            Some(cursor) => {
                let (at, id): (SystemTime, i64) = cursor.key()?;
                let sql = format!(
                    "SELECT {COLUMNS} FROM users WHERE (created_at, id) < ($1, $2) \
                     ORDER BY created_at DESC, id DESC LIMIT $3"
                );
                conn.query_cached(
                    &sql,
                    &[
                        (&at, Type::TIMESTAMPTZ),
                        (&id, Type::INT8),
                        (&limit, Type::INT8),
                    ],
                )
                .await
            }
        }?;
        let users: Vec<User> = rows.iter().map(User::from_row).collect();
        let next = (users.len() as i64 == limit)
            .then(|| users.last().map(User::cursor))
            .flatten();
        Ok((users, next))
    }

    /// A page by `OFFSET`, newest first, for screens that need page numbers. It reads and
    /// discards every row before the page: prefer [`page_after`](Users::page_after).
    pub async fn page_offset(&self, offset: i64, limit: i64) -> Result<Vec<User>, Error> {
        let mut conn = self.pool.get().await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM users ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
        );
        let rows = conn
            .query_cached(&sql, &[(&limit, Type::INT8), (&offset, Type::INT8)])
            .await?;
        Ok(rows.iter().map(User::from_row).collect())
    }
}

/// A shared load error, boxed again for callers that want a `BoxError`.
#[derive(Debug)]
struct SharedCause(Arc<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for SharedCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}
