//! Transactions retried on serialization failures and deadlocks, bounded, with backoff.

use std::time::Duration;

use tokio_postgres::{IsolationLevel, Transaction};
use veza_core::BoxFuture;

use crate::error::Error;
use crate::pool::Pool;

/// How [`Pool::transaction`] retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included. Default 5.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubled each time. Default 10 ms.
    pub first_backoff: Duration,
    /// The longest backoff. Default 500 ms.
    pub max_backoff: Duration,
    /// The isolation level. Default serializable (the level that needs retries).
    pub isolation: Isolation,
}

/// Transaction isolation levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Isolation {
    /// `READ COMMITTED`.
    ReadCommitted,
    /// `REPEATABLE READ`.
    RepeatableRead,
    /// `SERIALIZABLE`.
    Serializable,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(500),
            isolation: Isolation::Serializable,
        }
    }
}

/// Whether a failure is worth retrying the whole transaction for: serialization failure
/// (40001) or deadlock (40P01).
fn retryable(e: &Error) -> Option<&'static str> {
    match e.sqlstate() {
        Some("40001") => Some("serialization_failure"),
        Some("40P01") => Some("deadlock"),
        _ => None,
    }
}

impl Pool {
    /// Runs `work` in a transaction and commits it; when the server aborts it with a
    /// serialization failure or a deadlock (at any statement or at commit), rolls back, waits
    /// (exponential backoff with jitter) and runs `work` again, up to `policy.max_attempts`.
    /// Any other error rolls back and is returned at once; so is the last retryable one.
    /// `work` must be safe to run more than once: keep side effects outside the database out
    /// of it. It returns a boxed future so that the whole call stays `Send` (usable from
    /// `tokio::spawn` and web handlers):
    ///
    /// ```no_run
    /// # async fn demo(pool: &veza_dbpool::Pool) -> Result<(), veza_dbpool::Error> {
    /// use veza_dbpool::RetryPolicy;
    /// let moved = pool
    ///     .transaction(RetryPolicy::default(), |tx| {
    ///         Box::pin(async move {
    ///             tx.execute("UPDATE accounts SET balance = balance - 10 WHERE id = 1", &[]).await?;
    ///             tx.execute("UPDATE accounts SET balance = balance + 10 WHERE id = 2", &[]).await?;
    ///             Ok(10)
    ///         })
    ///     })
    ///     .await?;
    /// # let _: i32 = moved; Ok(()) }
    /// ```
    pub async fn transaction<T, F>(&self, policy: RetryPolicy, mut work: F) -> Result<T, Error>
    where
        F: for<'t> FnMut(&'t Transaction<'t>) -> BoxFuture<'t, Result<T, Error>>,
    {
        let mut backoff = policy.first_backoff;
        let mut attempt = 1;
        loop {
            let mut conn = self.get().await?;
            let level = match policy.isolation {
                Isolation::ReadCommitted => IsolationLevel::ReadCommitted,
                Isolation::RepeatableRead => IsolationLevel::RepeatableRead,
                Isolation::Serializable => IsolationLevel::Serializable,
            };
            let outcome = {
                let tx = match conn
                    .build_transaction()
                    .isolation_level(level)
                    .start()
                    .await
                {
                    Ok(tx) => tx,
                    Err(e) => return Err(Error::from(e)),
                };
                match work(&tx).await {
                    Ok(value) => tx.commit().await.map(|()| value).map_err(Error::from),
                    Err(e) => {
                        let _ = tx.rollback().await;
                        Err(e)
                    }
                }
            };
            match outcome {
                Ok(value) => {
                    self.metrics().transaction("commit");
                    return Ok(value);
                }
                Err(e) => {
                    self.metrics().transaction("rollback");
                    let Some(reason) = retryable(&e) else {
                        if e.breaks_connection() {
                            conn.failed_broken();
                        }
                        return Err(e);
                    };
                    if attempt >= policy.max_attempts {
                        return Err(e);
                    }
                    self.metrics().retry(reason);
                    drop(conn);
                    tokio::time::sleep(jitter(backoff)).await;
                    backoff = (backoff * 2).min(policy.max_backoff);
                    attempt += 1;
                }
            }
        }
    }
}

/// Between half and all of `d`, so that retrying transactions do not collide again in step.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    let fraction = 0.5 + f64::from(nanos % 1000) / 2000.0;
    d.mul_f64(fraction)
}
