//! The database, pooled by veza-dbpool, pooled by deadpool-postgres (the peers stack) or naive
//! (a new connection per request), behind one small interface so every handler runs the same
//! SQL in every mode.

use std::time::Duration;

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, Row};
use veza_dbpool::Pool;

use crate::config::Mode;
use crate::error::ApiError;

/// The tables: the guide's `users` (from veza-dbpool), the service's credentials and messages.
pub const MIGRATION: &str = "\
CREATE TABLE IF NOT EXISTS credentials (
    user_id BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    password_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    body TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS messages_user_id_id ON messages (user_id, id DESC);";

/// Pooled, peers or naive.
pub enum Db {
    /// veza-dbpool.
    Pooled(Box<Pool>),
    /// deadpool-postgres, configured as its documentation shows (fast recycling, a statement
    /// cache per connection, wait/create/recycle timeouts on the Tokio runtime).
    Peers(deadpool_postgres::Pool),
    /// A new connection for every request.
    Naive(Box<tokio_postgres::Config>),
}

/// One checked-out (or freshly opened) connection.
pub enum DbConn<'a> {
    /// From the pool; statements are prepared once per connection.
    Pooled(veza_dbpool::Conn<'a>),
    /// From deadpool; statements are prepared once per connection (its `prepare_cached`).
    Peers(deadpool_postgres::Object),
    /// Opened for this request; closed when dropped.
    Naive(tokio_postgres::Client),
}

impl std::fmt::Debug for DbConn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DbConn::Pooled(_) => "DbConn::Pooled",
            DbConn::Peers(_) => "DbConn::Peers",
            DbConn::Naive(_) => "DbConn::Naive",
        })
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Db::Pooled(_) => "Db::Pooled",
            Db::Peers(_) => "Db::Peers",
            Db::Naive(_) => "Db::Naive",
        })
    }
}

impl Db {
    /// Connects (pooled) or remembers how to (naive), in `schema`, creating the tables.
    pub async fn open(url: &str, schema: &str, pool_size: u32, mode: Mode) -> anyhow::Result<Db> {
        let mut pg: tokio_postgres::Config = url.parse()?;
        pg.options(format!("-c search_path={schema}"));
        pg.application_name("veza-api");
        pg.connect_timeout(Duration::from_secs(5));
        // The schema must exist before the search path can point at it.
        let (setup, conn) = url
            .parse::<tokio_postgres::Config>()?
            .connect(NoTls)
            .await?;
        let task = tokio::spawn(conn);
        setup
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .await?;
        drop(setup);
        let _ = task.await;
        let db = match mode {
            Mode::Naive => Db::Naive(Box::new(pg)),
            Mode::Veza => {
                let pool = Pool::builder()
                    .pg(pg)
                    .name("api")
                    .max_size(pool_size)
                    .build()?;
                Db::Pooled(Box::new(pool))
            }
            Mode::Peers => {
                use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod, Runtime};
                let manager = Manager::from_config(
                    pg,
                    NoTls,
                    ManagerConfig {
                        recycling_method: RecyclingMethod::Fast,
                    },
                );
                let timeout = Some(Duration::from_secs(5));
                let pool = deadpool_postgres::Pool::builder(manager)
                    .max_size(pool_size as usize)
                    .runtime(Runtime::Tokio1)
                    .wait_timeout(timeout)
                    .create_timeout(timeout)
                    .recycle_timeout(timeout)
                    .build()?;
                Db::Peers(pool)
            }
        };
        {
            let mut c = db.get().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            c.batch(veza_dbpool::users::MIGRATION)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            c.batch(MIGRATION)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Ok(db)
    }

    /// Closes the pool's connections (waiting for those in use); nothing to do when naive.
    pub async fn close(&self) {
        match self {
            Db::Pooled(pool) => pool.close().await,
            // deadpool closes at once: idle connections drop, those in use drop when returned.
            Db::Peers(pool) => pool.close(),
            Db::Naive(_) => {}
        }
    }

    /// Whether [`close`](Db::close) closed the pool (never, when naive).
    pub fn is_closed(&self) -> bool {
        match self {
            Db::Pooled(pool) => pool.is_closed(),
            Db::Peers(pool) => pool.is_closed(),
            Db::Naive(_) => false,
        }
    }

    /// A connection for one request. Each stack's checkout future is boxed on its own, so
    /// the future every handler holds is not sized by another stack's pool.
    pub async fn get(&self) -> Result<DbConn<'_>, ApiError> {
        match self {
            Db::Pooled(pool) => Ok(DbConn::Pooled(Box::pin(pool.get()).await?)),
            Db::Peers(pool) => Ok(DbConn::Peers(Box::pin(pool.get()).await?)),
            Db::Naive(pg) => {
                let (client, conn) = pg.connect(NoTls).await.map_err(ApiError::db)?;
                tokio::spawn(conn);
                Ok(DbConn::Naive(client))
            }
        }
    }

    /// The pool, in pooled mode.
    pub fn pool(&self) -> Option<&Pool> {
        match self {
            Db::Pooled(p) => Some(p),
            Db::Peers(_) | Db::Naive(_) => None,
        }
    }
}

/// The database's readiness: the pool's own check, or a fresh connection in naive mode.
#[derive(Debug)]
pub struct DbCheck(pub std::sync::Arc<Db>);

impl veza_core::HealthCheck for DbCheck {
    fn name(&self) -> &str {
        "db"
    }

    fn check(&self) -> veza_core::BoxFuture<'_, veza_core::Health> {
        Box::pin(async move {
            match &*self.0 {
                Db::Pooled(pool) => pool.check().await,
                Db::Peers(_) | Db::Naive(_) => match self.0.get().await {
                    Ok(mut c) => match c.query_opt("SELECT 1", &[]).await {
                        Ok(_) => veza_core::Health::Healthy,
                        Err(e) => veza_core::Health::unhealthy(e.detail().to_owned()),
                    },
                    Err(e) => veza_core::Health::unhealthy(e.detail().to_owned()),
                },
            }
        })
    }
}

impl DbConn<'_> {
    /// Rows of a statement.
    pub async fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, ApiError> {
        match self {
            DbConn::Pooled(c) => {
                let st = c.prepare_cached(sql).await?;
                c.query(&st, params)
                    .await
                    .map_err(|e| ApiError::from(c.failed(e)))
            }
            DbConn::Peers(c) => {
                let st = c.prepare_cached(sql).await.map_err(ApiError::db)?;
                c.query(&st, params).await.map_err(ApiError::db)
            }
            DbConn::Naive(c) => c.query(sql, params).await.map_err(ApiError::db),
        }
    }

    /// At most one row.
    pub async fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, ApiError> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// Several statements, no parameters.
    pub async fn batch(&mut self, sql: &str) -> Result<(), ApiError> {
        match self {
            DbConn::Pooled(c) => c
                .batch_execute(sql)
                .await
                .map_err(|e| ApiError::from(c.failed(e))),
            DbConn::Peers(c) => c.batch_execute(sql).await.map_err(ApiError::db),
            DbConn::Naive(c) => c.batch_execute(sql).await.map_err(ApiError::db),
        }
    }

    /// Inserts users: binary COPY when pooled (veza-dbpool's `copy_rows`, or tokio-postgres's
    /// `BinaryCopyInWriter` on deadpool), one INSERT per row (in one transaction) when naive,
    /// as the guide's batch insert does.
    pub async fn insert_users(&mut self, users: &[(String, String)]) -> Result<u64, ApiError> {
        match self {
            DbConn::Pooled(c) => {
                // Collected first: an iterator holding a closure over borrowed rows would have
                // to live across the await, which the compiler cannot prove `Send`.
                let mut rows: Vec<[&(dyn ToSql + Sync); 2]> = Vec::with_capacity(users.len());
                for (email, name) in users {
                    rows.push([email, name]);
                }
                Ok(c.copy_rows(
                    "users",
                    &["email", "name"],
                    &[Type::TEXT, Type::TEXT],
                    &rows,
                )
                .await?)
            }
            DbConn::Peers(c) => {
                use tokio_postgres::binary_copy::BinaryCopyInWriter;
                let sink = c
                    .copy_in("COPY users (email, name) FROM STDIN BINARY")
                    .await
                    .map_err(ApiError::db)?;
                let writer = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::TEXT]);
                let mut writer = std::pin::pin!(writer);
                for (email, name) in users {
                    let row: [&(dyn ToSql + Sync); 2] = [email, name];
                    writer.as_mut().write(&row).await.map_err(ApiError::db)?;
                }
                writer.finish().await.map_err(ApiError::db)
            }
            DbConn::Naive(c) => {
                let tx = c.transaction().await.map_err(ApiError::db)?;
                let st = tx
                    .prepare("INSERT INTO users (email, name) VALUES ($1, $2)")
                    .await
                    .map_err(ApiError::db)?;
                for (email, name) in users {
                    tx.execute(&st, &[email, name])
                        .await
                        .map_err(ApiError::db)?;
                }
                tx.commit().await.map_err(ApiError::db)?;
                Ok(users.len() as u64)
            }
        }
    }
}
