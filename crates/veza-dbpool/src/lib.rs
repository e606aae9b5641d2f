//! A PostgreSQL connection pool on bb8 that serves waiters in order, never hands out a dead
//! connection, and fails fast with the server's own error.
//!
//! ```no_run
//! # async fn demo() -> Result<(), veza_dbpool::Error> {
//! let pool = veza_dbpool::Pool::from_url("postgres://app@127.0.0.1/app")?;
//! let conn = pool.get().await?; // fair, checked, fails fast with the real cause
//! let row = conn.query_one("SELECT $1::int + 1", &[&41]).await?;
//! assert_eq!(row.get::<_, i32>(0), 42);
//! # Ok(()) }
//! ```
//!
//! See [`Pool`] for what it fixes in bb8's defaults and for [`Pool::close`], [`Config`] for the knobs, and [`Error`]
//! for the classified errors.
//!
//! Query helpers: [`Conn::copy_rows`] (binary COPY), [`Cursor`] (keyset pagination),
//! [`Pool::transaction`] (retried on serialization failures and deadlocks),
//! [`Conn::prepare_cached`], and the guide's `users` table in [`users`].
//!
//! # Feature flags
//!
//! | feature | default | what it enables |
//! |---|---|---|
//! | `rustls` | no | TLS to the server with rustls: `Config::tls` |
//! | `serde` | no | `Deserialize` for [`Config`], durations as `"30s"` |
//! | `tracing` | no | a `db.query` span per timed query (pool, statement, duration, error) and one `WARN` event per slow query (target `veza_dbpool::slow_query`) |
//!
//! # Supported Rust versions
//!
//! Rust 1.85 or newer.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod config;
mod copy;
mod cursor;
mod error;
mod hook;
mod listener;
mod manager;
mod metrics;
mod observe;
mod pool;
mod transaction;
pub mod users;
mod wire;

pub use config::{Builder, Config};
pub use copy::quote_ident;
pub use cursor::{Cursor, Key, KeyPart};
pub use error::Error;
pub use hook::Hook;
pub use listener::{Event, Listener};
pub use manager::Connection;
pub use pool::{Conn, Pool};
pub use transaction::{Isolation, RetryPolicy};

/// The driver, re-exported so its types (`types::{ToSql, Type}` for `copy_rows` and
/// `query_cached`, `Row`, `Client`) need no dependency of your own, at the version this crate
/// uses.
pub use tokio_postgres;

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
