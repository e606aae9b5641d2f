//! The service: state, routes, handlers, the server loop and its graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_layer::Layer;
use veza_cache::{Cache, Served, TierConfig, TieredCache};
use veza_core::{Health, HealthCheck};
use veza_dbpool::Cursor;
use veza_mempool::{BufferPool, MemoryBudget, Pressure};
use veza_metrics::{Business, HttpMetricsLayer, Metrics, Routes};
use veza_workers::{SubmitError, WorkerPool};

use crate::config::{Config, Mode};
use crate::db::Db;
use crate::error::{ApiError, request_id};
use crate::input;
use crate::server::{self, Body, BodyBudget, ConnectionGuard};
use crate::upstream::{self, Avatars};

/// The route templates: the `route` label of the HTTP metrics (literal routes first).
pub const ROUTES: &[&str] = &[
    "/users/import",
    "/users/by-email/{email}",
    "/users/{id}/avatar",
    "/users/{id}",
    "/users",
    "/messages",
    "/healthz",
    "/readyz",
    "/metrics",
    "/debug/pprof/heap",
];

/// A user as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Key.
    pub id: i64,
    /// Unique.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Creation time, microseconds since the Unix epoch.
    pub created_at_us: i64,
}

impl User {
    fn from_row(row: &tokio_postgres::Row) -> User {
        let at: SystemTime = row.get("created_at");
        let us = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        User {
            id: row.get("id"),
            email: row.get("email"),
            name: row.get("name"),
            created_at_us: us,
        }
    }

    fn cursor(&self) -> Cursor {
        Cursor::new([self.created_at_us, self.id])
    }
}

const USER_COLUMNS: &str = "id, email, name, created_at";

/// Everything a handler needs.
pub struct State {
    config: Config,
    db: Arc<Db>,
    by_id: Option<UserCache<i64>>,
    by_email: Option<UserCache<String>>,
    workers: Hashing,
    /// Pooled buffers for bodies and JSON (none on the peers stack: fresh `Vec`s).
    buffers: Option<Arc<BufferPool>>,
    /// The memory budget imports are refused past (none on the peers stack).
    budget: Option<Arc<MemoryBudget>>,
    http: Upstream,
    upstream: String,
    business: Business,
    metrics: Exporter,
    checks: Vec<Arc<dyn HealthCheck>>,
    hash_cost: (u32, u32),
    body_budget: BodyBudget,
}

impl State {
    /// Whether the database pool was closed (by the shutdown).
    pub fn db_closed(&self) -> bool {
        self.db.is_closed()
    }

    /// Whether the service runs in naive mode.
    pub fn is_naive(&self) -> bool {
        self.config.mode == Mode::Naive
    }

    /// The stack it runs on.
    pub fn mode(&self) -> Mode {
        self.config.mode
    }
}

/// Where password hashing runs: veza-workers' bounded pool (a full queue answers 503), or
/// Tokio's blocking threads (`spawn_blocking`, the peers stack: unbounded).
enum Hashing {
    Pool(WorkerPool),
    Blocking(std::sync::atomic::AtomicU64),
}

impl Hashing {
    fn submitted(&self) -> u64 {
        match self {
            Hashing::Pool(p) => veza_core::Observe::snapshot(p).submitted,
            Hashing::Blocking(n) => n.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    fn is_closed(&self) -> bool {
        match self {
            Hashing::Pool(p) => p.is_closed(),
            Hashing::Blocking(_) => false,
        }
    }
}

/// The upstream client: veza-httpopt (pooled, with its RFC 9111 cache; or one connection per
/// request, naive), or reqwest (the peers stack: pooled, no cache).
enum Upstream {
    Veza(veza_httpopt::Client),
    Reqwest(reqwest::Client),
}

/// The metrics recorder: veza-metrics, or metrics-exporter-prometheus (the peers stack).
#[derive(Clone)]
enum Exporter {
    Veza(Metrics),
    Prometheus(metrics_exporter_prometheus::PrometheusHandle),
}

impl Exporter {
    fn render(&self) -> String {
        match self {
            Exporter::Veza(m) => m.render(),
            Exporter::Prometheus(h) => h.render(),
        }
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("mode", &self.config.mode)
            .finish_non_exhaustive()
    }
}

/// The process's recorder: installed once, shared by every app started in the process.
/// veza-metrics for the veza and naive stacks, metrics-exporter-prometheus for the peers stack
/// (with histogram buckets, as its documentation recommends for Prometheus, and its upkeep
/// task); one process holds one, so an app of the other kind is refused.
fn metrics(mode: Mode) -> Result<Exporter> {
    static METRICS: Mutex<Option<Exporter>> = Mutex::new(None);
    let mut slot = METRICS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let peers = mode == Mode::Peers;
    if let Some(m) = &*slot {
        if matches!(m, Exporter::Prometheus(_)) != peers {
            anyhow::bail!(
                "this process already installed the other stack's metrics recorder (one per process)"
            );
        }
        return Ok(m.clone());
    }
    let m = if peers {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets(veza_metrics::DEFAULT_BUCKETS)?
            .install_recorder()?;
        // What `PrometheusBuilder::install` would run on a runtime, on a thread of its own so
        // it outlives any one runtime.
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            })?;
        // Handles made before the install (the HTTP layer's) are made again.
        veza_core::publish::recorder_installed();
        Exporter::Prometheus(handle)
    } else {
        Exporter::Veza(Metrics::builder().install()?)
    };
    *slot = Some(m.clone());
    Ok(m)
}

/// A running service.
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state (tests look at caches and pools).
    pub state: Arc<State>,
    /// The avatar upstream it started, if it started one.
    pub avatars: Option<Avatars>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets requests in flight finish and queued jobs run, within the
    /// configured deadline, then closes the pools. Returns whether everything drained in time.
    pub async fn shutdown(self) -> bool {
        let _ = self.stop.send(true);
        let deadline = Duration::from_secs(self.state.config.shutdown_timeout_secs);
        let started = Instant::now();
        let drained = tokio::time::timeout(deadline, self.server).await.is_ok();
        let left = deadline.saturating_sub(started.elapsed());
        let state = Arc::clone(&self.state);
        let unstarted = tokio::task::spawn_blocking(move || match &state.workers {
            Hashing::Pool(pool) => pool.shutdown_timeout(left).len(),
            // Blocking tasks run to the end; the runtime waits for them when it shuts down.
            Hashing::Blocking(_) => 0,
        })
        .await
        .unwrap_or(0);
        // Database connections close now rather than when the process exits; a connection
        // still held by a request that missed the deadline is not waited for past it.
        let left = deadline.saturating_sub(started.elapsed());
        let closed = tokio::time::timeout(left, self.state.db.close())
            .await
            .is_ok();
        drained && unstarted == 0 && closed
    }

    /// Jobs accepted by the password-hashing worker pool so far (one per sign-up that reached
    /// hashing).
    pub fn hash_jobs_submitted(&self) -> u64 {
        self.state.workers.submitted()
    }

    /// Statistics of the user caches (by id, by email); zero in naive and peers modes.
    pub fn state_caches(&self) -> (veza_core::CacheStats, veza_core::CacheStats) {
        use veza_core::Observe;
        let by_id = self
            .state
            .by_id
            .as_ref()
            .and_then(|c| c.first_tier().map(Observe::snapshot))
            .unwrap_or_default();
        let by_email = self
            .state
            .by_email
            .as_ref()
            .and_then(|c| c.first_tier().map(Observe::snapshot))
            .unwrap_or_default();
        (by_id, by_email)
    }

    /// Runs until SIGTERM or Ctrl-C, then shuts down.
    pub async fn until_signal(self) -> bool {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        self.shutdown().await
    }
}

/// Starts the service: connects, migrates, starts the upstream if none is configured, binds.
pub async fn start(config: Config) -> Result<Running> {
    config.check()?;
    let mode = config.mode;
    let metrics = metrics(mode)?;
    let db =
        Arc::new(Db::open(&config.database_url, &config.schema, config.pool_size, mode).await?);
    let (avatars, upstream) = match &config.upstream_url {
        Some(url) => (None, url.trim_end_matches('/').to_owned()),
        None => {
            let a = upstream::start("127.0.0.1:0".parse()?).await?;
            let url = format!("http://{}", a.addr);
            (Some(a), url)
        }
    };
    let ttl = Duration::from_secs(config.cache_ttl_secs);
    let (by_id, by_email) = match mode {
        Mode::Naive => (None, None),
        // moka's async cache, bounded and with the same time to live; its `try_get_with`
        // gives the single flight.
        Mode::Peers => {
            fn moka<K: UserKey>(entries: u64, ttl: Duration) -> UserCache<K> {
                UserCache::Moka(
                    moka::future::Cache::builder()
                        .max_capacity(entries)
                        .time_to_live(ttl)
                        .build(),
                )
            }
            (
                Some(moka(config.cache_entries, ttl)),
                Some(moka(config.cache_entries, ttl)),
            )
        }
        Mode::Veza => {
            let by_id = Cache::builder()
                .name("users_by_id")
                .max_entries(config.cache_entries)
                .time_to_live(ttl)
                .build()?;
            let by_email = Cache::builder()
                .name("users_by_email")
                .max_entries(config.cache_entries)
                .time_to_live(ttl)
                .build()?;
            match &config.redis_url {
                // One namespace per cache and schema: instances sharing a database share a tier.
                Some(url) => {
                    let tier = |name: &str| {
                        TierConfig::new(url.as_str())
                            .namespace(format!("veza-api:{}:{name}", config.schema))
                            .redis_ttl(ttl)
                    };
                    (
                        Some(UserCache::Tiered(
                            TieredCache::new(by_id, tier("by_id")).await?,
                        )),
                        Some(UserCache::Tiered(
                            TieredCache::new(by_email, tier("by_email")).await?,
                        )),
                    )
                }
                None => (
                    Some(UserCache::Local(by_id)),
                    Some(UserCache::Local(by_email)),
                ),
            }
        }
    };
    let workers = if mode == Mode::Peers {
        Hashing::Blocking(std::sync::atomic::AtomicU64::new(0))
    } else {
        Hashing::Pool(
            WorkerPool::builder()
                .name("passwords")
                .workers(config.workers)
                .capacity(config.worker_queue)
                .build()?,
        )
    };
    let http = match mode {
        // A connection per request, nothing kept: the baseline.
        Mode::Naive => Upstream::Veza(
            veza_httpopt::Client::builder()
                .cache(veza_httpopt::CacheMode::Off)
                .pool_max_idle_per_host(0)
                .build()?,
        ),
        Mode::Veza => Upstream::Veza(
            veza_httpopt::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
        ),
        // reqwest as its documentation sets it up: one client, pooled, a total timeout.
        Mode::Peers => Upstream::Reqwest(
            reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
        ),
    };
    let (buffers, budget, monitor) = if mode == Mode::Peers {
        (None, None, None)
    } else {
        let buffers = Arc::new(BufferPool::new());
        let budget = Arc::new(MemoryBudget::new(config.memory_limit_bytes)?);
        budget.attach(&buffers);
        let monitor = budget.start(Duration::from_secs(1));
        (Some(buffers), Some(budget), Some(monitor))
    };

    let mut checks: Vec<Arc<dyn HealthCheck>> = Vec::new();
    checks.push(Arc::new(crate::db::DbCheck(Arc::clone(&db))));
    let health_url = format!("{upstream}/avatars/health");
    match &http {
        Upstream::Veza(client) => checks.push(Arc::new(client.health_check(
            "avatars",
            health_url,
            Duration::from_secs(2),
        )?)),
        Upstream::Reqwest(client) => checks.push(Arc::new(ReqwestCheck {
            client: client.clone(),
            url: health_url,
        })),
    }
    // A tier whose Redis is unreachable still serves (degraded, not unready).
    if let Some(UserCache::Tiered(c)) = &by_id {
        checks.push(Arc::new(c.clone()));
    }
    let hash_cost = if cfg!(debug_assertions) {
        (1024, 1)
    } else {
        (config_hash_memory(), 2)
    };
    let state = Arc::new(State {
        config: config.clone(),
        db,
        by_id,
        by_email,
        workers,
        buffers,
        budget,
        http,
        upstream,
        business: Business::new(),
        metrics,
        checks,
        hash_cost,
        body_budget: BodyBudget::new(config.body_budget_bytes),
    });

    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn(serve(listener, Arc::clone(&state), stopped, monitor));
    tokio::spawn(active_users(Arc::clone(&state)));
    Ok(Running {
        addr,
        state,
        avatars,
        stop,
        server,
    })
}

/// Argon2 memory cost in KiB: OWASP's 19 MiB unless `VEZA_API_HASH_KIB` says otherwise (the
/// load test lowers it so sign-ups do not dominate the run).
fn config_hash_memory() -> u32 {
    std::env::var("VEZA_API_HASH_KIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(19 * 1024)
}

/// Sets the active-users gauge every 10 s: distinct authors of the last 5 minutes.
async fn active_users(state: Arc<State>) {
    let weak = Arc::downgrade(&state);
    drop(state);
    loop {
        let Some(state) = weak.upgrade() else { return };
        if let Ok(mut c) = state.db.get().await {
            let sql = "SELECT count(DISTINCT user_id) FROM messages WHERE created_at > now() - interval '5 minutes'";
            if let Ok(Some(row)) = c.query_opt(sql, &[]).await {
                state.business.active_users.set(row.get::<_, i64>(0) as f64);
            }
        }
        drop(state);
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

/// The tower service the metrics layer wraps.
#[derive(Clone)]
struct Api(Arc<State>);

impl tower_service::Service<Request<Incoming>> for Api {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let state = Arc::clone(&self.0);
        Box::pin(async move {
            let answer = server::catch_panic(route(&state, req), || {
                Err(ApiError::hidden(
                    500,
                    "internal error",
                    "a handler panicked",
                ))
            });
            Ok(match answer.await {
                Ok(r) => r,
                Err(e) => error_response(&state, &e),
            })
        })
    }
}

/// The answer to a failed request. A failure whose details are hidden from the client gets a
/// request id, in the body and in `x-request-id`, and its details are logged under that id.
fn error_response(state: &State, e: &ApiError) -> Response<Full<Bytes>> {
    let id = e.is_hidden().then(request_id);
    if let Some(id) = &id {
        log_failure(id, e);
    }
    let body = match &id {
        Some(id) => serde_json::json!({ "error": e.message, "request_id": id }),
        None => serde_json::json!({ "error": e.message }),
    };
    let mut r = json(state, e.status, &body);
    let h = r.headers_mut();
    if let Some(id) = id.and_then(|id| http::HeaderValue::from_str(&id).ok()) {
        h.insert("x-request-id", id);
    }
    if let Some(secs) = e.retry_after_secs() {
        h.insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
    }
    if e.closes() {
        // The body was left unread: the connection cannot carry another request.
        h.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    r
}

/// The operator's log: standard error, one line per hidden failure.
#[allow(
    clippy::print_stderr,
    reason = "the service's log is its standard error"
)]
fn log_failure(id: &str, e: &ApiError) {
    eprintln!("veza-api: request {id}: {} {}", e.status, e.detail());
}

async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    mut stopped: watch::Receiver<bool>,
    monitor: Option<veza_mempool::Monitor>,
) {
    let service =
        HttpMetricsLayer::new(Routes::new(ROUTES.iter().copied())).layer(Api(Arc::clone(&state)));
    let graceful = GracefulShutdown::new();
    let limits = state.config.server.clone();
    let slots = limits.connection_slots();
    loop {
        // A slot first: at the cap, new connections wait in the listen backlog.
        let slot = tokio::select! {
            slot = slots.acquire() => slot,
            _ = stopped.changed() => break,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of descriptors and the like: back off instead of spinning.
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
            _ = stopped.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        // hyper's header read timeout closes slow and idle clients (slowloris).
        let conn = limits.http1().serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(service.clone()),
        );
        let conn = graceful.watch(conn);
        let guard = ConnectionGuard::new(state.business.concurrent_connections.clone(), slot);
        tokio::spawn(async move {
            let _guard = guard;
            let _ = conn.await;
        });
    }
    drop(listener);
    // Idle keep-alive connections close now; requests in flight finish first.
    graceful.shutdown().await;
    drop(monitor);
}

/// Each handler's future is boxed on its own: the route future (moved into the connection's
/// box on every request) is then a few words instead of the largest handler's state machine,
/// which a profile under load showed as 10% of the service's CPU in `memcpy`.
async fn route(
    state: &Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (req.method().clone(), segments.as_slice()) {
        (Method::GET, ["healthz"]) => Ok(text(StatusCode::OK, "ok\n")),
        (Method::GET, ["readyz"]) => Ok(Box::pin(ready(state)).await),
        (Method::GET, ["metrics"]) => Ok(text(StatusCode::OK, state.metrics.render())),
        (Method::GET, ["debug", "pprof", "heap"]) => Ok(Box::pin(heap_profile()).await),
        (Method::POST, ["users"]) => Box::pin(sign_up(state, req)).await,
        (Method::GET, ["users"]) => Box::pin(list_users(state, req.uri().query())).await,
        (Method::POST, ["users", "import"]) => Box::pin(import(state, req)).await,
        (Method::GET, ["users", "by-email", email]) => {
            let email = input::email(&percent_decode(email)?)?;
            let (user, served) = Box::pin(user_by_email(state, &email)).await?;
            let user = user.ok_or_else(|| ApiError::new(404, "no such user"))?;
            Ok(with_tier(json(state, 200, &user), served))
        }
        (Method::GET, ["users", id]) => {
            let (user, served) = Box::pin(user_by_id(state, parse_id(id)?)).await?;
            let user = user.ok_or_else(|| ApiError::new(404, "no such user"))?;
            Ok(with_tier(json(state, 200, &user), served))
        }
        (Method::PUT, ["users", id]) => Box::pin(update_user(state, parse_id(id)?, req)).await,
        (Method::GET, ["users", id, "avatar"]) => Box::pin(avatar(state, parse_id(id)?)).await,
        (Method::POST, ["messages"]) => Box::pin(post_message(state, req)).await,
        (Method::GET, ["messages"]) => Box::pin(list_messages(state, req.uri().query())).await,
        (_, ["healthz" | "readyz" | "metrics" | "users" | "messages", ..]) => {
            Err(ApiError::new(405, "method not allowed"))
        }
        _ => Err(ApiError::new(404, "no such route")),
    }
}

fn parse_id(s: &str) -> Result<i64, ApiError> {
    s.parse()
        .map_err(|_| ApiError::new(400, format!("`{s}` is not a user id")))
}

/// `%XX` decoding of a path segment.
fn percent_decode(s: &str) -> Result<String, ApiError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(hex.ok_or_else(|| ApiError::new(400, "bad percent-encoding"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::new(400, "path is not UTF-8"))
}

fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|kv| {
        kv.split_once('=')
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v)
    })
}

fn limit(query: Option<&str>) -> Result<i64, ApiError> {
    match query_param(query, "limit") {
        None => Ok(20),
        Some(v) => match v.parse::<i64>() {
            Ok(n @ 1..=100) => Ok(n),
            _ => Err(ApiError::new(400, "limit must be 1..=100")),
        },
    }
}

/// A JSON response, serialised into a pooled buffer (veza-mempool) and copied out at its
/// exact size.
fn json(state: &State, status: u16, value: &impl Serialize) -> Response<Full<Bytes>> {
    let bytes = match &state.buffers {
        Some(buffers) => {
            let mut buf = buffers.get(1024);
            buf.clear();
            serde_json::to_writer(&mut *buf, value).map(|()| {
                buf.push(b'\n');
                Bytes::copy_from_slice(&buf)
            })
        }
        // The peers stack: a fresh `Vec`, handed over without a copy.
        None => serde_json::to_vec(value).map(|mut v| {
            v.push(b'\n');
            Bytes::from(v)
        }),
    };
    let Ok(bytes) = bytes else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the response\n",
        );
    };
    let mut r = Response::new(Full::new(bytes));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// The heap profile (jemalloc's sampling profiler, pprof format), when the process started
/// with it on (`_RJEM_MALLOC_CONF=prof:true,prof_active:true`); 503 saying how otherwise.
async fn heap_profile() -> Response<Full<Bytes>> {
    match veza_metrics::heap::dump_pprof().await {
        Ok(pprof) => {
            let mut r = Response::new(Full::new(Bytes::from(pprof)));
            r.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static("application/octet-stream"),
            );
            r
        }
        Err(e @ veza_metrics::heap::Error::Dump(_)) => {
            text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))
        }
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Reads a request body under the service's limits (size, time, the process-wide budget);
/// see [`server::read_body`].
async fn body(state: &State, req: Request<Incoming>) -> Result<Body, ApiError> {
    server::read_body(
        req,
        state.config.max_body_bytes,
        &state.config.server,
        &state.body_budget,
        state.buffers.as_ref(),
    )
    .await
}

/// A JSON body, after its `Content-Type` is checked (415 for anything but JSON).
async fn json_body<T: for<'de> Deserialize<'de>>(
    state: &State,
    req: Request<Incoming>,
) -> Result<T, ApiError> {
    input::json_body(req.headers())?;
    parse(&body(state, req).await?)
}

fn parse<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::new(400, format!("bad json: {e}")))
}

async fn load_user(
    state: &State,
    sql: &str,
    param: &(dyn tokio_postgres::types::ToSql + Sync),
) -> Result<Option<User>, ApiError> {
    let mut c = state.db.get().await?;
    Ok(c.query_opt(sql, &[param])
        .await?
        .as_ref()
        .map(User::from_row))
}

/// Cache-aside (veza-cache single flight: concurrent misses on one key query once; unknown
/// users are not cached), or straight to the database in naive mode.
async fn cached_user<K>(
    state: &State,
    cache: Option<&UserCache<K>>,
    key: K,
    sql: &str,
) -> Result<(Option<User>, Option<Served>), ApiError>
where
    K: UserKey + tokio_postgres::types::ToSql,
{
    let Some(cache) = cache else {
        return Ok((load_user(state, sql, &key).await?, None));
    };
    let load = async {
        load_user(state, sql, &key)
            .await
            .map_err(|e| veza_core::BoxError::from(e.to_string()))
    };
    // Each cache's future is boxed on its own: the lookup a handler holds is not sized by
    // another stack's cache.
    match cache {
        UserCache::Local(cache) => Box::pin(cache.try_get_or_load_opt_async(&key, load))
            .await
            .map(|user| (user, None)),
        UserCache::Tiered(cache) => Box::pin(cache.get_or_load_opt_served(&key, load))
            .await
            .map(|(user, served)| (user, Some(served))),
        // moka has no optional load: "no such user" travels as an error and comes back as
        // `None`, so unknown users are not cached either.
        UserCache::Moka(cache) => {
            let loaded = Box::pin(cache.try_get_with(key.clone(), async {
                match load.await {
                    Ok(Some(user)) => Ok(user),
                    Ok(None) => Err(None),
                    Err(e) => Err(Some(e.to_string())),
                }
            }))
            .await;
            match loaded {
                Ok(user) => Ok((Some(user), None)),
                Err(e) => match &*e {
                    None => Ok((None, None)),
                    Some(why) => Err(Arc::from(veza_core::BoxError::from(why.clone()))),
                },
            }
        }
    }
    .map_err(|e| {
        ApiError::hidden(503, "a dependency is unavailable, retry", e.to_string()).retry_after(1)
    })
}

async fn user_by_id(state: &State, id: i64) -> Result<(Option<User>, Option<Served>), ApiError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    cached_user(state, state.by_id.as_ref(), id, &sql).await
}

/// The guide's lookup by indexed email, cached.
async fn user_by_email(
    state: &State,
    email: &str,
) -> Result<(Option<User>, Option<Served>), ApiError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
    cached_user(state, state.by_email.as_ref(), email.to_owned(), &sql).await
}

/// After an update: an in-process cache drops the user (the next read loads it); a tiered
/// cache stores the new row in both tiers, so the other instances (told to drop their copy)
/// read it from Redis instead of the database.
async fn after_update(state: &State, user: &User) {
    if let Some(c) = &state.by_id {
        c.updated(user.id, user).await;
    }
    if let Some(c) = &state.by_email {
        c.updated(user.email.clone(), user).await;
    }
}

/// With a Redis tier, `x-cache-tier` says which tier answered: `first`, `redis`, `loaded`
/// (the database) or `joined` (another request's load).
fn with_tier(mut response: Response<Full<Bytes>>, served: Option<Served>) -> Response<Full<Bytes>> {
    if let Some(served) = served {
        response.headers_mut().insert(
            "x-cache-tier",
            http::HeaderValue::from_static(served.as_str()),
        );
    }
    response
}

/// A user cache: in process only, or in process over a Redis tier shared by every instance
/// (`redis_url`), whose invalidations reach the other instances.
enum UserCache<K> {
    Local(Cache<K, User>),
    Tiered(TieredCache<K, User>),
    /// The peers stack.
    Moka(moka::future::Cache<K, User>),
}

/// What a user cache can be keyed by (the tiered cache encodes keys for Redis).
trait UserKey:
    std::hash::Hash
    + Eq
    + Clone
    + Send
    + Sync
    + serde::Serialize
    + serde::de::DeserializeOwned
    + 'static
{
}

impl<K> UserKey for K where
    K: std::hash::Hash
        + Eq
        + Clone
        + Send
        + Sync
        + serde::Serialize
        + serde::de::DeserializeOwned
        + 'static
{
}

impl<K: UserKey> UserCache<K> {
    fn first_tier(&self) -> Option<&Cache<K, User>> {
        match self {
            UserCache::Local(c) => Some(c),
            UserCache::Tiered(c) => Some(c.first_tier()),
            UserCache::Moka(_) => None,
        }
    }

    async fn updated(&self, key: K, user: &User) {
        match self {
            UserCache::Local(c) => {
                c.invalidate(&key);
            }
            UserCache::Tiered(c) => c.insert(key, user.clone()).await,
            UserCache::Moka(c) => c.invalidate(&key).await,
        }
    }
}

#[derive(Deserialize)]
struct SignUp {
    email: String,
    name: String,
    password: String,
}

/// The email in canonical form, once both fields are checked.
fn check_user_fields(email: &str, name: &str) -> Result<String, ApiError> {
    input::text("name", name, 200)?;
    input::email(email)
}

/// Sign-up: the password is hashed on the worker pool (argon2 is CPU work that must not run on
/// the async threads), then user and credentials are inserted in one statement.
async fn sign_up(
    state: &Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let form: SignUp = json_body(state, req).await?;
    let email = check_user_fields(&form.email, &form.name)?;
    if form.password.len() < 8 {
        return Err(ApiError::new(400, "password must be at least 8 bytes"));
    }
    let (m_kib, t) = state.hash_cost;
    let password = form.password;
    let job = move || -> Result<String, String> {
        use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
        let params = argon2::Params::new(m_kib, t, 1, None).map_err(|e| e.to_string())?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt = SaltString::generate(&mut OsRng);
        argon
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    };
    let hash = match &state.workers {
        Hashing::Pool(pool) => {
            let handle = match pool.try_submit(job) {
                Ok(h) => h,
                Err(SubmitError::Full(_)) => {
                    return Err(ApiError::new(503, "too many sign-ups in progress, retry"));
                }
                Err(_) => return Err(ApiError::new(503, "shutting down")),
            };
            handle
                .await
                .map_err(|e| ApiError::new(500, e.to_string()))?
        }
        Hashing::Blocking(submitted) => {
            submitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::task::spawn_blocking(job)
                .await
                .map_err(|e| ApiError::new(500, e.to_string()))?
        }
    }
    .map_err(|e| ApiError::new(500, format!("hashing: {e}")))?;
    let sql = format!(
        "WITH u AS (INSERT INTO users (email, name) VALUES ($1, $2) RETURNING {USER_COLUMNS}), \
         c AS (INSERT INTO credentials (user_id, password_hash) SELECT id, $3 FROM u) SELECT * FROM u"
    );
    let mut c = state.db.get().await?;
    let row = c.query_opt(&sql, &[&email, &form.name, &hash]).await?;
    let user = row
        .as_ref()
        .map(User::from_row)
        .ok_or_else(|| ApiError::new(500, "insert returned nothing"))?;
    Ok(json(state, 201, &user))
}

#[derive(Deserialize)]
struct Rename {
    name: String,
}

async fn update_user(
    state: &Arc<State>,
    id: i64,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let form: Rename = json_body(state, req).await?;
    input::text("name", &form.name, 200)?;
    let sql = format!("UPDATE users SET name = $2 WHERE id = $1 RETURNING {USER_COLUMNS}");
    let mut c = state.db.get().await?;
    let row = c.query_opt(&sql, &[&id, &form.name]).await?;
    let user = row
        .as_ref()
        .map(User::from_row)
        .ok_or_else(|| ApiError::new(404, "no such user"))?;
    after_update(state, &user).await;
    Ok(json(state, 200, &user))
}

#[derive(Serialize)]
struct Page<T> {
    items: Vec<T>,
    next: Option<String>,
}

/// Newest first, by keyset cursor (veza-dbpool's checksummed `Cursor`).
async fn list_users(
    state: &Arc<State>,
    query: Option<&str>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let limit = limit(query)?;
    let mut c = state.db.get().await?;
    let rows = match query_param(query, "cursor") {
        None => {
            let sql = format!(
                "SELECT {USER_COLUMNS} FROM users ORDER BY created_at DESC, id DESC LIMIT $1"
            );
            c.query(&sql, &[&limit]).await?
        }
        Some(text) => {
            let (at, id): (SystemTime, i64) =
                Cursor::decode_key(text).map_err(|e| ApiError::new(400, e.to_string()))?;
            let sql = format!(
                "SELECT {USER_COLUMNS} FROM users WHERE (created_at, id) < ($1, $2) \
                 ORDER BY created_at DESC, id DESC LIMIT $3"
            );
            c.query(&sql, &[&at, &id, &limit]).await?
        }
    };
    let items: Vec<User> = rows.iter().map(User::from_row).collect();
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|u| u.cursor().encode()))
        .flatten();
    Ok(json(state, 200, &Page { items, next }))
}

#[derive(Deserialize)]
struct Import {
    email: String,
    name: String,
}

/// Batch import: one JSON object per line, inserted with one binary COPY (all or nothing).
/// Refused with 503 while the memory budget is at its critical level.
async fn import(
    state: &Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    if state
        .budget
        .as_ref()
        .is_some_and(|b| b.pressure() == Pressure::Critical)
    {
        return Err(ApiError::new(503, "memory budget exhausted, retry later"));
    }
    input::ndjson_body(req.headers())?;
    let bytes = body(state, req).await?;
    let mut users = Vec::new();
    for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let u: Import = serde_json::from_slice(line)
            .map_err(|e| ApiError::new(400, format!("line {}: {e}", n + 1)))?;
        let email = check_user_fields(&u.email, &u.name)
            .map_err(|e| ApiError::new(400, format!("line {}: {}", n + 1, e.message)))?;
        users.push((email, u.name));
    }
    let mut c = state.db.get().await?;
    let inserted = c.insert_users(&users).await?;
    Ok(json(
        state,
        200,
        &serde_json::json!({ "inserted": inserted }),
    ))
}

#[derive(Deserialize)]
struct NewMessage {
    user_id: i64,
    body: String,
}

#[derive(Serialize)]
struct Message {
    id: i64,
    user_id: i64,
    body: String,
}

async fn post_message(
    state: &Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let m: NewMessage = json_body(state, req).await?;
    input::text("body", &m.body, 4096)?;
    let mut c = state.db.get().await?;
    let row = c
        .query_opt(
            "INSERT INTO messages (user_id, body) VALUES ($1, $2) RETURNING id",
            &[&m.user_id, &m.body],
        )
        .await?
        .ok_or_else(|| ApiError::new(500, "insert returned nothing"))?;
    state.business.messages.increment(1);
    Ok(json(
        state,
        201,
        &Message {
            id: row.get(0),
            user_id: m.user_id,
            body: m.body,
        },
    ))
}

async fn list_messages(
    state: &Arc<State>,
    query: Option<&str>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let user_id = parse_id(
        query_param(query, "user_id").ok_or_else(|| ApiError::new(400, "user_id is required"))?,
    )?;
    let before = match query_param(query, "before") {
        Some(v) => v
            .parse::<i64>()
            .map_err(|_| ApiError::new(400, "before must be a message id"))?,
        None => i64::MAX,
    };
    let limit = limit(query)?;
    let mut c = state.db.get().await?;
    let rows = c
        .query(
            "SELECT id, user_id, body FROM messages WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            &[&user_id, &before, &limit],
        )
        .await?;
    let items: Vec<Message> = rows
        .iter()
        .map(|r| Message {
            id: r.get(0),
            user_id: r.get(1),
            body: r.get(2),
        })
        .collect();
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|m| m.id.to_string()))
        .flatten();
    Ok(json(state, 200, &Page { items, next }))
}

/// The user's avatar from the upstream, through veza-httpopt (its cache honours the
/// upstream's `max-age` and `ETag`). `x-cache` says where it came from.
async fn avatar(state: &Arc<State>, id: i64) -> Result<Response<Full<Bytes>>, ApiError> {
    let url = format!("{}/avatars/{id}", state.upstream);
    let (status, content_type, from_cache, body) = match &state.http {
        Upstream::Veza(client) => {
            let r = client.get(url).send().await?;
            let content_type = r.headers().get("content-type").cloned();
            (
                r.status(),
                content_type,
                r.cache_status().from_cache(),
                r.into_body(),
            )
        }
        Upstream::Reqwest(client) => {
            let r = client.get(url).send().await?;
            let content_type = r.headers().get("content-type").cloned();
            (r.status(), content_type, false, r.bytes().await?)
        }
    };
    if !status.is_success() {
        return Err(ApiError::new(502, format!("upstream answered {status}")));
    }
    let mut resp = Response::new(Full::new(body));
    if let Some(ct) = content_type {
        resp.headers_mut().insert("content-type", ct);
    }
    resp.headers_mut().insert(
        "x-cache",
        http::HeaderValue::from_static(if from_cache { "hit" } else { "miss" }),
    );
    Ok(resp)
}

#[derive(Serialize)]
struct Component {
    name: String,
    status: &'static str,
    reason: Option<String>,
}

/// Readiness: every component's `HealthCheck`, combined.
async fn ready(state: &Arc<State>) -> Response<Full<Bytes>> {
    let mut components = Vec::new();
    let mut all = Vec::new();
    for check in &state.checks {
        let h = tokio::time::timeout(Duration::from_secs(3), check.check())
            .await
            .unwrap_or_else(|_| Health::unhealthy("check timed out"));
        components.push(Component {
            name: check.name().to_owned(),
            status: h.as_str(),
            reason: h.reason().map(str::to_owned),
        });
        all.push(h);
    }
    let workers = if state.workers.is_closed() {
        Health::unhealthy("worker pool closed")
    } else {
        Health::Healthy
    };
    components.push(Component {
        name: "workers".into(),
        status: workers.as_str(),
        reason: workers.reason().map(str::to_owned),
    });
    all.push(workers);
    let overall = Health::combine(all);
    let status = if overall.is_ready() { 200 } else { 503 };
    json(
        state,
        status,
        &serde_json::json!({ "status": overall.as_str(), "components": components }),
    )
}

/// The upstream's readiness on the peers stack: a GET through the reqwest client, healthy on
/// any answer below 500 within two seconds.
struct ReqwestCheck {
    client: reqwest::Client,
    url: String,
}

impl HealthCheck for ReqwestCheck {
    fn name(&self) -> &str {
        "avatars"
    }

    fn check(&self) -> veza_core::BoxFuture<'_, Health> {
        Box::pin(async move {
            let sent = self
                .client
                .get(&self.url)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            match sent {
                Ok(r) if r.status().as_u16() < 500 => Health::Healthy,
                Ok(r) => Health::unhealthy(format!("answered {}", r.status())),
                Err(e) => Health::unhealthy(e.to_string()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_parse_what_clients_send() {
        assert_eq!(
            percent_decode("ada%40example.com").unwrap(),
            "ada@example.com"
        );
        assert!(percent_decode("bad%4").is_err());
        assert_eq!(query_param(Some("a=1&limit=5"), "limit"), Some("5"));
        assert_eq!(limit(Some("limit=500")).unwrap_err().status, 400);
        assert_eq!(limit(None).unwrap(), 20);
        assert!(parse_id("12x").is_err());
    }
}
