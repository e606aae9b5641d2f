//! The bb8 connection manager: opens tokio-postgres connections, publishes connect errors for
//! waiting checkouts, and says when a connection is broken.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Instant;

use tokio::sync::watch;
use tokio_postgres::{Client, NoTls, Statement};

use crate::observe::Plain;
use crate::wire::WireState;

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
    /// The session as its protocol bytes show it.
    pub(crate) wire: Arc<WireState>,
    /// Whether a user had it since it was opened or last reset.
    pub(crate) used: bool,
    /// When it is closed instead of reused (`max_lifetime` less its jitter).
    pub(crate) expires: Option<Instant>,
    /// Counts it among the live connections while it exists.
    _live: Counted,
}

/// One count in a shared counter, for as long as it lives.
#[derive(Debug)]
pub(crate) struct Counted(Arc<AtomicU32>);

impl Counted {
    pub(crate) fn new(counter: &Arc<AtomicU32>) -> Counted {
        counter.fetch_add(1, Ordering::AcqRel);
        Counted(Arc::clone(counter))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
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
    /// `pg` set up for the observing connector, when connections can be observed.
    pub(crate) observed: Option<tokio_postgres::Config>,
    /// Bumped after each connect error is published, so checkouts can tell cheaply.
    pub(crate) error_generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
    #[cfg(feature = "rustls")]
    pub(crate) tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    pub(crate) errors: ConnectErrors,
    /// Connect attempts that failed in a row.
    pub(crate) failures: Arc<AtomicU32>,
    /// Connections that exist, and connect attempts under way (see `Pool::on_connect_error`).
    pub(crate) live: Arc<AtomicU32>,
    pub(crate) connecting: Arc<AtomicU32>,
    pub(crate) max_lifetime: Option<std::time::Duration>,
    pub(crate) jitter: std::time::Duration,
    pub(crate) after_connect: Option<crate::Hook>,
    /// Set by `Pool::close`.
    pub(crate) closed: Arc<AtomicBool>,
}

impl Manager {
    async fn connect_plain(&self) -> Result<(Client, Arc<WireState>), tokio_postgres::Error> {
        if let Some(pg) = &self.observed {
            let plain = Plain {
                state: WireState::new(),
            };
            let (client, connection) = pg.connect(plain.clone()).await?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            return Ok((client, plain.state));
        }
        let (client, connection) = self.pg.connect(NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok((client, WireState::new()))
    }
}

impl bb8::ManageConnection for Manager {
    type Connection = Connection;
    type Error = ConnectError;

    async fn connect(&self) -> Result<Connection, Self::Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(ConnectError::Closed);
        }
        // Under way until this returns; a success is counted live before this count drops.
        let connecting = Counted::new(&self.connecting);
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
                    // TLS streams are not observed (see `observe`).
                    (client, WireState::new())
                }),
            None => self.connect_plain().await,
        };
        #[cfg(not(feature = "rustls"))]
        let connected = self.connect_plain().await;
        // The after-connect hook's failure is the connection's failure.
        let connected = match (connected, &self.after_connect) {
            (Ok((client, wire)), Some(hook)) => match hook.call(&client).await {
                Ok(()) => Ok((client, wire)),
                Err(e) => Err(e),
            },
            (other, _) => other,
        };
        match connected {
            // Closed while connecting: the client goes, and its socket with it.
            Ok(_) if self.closed.load(Ordering::Acquire) => Err(ConnectError::Closed),
            Ok((client, wire)) => {
                self.failures.store(0, Ordering::Release);
                let now = Instant::now();
                let expires = self
                    .max_lifetime
                    .and_then(|l| now.checked_add(l.saturating_sub(random_part(self.jitter))));
                Ok(Connection {
                    _live: Counted::new(&self.live),
                    expires,
                    client,
                    last_used: now,
                    broken: false,
                    statements: HashMap::new(),
                    wire,
                    used: false,
                })
            }
            Err(e) => {
                // No longer under way when the waiters hear of it.
                drop(connecting);
                self.failures.fetch_add(1, Ordering::AcqRel);
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

/// A uniformly random duration in `[0, max)` (zero for a zero `max`).
fn random_part(max: std::time::Duration) -> std::time::Duration {
    use std::hash::{BuildHasher, RandomState};
    if max.is_zero() {
        return max;
    }
    let r = RandomState::new().hash_one(Instant::now());
    max.mul_f64((r >> 11) as f64 / (1u64 << 53) as f64)
}
