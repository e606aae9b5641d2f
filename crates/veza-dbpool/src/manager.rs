//! The bb8 connection manager: opens tokio-postgres connections, publishes connect errors for
//! waiting checkouts, and says when a connection is broken.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::watch;
use tokio_postgres::{Client, NoTls, Statement};

/// A pooled PostgreSQL connection.
#[derive(Debug)]
pub struct Connection {
    pub(crate) client: Client,
    /// When it was last handed back to the pool.
    pub(crate) last_used: Instant,
    /// Set when an error showed the connection unusable.
    pub(crate) broken: bool,
    /// Prepared statements by SQL text.
    pub(crate) statements: HashMap<String, Statement>,
}

/// The latest connect error, shared with waiting checkouts.
pub(crate) type ConnectErrors = watch::Sender<Option<Arc<tokio_postgres::Error>>>;

/// Why the manager opened no connection.
#[derive(Debug, Clone)]
pub(crate) enum ConnectError {
    /// The driver's error (refused, bad credentials, unknown database...).
    Pg(Arc<tokio_postgres::Error>),
    /// The pool was closed: no new connection, not even to keep `min_idle`.
    Closed,
}

pub(crate) struct Manager {
    pub(crate) pg: tokio_postgres::Config,
    /// Bumped after each connect error is published, so checkouts can tell cheaply.
    pub(crate) error_generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
    #[cfg(feature = "rustls")]
    pub(crate) tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    pub(crate) errors: ConnectErrors,
    pub(crate) created: metrics::Counter,
    /// Set by `Pool::close`.
    pub(crate) closed: Arc<AtomicBool>,
}

impl Manager {
    async fn connect_plain(&self) -> Result<Client, tokio_postgres::Error> {
        let (client, connection) = self.pg.connect(NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }
}

impl bb8::ManageConnection for Manager {
    type Connection = Connection;
    type Error = ConnectError;

    async fn connect(&self) -> Result<Connection, Self::Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(ConnectError::Closed);
        }
        // The connection future drives the socket; it ends when the client is dropped or the
        // server goes away (then `client.is_closed()` turns true).
        #[cfg(feature = "rustls")]
        let connected = match &self.tls {
            Some(tls) => self
                .pg
                .connect(tls.clone())
                .await
                .map(|(client, connection)| {
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    client
                }),
            None => self.connect_plain().await,
        };
        #[cfg(not(feature = "rustls"))]
        let connected = self.connect_plain().await;
        match connected {
            // Closed while connecting: the client goes, and its socket with it.
            Ok(_) if self.closed.load(Ordering::Acquire) => Err(ConnectError::Closed),
            Ok(client) => {
                self.created.increment(1);
                Ok(Connection {
                    client,
                    last_used: Instant::now(),
                    broken: false,
                    statements: HashMap::new(),
                })
            }
            Err(e) => {
                let e = Arc::new(e);
                self.errors.send_replace(Some(e.clone()));
                self.error_generation
                    .fetch_add(1, std::sync::atomic::Ordering::Release);
                Err(ConnectError::Pg(e))
            }
        }
    }

    async fn is_valid(&self, conn: &mut Connection) -> Result<(), Self::Error> {
        conn.client
            .simple_query("")
            .await
            .map(drop)
            .map_err(|e| ConnectError::Pg(Arc::new(e)))
    }

    fn has_broken(&self, conn: &mut Connection) -> bool {
        conn.broken || conn.client.is_closed()
    }
}
