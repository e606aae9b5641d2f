//! [`Hook`]: an async callback on a connection, for [`Config::after_connect`] and
//! [`Config::before_checkout`](crate::Config::before_checkout).
//!
//! [`Config::after_connect`]: crate::Config::after_connect

use std::fmt;
use std::sync::Arc;

use tokio_postgres::Client;
use veza_core::BoxFuture;

type HookFn =
    dyn for<'c> Fn(&'c Client) -> BoxFuture<'c, Result<(), tokio_postgres::Error>> + Send + Sync;

/// An async callback on a connection:
///
/// ```
/// use veza_dbpool::Hook;
/// let set_up = Hook::new(|client| {
///     Box::pin(async move { client.batch_execute("SET TIME ZONE 'UTC'").await })
/// });
/// # let _ = set_up;
/// ```
#[derive(Clone)]
pub struct Hook(Arc<HookFn>);

impl Hook {
    /// Wraps `f`, which gets the connection's client and returns a boxed future.
    pub fn new(
        f: impl for<'c> Fn(&'c Client) -> BoxFuture<'c, Result<(), tokio_postgres::Error>>
        + Send
        + Sync
        + 'static,
    ) -> Hook {
        Hook(Arc::new(f))
    }

    pub(crate) fn call<'c>(
        &self,
        client: &'c Client,
    ) -> BoxFuture<'c, Result<(), tokio_postgres::Error>> {
        (self.0)(client)
    }
}

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hook")
    }
}
