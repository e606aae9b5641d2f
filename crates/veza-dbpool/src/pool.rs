//! [`Pool`]: fair, fail-fast checkouts on top of bb8, and [`Conn`], the checked-out connection.

use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use tokio::sync::{Notify, Semaphore, SemaphorePermit, watch};
use tokio_postgres::Client;
use veza_core::{BoxFuture, Health, HealthCheck, Observe, PoolStats};

use crate::config::Config;
use crate::error::Error;
use crate::manager::{ConnectError, Connection, Manager};
use crate::metrics::PoolMetrics;
use crate::wire::Session;

/// A PostgreSQL connection pool.
///
/// It keeps bb8 and fixes what bb8 does by default:
///
/// - **Fair.** A FIFO semaphore with one permit per connection sits in front of bb8, so
///   waiters are served in arrival order and bb8 never has more callers than connections.
/// - **Cheap, safe checkouts.** bb8's round-trip test on every checkout is off. Instead every
///   checkout checks `is_closed()` (free), and only a connection idle longer than
///   `test_idle_after` (500 ms) gets a round trip. A connection found dead is dropped, never
///   handed out; the checkout takes another.
/// - **Fast, real errors.** When opening a connection fails (refused, unknown host, bad
///   password, unknown role or database), waiting checkouts get that error at once, with the
///   server's message, instead of a timeout 30 s later.
/// - **Observable.** `Observe` gives [`PoolStats`]; the `db_pool_*` catalog metrics carry the
///   pool's name; [`HealthCheck`] runs `SELECT 1`.
/// - **Closable.** [`Pool::close`] refuses new checkouts, fails the waiting ones with
///   [`Error::Closed`], and closes every connection as it comes back.
/// - **A cheap handle.** `Clone` shares the pool (one reference count): hand clones to
///   tasks and to axum state. Clones see one pool; [`Pool::close`] on any of them closes it
///   for all, and the connections close when the last clone and the last connection are gone.
///   [`Pool::get`] lends a connection tied to the handle's borrow (the cheapest);
///   [`Pool::get_owned`] gives a `Conn<'static>` that moves into a spawned task.
#[derive(Clone)]
pub struct Pool {
    s: Arc<Shared>,
}

/// What every clone of a [`Pool`] shares.
pub(crate) struct Shared {
    inner: bb8::Pool<Manager>,
    /// One permit per connection the pool may have; fewer while the server refuses more.
    fair: Arc<Semaphore>,
    /// Connect attempts that failed in a row (reset by a success), for the backoff.
    connect_failures: Arc<AtomicU32>,
    /// Connections that exist (pooled, in use, or just opened and not yet pooled).
    live: Arc<AtomicU32>,
    /// Connect attempts under way.
    connecting: Arc<AtomicU32>,
    errors: watch::Sender<Option<Arc<tokio_postgres::Error>>>,
    config: Config,
    metrics: PoolMetrics,
    pool_name: std::sync::Arc<str>,
    error_generation: Arc<std::sync::atomic::AtomicU64>,
    /// Set by `close`; shared with the manager so that no connection opens afterwards.
    closed: Arc<AtomicBool>,
    /// Signalled when a connection comes back after `close`.
    returned: Notify,
}

impl Pool {
    /// Builds the pool. Opens `min_idle` connections in the background; does not wait for
    /// the database (the first checkout reports a connection problem).
    pub fn new(config: Config) -> Result<Pool, Error> {
        config.validate()?;
        let metrics = PoolMetrics::new(&config.name);
        let (errors, _) = watch::channel(None);
        let error_generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let closed = Arc::new(AtomicBool::new(false));
        let connect_failures = Arc::new(AtomicU32::new(0));
        let live = Arc::new(AtomicU32::new(0));
        let connecting = Arc::new(AtomicU32::new(0));
        let pg = config.effective_pg();
        #[cfg(feature = "rustls")]
        let tls = config.tls.is_some();
        #[cfg(not(feature = "rustls"))]
        let tls = false;
        let manager = Manager {
            closed: closed.clone(),
            observed: crate::observe::observable(&pg, tls),
            pg,
            error_generation: error_generation.clone(),
            #[cfg(feature = "rustls")]
            tls: config
                .tls
                .clone()
                .map(|c| tokio_postgres_rustls::MakeRustlsConnect::new((*c).clone())),
            errors: errors.clone(),
            failures: connect_failures.clone(),
            live: live.clone(),
            connecting: connecting.clone(),
            max_lifetime: config.max_lifetime,
            jitter: config.max_lifetime_jitter,
            after_connect: config.after_connect.clone(),
        };
        let inner = bb8::Pool::builder()
            .max_size(config.max_size)
            .min_idle(config.min_idle)
            // Lifetimes are ours, with jitter: bb8's are all the same length.
            .max_lifetime(None)
            .idle_timeout(config.idle_timeout)
            .connection_timeout(config.checkout_timeout)
            .test_on_check_out(false)
            .retry_connection(false)
            .build_unchecked(manager);
        let pool = Pool {
            s: Arc::new(Shared {
                inner,
                fair: Arc::new(Semaphore::new(config.max_size as usize)),
                connect_failures,
                live,
                connecting,
                errors,
                error_generation,
                pool_name: config.name.as_str().into(),
                config,
                metrics,
                closed,
                returned: Notify::new(),
            }),
        };
        veza_core::publish::register(&pool.s);
        Ok(pool)
    }

    /// A builder: `Pool::builder().url("postgres://app@127.0.0.1/app").max_size(32).build()`.
    pub fn builder() -> crate::config::Builder {
        crate::config::Builder::new()
    }

    /// From a URL with the default settings.
    pub fn from_url(url: &str) -> Result<Pool, Error> {
        Pool::new(Config::from_url(url)?)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.s.config
    }

    /// A connection, waiting in arrival order at most `checkout_timeout`.
    ///
    /// When opening a connection fails, the waiting checkouts fail at once only if no
    /// connection is alive in the pool (the server is down, or refuses every attempt). While
    /// others are alive (the server's or the role's connection limit is reached, say), the
    /// checkouts that were waiting for the new connection give their place up instead, the
    /// pool's capacity shrinks to the connections that exist, and they wait in line for one
    /// that comes back, within their timeout. The capacity is given back one place at a time,
    /// after a backoff that doubles with each failure (50 ms to 5 s), so the server sees a
    /// trickle of attempts, not a storm.
    pub async fn get(&self) -> Result<Conn<'_>, Error> {
        self.checkout_with(
            || self.s.fair.try_acquire().map(Permit::Borrowed),
            || async { self.s.fair.acquire().await.map(Permit::Borrowed) },
            || self.s.inner.get(),
            || Back::Borrowed(&self.s),
        )
        .await
    }

    /// Like [`Pool::get`], with a connection that owns its share of the pool (a reference
    /// count more per checkout), so it can move into a spawned task.
    pub async fn get_owned(&self) -> Result<Conn<'static>, Error> {
        self.checkout_with(
            || {
                Arc::clone(&self.s.fair)
                    .try_acquire_owned()
                    .map(Permit::Owned)
            },
            || {
                let fair = Arc::clone(&self.s.fair);
                async move { fair.acquire_owned().await.map(Permit::Owned) }
            },
            || self.s.inner.get_owned(),
            || Back::Owned(Arc::clone(&self.s)),
        )
        .await
    }

    /// The checkout: a permit of the fair semaphore, then a live connection from bb8.
    async fn checkout_with<'c, T, W, WF, G, GF, B>(
        &self,
        try_permit: T,
        wait_permit: W,
        get: G,
        back: B,
    ) -> Result<Conn<'c>, Error>
    where
        T: Fn() -> Result<Permit<'c>, tokio::sync::TryAcquireError>,
        W: Fn() -> WF,
        WF: Future<Output = Result<Permit<'c>, tokio::sync::AcquireError>>,
        G: Fn() -> GF,
        GF: Future<Output = BbGot<'c>>,
        B: Fn() -> Back<'c>,
    {
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started + self.s.config.checkout_timeout);
        // Counted as waiting (`db_pool_pending_checkouts`) only once it has to wait: the fast
        // path touches no shared counter.
        let mut waiting = None;
        loop {
            // Fast path without a timer: a permit is free (the semaphore is fair, so this only
            // succeeds when nobody is queued).
            let permit = match try_permit() {
                Ok(permit) => permit,
                Err(_) => {
                    if waiting.is_none() {
                        waiting = Some(self.s.metrics.waiting());
                    }
                    match tokio::time::timeout_at(deadline, wait_permit()).await {
                        Ok(Ok(permit)) => permit,
                        // `close` closed the semaphore.
                        Ok(Err(_)) => return Err(Error::Closed),
                        Err(_) => return Err(self.timed_out(started)),
                    }
                }
            };
            match self
                .checkout(permit, &get, &back, &mut waiting, deadline, started)
                .await
            {
                Checkout::Got(conn) => {
                    self.s.metrics.checked_out(started.elapsed());
                    drop(waiting);
                    return Ok(conn);
                }
                Checkout::Failed(e) => return Err(e),
                // Our place was given up after a connect failure: in line again.
                Checkout::Requeue => {}
            }
        }
    }

    /// With a permit: a live connection from bb8, or why not.
    async fn checkout<'p, 'c, G, GF, B>(
        &'p self,
        permit: Permit<'c>,
        get: &G,
        back: &B,
        waiting: &mut Option<crate::metrics::Waiting<'p>>,
        deadline: tokio::time::Instant,
        started: Instant,
    ) -> Checkout<'c>
    where
        G: Fn() -> GF,
        GF: Future<Output = BbGot<'c>>,
        B: Fn() -> Back<'c>,
    {
        loop {
            // Connect errors published from here on concern this checkout. A plain load: the
            // watch subscription (two contended atomic operations) is only taken to wait.
            let generation = self.s.error_generation.load(Ordering::Acquire);
            let mut get = std::pin::pin!(get());
            // Fast path: with our permit, bb8 usually has an idle connection ready now.
            let first = std::future::poll_fn(|cx| Poll::Ready(get.as_mut().poll(cx))).await;
            let got = match first {
                Poll::Ready(got) => got,
                Poll::Pending => {
                    if waiting.is_none() {
                        *waiting = Some(self.s.metrics.waiting());
                    }
                    let mut errors = self.s.errors.subscribe();
                    errors.borrow_and_update();
                    // An error published between the load above and the subscription.
                    let mut pending_error = None;
                    if self.s.error_generation.load(Ordering::Acquire) != generation {
                        pending_error = errors.borrow().clone();
                    }
                    // Closed meanwhile: bb8 will open nothing for us.
                    if self.is_closed() {
                        return Checkout::Failed(Error::Closed);
                    }
                    // Waits on this same bb8 checkout (a new one could start another connect
                    // attempt) until it gives a connection, or a connect error decides.
                    loop {
                        if let Some(cause) = pending_error.take() {
                            match self.on_connect_error() {
                                Decision::KeepWaiting => {}
                                Decision::Fail => {
                                    return Checkout::Failed(Error::Connect(cause));
                                }
                                Decision::Requeue => return self.give_place_up(permit),
                            }
                        }
                        tokio::select! {
                        biased;
                        got = &mut get => break got,
                        changed = errors.changed() => {
                            if self.is_closed() {
                                return Checkout::Failed(Error::Closed);
                            }
                            if changed.is_ok() {
                                pending_error = errors.borrow().clone();
                            }
                        }
                        () = tokio::time::sleep_until(deadline) => {
                            return Checkout::Failed(self.timed_out(started));
                        }
                        }
                    }
                }
            };
            let mut conn = match got {
                Ok(conn) => conn,
                Err(bb8::RunError::User(ConnectError::Pg(cause))) => {
                    return match self.on_connect_error() {
                        Decision::Fail | Decision::KeepWaiting => {
                            Checkout::Failed(Error::Connect(cause))
                        }
                        Decision::Requeue => self.give_place_up(permit),
                    };
                }
                Err(bb8::RunError::User(ConnectError::Closed)) => {
                    return Checkout::Failed(Error::Closed);
                }
                Err(bb8::RunError::TimedOut) => return Checkout::Failed(self.timed_out(started)),
            };
            if conn.client.is_closed() {
                conn.broken = true; // dropped: bb8 discards it (and counts it as broken)
                continue;
            }
            let now = Instant::now();
            if conn.expires.is_some_and(|at| now >= at) {
                conn.broken = true;
                self.s.metrics.expired();
                continue;
            }
            // The idle test and the hook run within the checkout's deadline: a server that
            // stopped answering (a host gone without a word, a frozen network path) costs the
            // caller its timeout, not the kernel's retransmission limit.
            let mut verdict = Some(true);
            if now.saturating_duration_since(conn.last_used) >= self.s.config.test_idle_after {
                verdict = vet(deadline, conn.client.simple_query("")).await;
            }
            if let (Some(true), Some(hook)) = (verdict, &self.s.config.before_checkout) {
                verdict = vet(deadline, hook.call(&conn.client)).await;
            }
            match verdict {
                Some(true) => {}
                Some(false) => {
                    conn.broken = true;
                    continue;
                }
                None => {
                    // The test's or the hook's statement may still run on the server: stop
                    // it; the connection is not reusable.
                    conn.broken = true;
                    cancel(&conn.client);
                    return Checkout::Failed(self.timed_out(started));
                }
            }
            // `close` began while this checkout was testing the connection: do not hand it out.
            if self.is_closed() {
                conn.broken = true;
                return Checkout::Failed(Error::Closed);
            }
            return Checkout::Got(Conn {
                conn,
                _permit: permit,
                pool: back(),
            });
        }
    }

    /// Opening a connection failed while this checkout waited for one: what now. A
    /// connection that exists (in the pool or just opened) will come back: give the place up
    /// and queue for it. None exists but other attempts are still under way: wait for them.
    /// Nothing exists and nothing is being opened: nothing will come; fail with the server's
    /// reason.
    fn on_connect_error(&self) -> Decision {
        if self.s.live.load(Ordering::Acquire) > 0 {
            Decision::Requeue
        } else if self.s.connecting.load(Ordering::Acquire) > 0 {
            Decision::KeepWaiting
        } else {
            Decision::Fail
        }
    }

    /// Gives the permit up (the capacity shrinks to what the server accepts), restores it
    /// after a backoff, and requeues the checkout.
    fn give_place_up<'c>(&self, permit: Permit<'c>) -> Checkout<'c> {
        permit.forget();
        let failures = self.s.connect_failures.load(Ordering::Acquire).min(7);
        let backoff = Duration::from_millis(50 << failures).min(Duration::from_secs(5));
        let fair = Arc::clone(&self.s.fair);
        let restore = async move {
            tokio::time::sleep(backoff).await;
            fair.add_permits(1);
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(restore);
        }
        Checkout::Requeue
    }

    /// Closes the pool, for a graceful shutdown: checkouts from now on and those waiting fail
    /// with [`Error::Closed`], idle connections are closed at once, connections in use are
    /// closed when they come back, and no connection is opened any more (not even for
    /// `min_idle`). Returns when every connection is closed, so it waits for the ones in use:
    /// bound it with a timeout if a holder may never give its connection back. Calling it
    /// again waits the same way.
    pub async fn close(&self) {
        self.s.closed.store(true, Ordering::Release);
        self.s.fair.close();
        // Checkouts past the semaphore that wait on bb8 watch this channel: wake them.
        self.s.errors.send_modify(|_| ());
        loop {
            let returned = self.s.returned.notified();
            let mut returned = std::pin::pin!(returned);
            returned.as_mut().enable();
            // Idle connections: take each one and let it go marked broken. Nobody else takes
            // any now and none is put back, so this ends.
            while self.s.inner.state().idle_connections > 0 {
                match tokio::time::timeout(Duration::from_millis(100), self.s.inner.get()).await {
                    Ok(Ok(mut conn)) => conn.broken = true,
                    _ => break,
                }
            }
            if self.s.inner.state().connections == 0 {
                return;
            }
            // A connection in use comes back (signalled), or one that was being opened when
            // we closed lands idle (not signalled; hence the bound).
            let _ = tokio::time::timeout(Duration::from_millis(50), returned).await;
        }
    }

    /// Whether [`Pool::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.s.closed.load(Ordering::Acquire)
    }

    pub(crate) fn metrics(&self) -> &PoolMetrics {
        &self.s.metrics
    }

    fn timed_out(&self, started: Instant) -> Error {
        self.s.metrics.timeout();
        let state = self.s.inner.state();
        Error::Timeout {
            waited: started.elapsed(),
            open: state.connections,
            idle: state.idle_connections,
        }
    }

    /// Statistics now (also published as metrics).
    pub fn stats(&self) -> PoolStats {
        self.s.stats()
    }
}

impl Shared {
    fn stats(&self) -> PoolStats {
        let state = self.inner.state();
        let s = &state.statistics;
        let mut stats = PoolStats::default();
        stats.max_size = u64::from(self.config.max_size);
        stats.size = u64::from(state.connections);
        stats.idle = u64::from(state.idle_connections);
        stats.in_use = stats.size - stats.idle;
        stats.waiting = self.metrics.waiting_now();
        stats.acquired = s.get_direct + s.get_waited;
        stats.hits = s.get_direct + s.get_waited;
        stats.misses = s.connections_created;
        stats.discards = s.connections_closed_broken
            + s.connections_closed_invalid
            + s.connections_closed_max_lifetime
            + s.connections_closed_idle_timeout;
        stats.timeouts = self.metrics.timeouts_now();
        self.metrics.publish(&stats, s);
        stats
    }
}

impl veza_core::publish::Publish for Shared {
    fn publish(&self) {
        self.metrics.refresh();
        let _ = self.stats();
    }
}

impl Observe for Pool {
    type Snapshot = PoolStats;
    fn snapshot(&self) -> PoolStats {
        self.stats()
    }
}

impl HealthCheck for Pool {
    fn name(&self) -> &str {
        &self.s.config.name
    }

    /// `SELECT 1` on a pooled connection: unhealthy when the database cannot be reached,
    /// degraded when no connection is free in time.
    fn check(&self) -> BoxFuture<'_, Health> {
        Box::pin(async move {
            if self.is_closed() {
                return Health::unhealthy(Error::Closed.to_string());
            }
            match self.get().await {
                Ok(conn) => match conn.simple_query("SELECT 1").await {
                    Ok(_) => Health::Healthy,
                    Err(e) => Health::unhealthy(Error::from(e).to_string()),
                },
                Err(e @ Error::Timeout { .. }) => Health::degraded(e.to_string()),
                Err(e) => Health::unhealthy(e.to_string()),
            }
        })
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.s.config.name)
            .field("max_size", &self.s.config.max_size)
            .field("state", &self.s.inner.state())
            .finish_non_exhaustive()
    }
}

/// What a checkout does after a connect error.
enum Decision {
    KeepWaiting,
    Requeue,
    Fail,
}

/// What one pass through bb8 gave.
#[allow(
    clippy::large_enum_variant,
    reason = "`Got` is the common case; boxing it would allocate on every checkout"
)]
enum Checkout<'p> {
    Got(Conn<'p>),
    Failed(Error),
    Requeue,
}

/// A checked-out connection: derefs to a `tokio_postgres::Client`; goes back to the pool when
/// dropped (or is discarded if it broke).
pub struct Conn<'a> {
    conn: bb8::PooledConnection<'a, Manager>,
    _permit: Permit<'a>,
    /// The pool (settings, metric label), borrowed: no shared reference count to bump per
    /// checkout. Declared last, so it drops once the connection is back in bb8's hands.
    pool: Back<'a>,
}

/// What bb8's checkout gives.
type BbGot<'c> = Result<bb8::PooledConnection<'c, Manager>, bb8::RunError<ConnectError>>;

/// A connection's place in the fair semaphore: borrowed from the handle, or owned.
enum Permit<'a> {
    Borrowed(SemaphorePermit<'a>),
    Owned(tokio::sync::OwnedSemaphorePermit),
}

impl Permit<'_> {
    /// Gives the place up for good (the capacity shrinks by one).
    fn forget(self) {
        match self {
            Permit::Borrowed(p) => p.forget(),
            Permit::Owned(p) => p.forget(),
        }
    }
}

/// The pool a [`Conn`] came from, borrowed or shared; when dropped, wakes a [`Pool::close`]
/// in progress.
enum Back<'a> {
    Borrowed(&'a Shared),
    Owned(Arc<Shared>),
}

impl Back<'_> {
    fn get(&self) -> &Shared {
        match self {
            Back::Borrowed(s) => s,
            Back::Owned(s) => s,
        }
    }
}

impl Drop for Back<'_> {
    fn drop(&mut self) {
        let shared = self.get();
        if shared.is_closed() {
            shared.returned.notify_waiters();
        }
    }
}

impl Shared {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Counts (and logs, with `tracing`) a query that took the slow-query threshold or longer.
    fn slow_query(&self, statement: &'static str, took: Duration) {
        let Some(threshold) = self.config.slow_query_threshold else {
            return;
        };
        if took < threshold {
            return;
        }
        metrics::counter!(
            veza_core::catalog::db::SLOW_QUERIES.name,
            "pool" => self.pool_name.clone(),
            "statement" => statement
        )
        .increment(1);
        #[cfg(feature = "tracing")]
        tracing::warn!(
            target: "veza_dbpool::slow_query",
            pool = %self.pool_name,
            statement,
            duration_ms = took.as_secs_f64() * 1e3,
            threshold_ms = threshold.as_secs_f64() * 1e3,
            "slow query",
        );
    }
}

impl Conn<'_> {
    /// A prepared statement for `sql`, reused across calls on this connection (when the
    /// statement cache is on; behind PgBouncer in transaction mode, turn it off).
    pub async fn prepare_cached(&mut self, sql: &str) -> Result<tokio_postgres::Statement, Error> {
        if self.pool.get().config.statement_cache {
            if let Some(statement) = self.conn.statements.get(sql) {
                return Ok(statement.clone());
            }
        }
        let statement = self
            .conn
            .client
            .prepare(sql)
            .await
            .map_err(|e| self.failed(e))?;
        if self.pool.get().config.statement_cache {
            self.conn
                .statements
                .insert(sql.to_owned(), statement.clone());
        }
        Ok(statement)
    }

    /// Runs `sql` with typed parameters and returns its rows: through a prepared statement
    /// cached on the connection when [`Config::statement_cache`] is on, or as one unnamed
    /// statement when it is off (tokio-postgres' `query_typed`: one round trip, nothing left
    /// on the server), which is what a transaction-mode pooler such as PgBouncer needs.
    pub async fn query_cached(
        &mut self,
        sql: &str,
        params: &[(
            &(dyn tokio_postgres::types::ToSql + Sync),
            tokio_postgres::types::Type,
        )],
    ) -> Result<Vec<tokio_postgres::Row>, Error> {
        let result = if self.pool.get().config.statement_cache {
            let statement = self.prepare_cached(sql).await?;
            let values: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                params.iter().map(|(v, _)| *v).collect();
            self.conn.client.query(&statement, &values).await
        } else {
            self.conn.client.query_typed(sql, params).await
        };
        result.map_err(|e| self.failed(e))
    }

    /// Records `started`'s elapsed time under `statement` in `db_query_duration_seconds`, and
    /// a slow query past the pool's threshold (`db_slow_queries_total`, a `WARN` event with
    /// the `tracing` feature).
    pub(crate) fn record(&self, statement: &'static str, started: Instant) {
        let took = started.elapsed();
        let shared = self.pool.get();
        metrics::histogram!(
            veza_core::catalog::db::QUERY_DURATION.name,
            "pool" => shared.pool_name.clone(),
            "statement" => statement
        )
        .record(took);
        shared.slow_query(statement, took);
    }

    /// Runs a query future, records its duration in `db_query_duration_seconds` with this
    /// pool's name and `statement` as labels (keep `statement` a fixed name such as
    /// `"users.by_email"`: labels must stay bounded), and classifies its error. A connection
    /// that such an error closed is dropped when it goes back (`is_closed`).
    ///
    /// A query that takes [`Config::slow_query_threshold`] or longer (default 1 s) counts in
    /// `db_slow_queries_total`. With the `tracing` feature the query runs in a `db.query`
    /// span (fields `pool`, `statement`, `duration_ms`, `error`) and a slow one logs one
    /// `WARN` event, target `veza_dbpool::slow_query`.
    pub async fn timed<T>(
        &self,
        statement: &'static str,
        query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, Error> {
        let started = Instant::now();
        #[cfg(feature = "tracing")]
        let (result, span) = {
            use tracing::Instrument as _;
            let span = tracing::debug_span!(
                "db.query",
                pool = %self.pool.get().pool_name,
                statement,
                duration_ms = tracing::field::Empty,
                error = tracing::field::Empty,
            );
            (query.instrument(span.clone()).await, span)
        };
        #[cfg(not(feature = "tracing"))]
        let result = query.await;
        #[cfg(feature = "tracing")]
        {
            span.record("duration_ms", started.elapsed().as_secs_f64() * 1e3);
            if let Err(e) = &result {
                span.record("error", tracing::field::display(e));
            }
        }
        self.record(statement, started);
        result.map_err(Error::from)
    }

    /// Marks the connection broken: it is dropped instead of going back to the pool.
    pub(crate) fn failed_broken(&mut self) {
        self.conn.broken = true;
    }

    /// Wraps a driver error, marking the connection broken when the error says so.
    pub fn failed(&mut self, e: tokio_postgres::Error) -> Error {
        if crate::error::breaks(&e) {
            self.conn.broken = true;
        }
        Error::from(e)
    }

    /// Whether the pool keeps prepared statements per connection ([`Config::statement_cache`]).
    pub fn statement_cache_on(&self) -> bool {
        self.pool.get().config.statement_cache
    }

    /// Whether the session is inside a transaction, as its protocol bytes show (`false` when
    /// the session is not observed: TLS, Unix sockets).
    pub(crate) fn in_transaction(&self) -> bool {
        self.conn.wire.session() == Session::InTransaction
    }

    /// How long since this connection was last used, before this checkout.
    pub fn idle_for(&self) -> Duration {
        self.conn.last_used.elapsed()
    }
}

impl Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.conn.client
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.conn.client
    }
}

impl Drop for Conn<'_> {
    /// Back to the pool only in a known state: a connection whose server still works on
    /// something (a query whose future was dropped) has that query cancelled and is closed; one
    /// left inside a transaction is closed (the server rolls back as its backend exits). A
    /// connection whose last statements all completed, the common case, costs nothing here:
    /// three atomic loads.
    fn drop(&mut self) {
        let now = Instant::now();
        self.conn.last_used = now;
        self.conn.used = true;
        if self.pool.get().is_closed() {
            self.conn.broken = true; // closed by bb8 instead of kept idle
            return;
        }
        if self.conn.expires.is_some_and(|at| now >= at) {
            self.conn.broken = true;
            self.pool.get().metrics.expired();
            return;
        }
        match self.conn.wire.session() {
            Session::Idle | Session::Unobserved => {}
            Session::Busy => {
                self.conn.broken = true;
                self.pool.get().metrics.abandoned_query();
                cancel(&self.conn.client);
            }
            Session::InTransaction => {
                self.conn.broken = true;
                self.pool.get().metrics.abandoned_transaction();
            }
        }
    }
}

/// Runs a check on a connection until `deadline`: `Some(true)` it passed, `Some(false)` it
/// failed, `None` it ran past the deadline. Boxed: rare, and every checkout's future would
/// otherwise carry the check's.
fn vet<'a, T, E>(
    deadline: tokio::time::Instant,
    check: impl Future<Output = Result<T, E>> + Send + 'a,
) -> impl Future<Output = Option<bool>> + Send + 'a {
    let check = Box::pin(tokio::time::timeout_at(deadline, check));
    async move { check.await.ok().map(|r| r.is_ok()) }
}

/// Asks the server to stop what the connection is running (a cancel request on a connection
/// of its own), in the background; nothing waits for it.
fn cancel(client: &Client) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let token = client.cancel_token();
    runtime.spawn(async move {
        let plain = crate::observe::Plain {
            state: crate::wire::WireState::new(),
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), token.cancel_query(plain)).await;
    });
}

impl fmt::Debug for Conn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("closed", &self.conn.client.is_closed())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// The driver client.
    pub fn client(&self) -> &Client {
        &self.client
    }
}
