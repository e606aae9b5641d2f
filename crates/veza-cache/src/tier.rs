//! [`TieredCache`]: a first tier in process ([`Cache`]) over a second tier in Redis shared by
//! every instance of a service, with invalidations broadcast to the other instances' first
//! tiers (feature `redis`).
//!
//! - Reads: first tier, then Redis (`GET` and `PTTL` in one round trip), then the loader, with
//!   one load per key per instance. A value found in Redis fills the first tier for no longer
//!   than Redis keeps it, so a first-tier entry never outlives the entry it came from.
//! - Writes and invalidations go to Redis and are published on the namespace's channel; every
//!   other instance drops the key from its first tier. A message carries the sender's random
//!   instance id, so an instance never acts on its own echo.
//! - Faults: every Redis call is bounded by a timeout; after a run of failures a breaker
//!   stops calling Redis for a cool-down, so a dead Redis costs a clock read per request.
//!   Reads and loads keep working from the first tier and the loader. While the invalidation
//!   channel is down, first-tier entries are kept at most `max_stale` (older ones are dropped
//!   when the bound passes, new ones live no longer than it); when the channel comes back,
//!   everything in the first tier is dropped, since any of it may have missed an
//!   invalidation.
//! - Foreign bytes under a key (another codec, an older version, garbage) are a miss: the
//!   value is loaded again and overwritten, never a panic. Keys carry the namespace and a
//!   version, so a version bump starts from an empty second tier. The Redis key is the
//!   postcard encoding of the key, so instances sharing a namespace must use the same key
//!   type (`11u64` and `11i32` are different keys there).
//!
//! Pub/sub rather than RESP3 client tracking, by measurement: with this module's write
//! pipeline, broadcast tracking (the server pushing modified keys under the namespace) gave
//! the same delay to another instance (p99 114 µs both) and the same write rate
//! (`cache/invalidation_delay`, `cache/invalidating_write`). Tracking also pushes every
//! load's write-back and every expiry to every instance, needs RESP3 (Redis 6+) and one
//! connection per cluster primary. Both lose messages while disconnected, which the
//! staleness bound and the drop-all on reconnect cover (docs/architecture.md).

use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use metrics::{Counter, Gauge};
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use serde::Serialize;
use serde::de::DeserializeOwned;
use veza_core::catalog::cache as catalog;
use veza_core::publish::{Late, Publish};
use veza_core::{BoxError, BoxFuture, Health, HealthCheck, SharedError};

use crate::Cache;

/// Encodes values for Redis.
pub trait Codec<T>: Send + Sync + 'static {
    /// The bytes of `value`.
    fn encode(&self, value: &T) -> Result<Vec<u8>, BoxError>;
    /// The value of `bytes`; an error for bytes this codec did not write.
    fn decode(&self, bytes: &[u8]) -> Result<T, BoxError>;
}

/// The default codec: serde with postcard, a compact binary format.
#[derive(Debug, Clone, Copy, Default)]
pub struct Postcard;

impl<T: Serialize + DeserializeOwned> Codec<T> for Postcard {
    fn encode(&self, value: &T) -> Result<Vec<u8>, BoxError> {
        Ok(postcard::to_allocvec(value)?)
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, BoxError> {
        Ok(postcard::from_bytes(bytes)?)
    }
}

/// A tiered cache's settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TierConfig {
    /// The Redis URL. Default `redis://127.0.0.1:6379`.
    pub redis_url: String,
    /// Prefix of every key and of the invalidation channel. Default `"veza"`.
    pub namespace: String,
    /// Part of every key: bump it when the value's encoding changes. Default 1.
    pub version: u32,
    /// How long Redis keeps a value. Default 10 minutes.
    pub redis_ttl: Duration,
    /// The bound on each Redis call. Default 50 ms.
    pub op_timeout: Duration,
    /// How long first-tier entries may be served while the invalidation channel is down.
    /// Default 5 s.
    pub max_stale: Duration,
    /// Consecutive Redis failures that open the breaker. Default 3.
    pub breaker_failures: u32,
    /// How long the open breaker skips Redis before trying again. Default 1 s.
    pub breaker_cooldown: Duration,
    /// Stampede protection across instances: when set, a miss in both tiers takes a short
    /// Redis lock on the key before loading; instances that find it taken poll Redis for the
    /// value for up to this long, then load themselves. Default off.
    pub stampede_wait: Option<Duration>,
}

impl Default for TierConfig {
    fn default() -> Self {
        TierConfig {
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            namespace: "veza".to_owned(),
            version: 1,
            redis_ttl: Duration::from_secs(600),
            op_timeout: Duration::from_millis(50),
            max_stale: Duration::from_secs(5),
            breaker_failures: 3,
            breaker_cooldown: Duration::from_secs(1),
            stampede_wait: None,
        }
    }
}

impl TierConfig {
    /// The defaults with this Redis URL.
    pub fn new(redis_url: impl Into<String>) -> Self {
        TierConfig {
            redis_url: redis_url.into(),
            ..TierConfig::default()
        }
    }

    /// Sets the namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Sets the version.
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Sets how long Redis keeps a value.
    pub fn redis_ttl(mut self, ttl: Duration) -> Self {
        self.redis_ttl = ttl;
        self
    }

    /// Sets the bound on each Redis call.
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// Sets the staleness bound while the invalidation channel is down.
    pub fn max_stale(mut self, bound: Duration) -> Self {
        self.max_stale = bound;
        self
    }

    /// Turns on stampede protection across instances: one instance loads a missing key while
    /// the others wait up to `wait` for its value in Redis (then load themselves).
    pub fn stampede_lock(mut self, wait: Duration) -> Self {
        self.stampede_wait = Some(wait);
        self
    }

    /// Sets the breaker: failures that open it, and its cool-down.
    pub fn breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        self.breaker_failures = failures.max(1);
        self.breaker_cooldown = cooldown;
        self
    }
}

/// Which tier answered a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Served {
    /// The first tier held it.
    FirstTier,
    /// Redis held it (and the first tier now does).
    Redis,
    /// Neither did: the loader ran.
    Loaded,
    /// Another caller in this instance was loading it; this one waited for that load (or
    /// got the stale value of a failed one).
    Joined,
}

impl Served {
    /// `first`, `redis`, `loaded` or `joined`.
    pub fn as_str(self) -> &'static str {
        match self {
            Served::FirstTier => "first",
            Served::Redis => "redis",
            Served::Loaded => "loaded",
            Served::Joined => "joined",
        }
    }
}

/// What a tiered cache counted (the first tier's own statistics are its `Cache`'s).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierStats {
    /// First-tier misses found in Redis.
    pub redis_hits: u64,
    /// First-tier misses Redis did not have (or held foreign bytes for).
    pub redis_misses: u64,
    /// Values under a key that did not decode (another codec or version): treated as misses.
    pub foreign_values: u64,
    /// Redis calls that failed or timed out.
    pub redis_errors: u64,
    /// Redis calls skipped because the breaker was open.
    pub redis_skipped: u64,
    /// First-tier misses whose Redis lookup failed or timed out (part of `redis_errors`).
    pub lookup_errors: u64,
    /// First-tier misses that skipped Redis, the breaker open (part of `redis_skipped`).
    pub lookup_skipped: u64,
    /// Stampede locks this instance took (and then loaded).
    pub locks_won: u64,
    /// Misses that found another instance's stampede lock and waited for its value.
    pub locks_waited: u64,
    /// Of those, the ones whose wait ran out (they loaded themselves).
    pub lock_timeouts: u64,
    /// Invalidations this instance published.
    pub invalidations_sent: u64,
    /// Invalidations from other instances applied here.
    pub invalidations_received: u64,
    /// Whether the breaker is open now.
    pub breaker_open: bool,
    /// Whether the invalidation channel is subscribed now.
    pub channel_up: bool,
}

/// Stripes of invalidation generations.
const GENERATIONS: usize = 4096;

/// A key's invalidation generation when a fill began.
#[derive(Clone, Copy)]
struct Generation {
    stripe: usize,
    key: u64,
    all: u64,
}

/// Compare-and-set for a loaded value: written only if the key's version has not moved since
/// the miss was read (no invalidation or write in between). KEYS: value, version. ARGV:
/// bytes, the version read (empty for none), time to live in ms.
const SET_IF_UNCHANGED: &str = "local v = redis.call('GET', KEYS[2]) \
if (v == false and ARGV[2] == '') or v == ARGV[2] then \
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3]) return 1 end return 0";

/// Message kinds on the invalidation channel: `[kind][16-byte sender id][key bytes]`.
const KEY: u8 = 1;
const ALL: u8 = 2;

/// A two-tier cache: in process, then Redis; see the module documentation.
pub struct TieredCache<K, V> {
    s: Arc<Tier<K, V>>,
}

impl<K, V> Clone for TieredCache<K, V> {
    fn clone(&self) -> Self {
        TieredCache { s: self.s.clone() }
    }
}

struct Tier<K, V> {
    l1: Cache<K, V>,
    client: redis::Client,
    conn: Mutex<Option<MultiplexedConnection>>,
    codec: Arc<dyn Codec<V>>,
    keys: Postcard,
    config: TierConfig,
    prefix: Vec<u8>,
    channel: String,
    id: [u8; 16],
    epoch: Instant,
    /// Breaker: consecutive failures, and until when (nanos since `epoch`) it is open.
    failures: AtomicU32,
    open_until: AtomicU64,
    /// Nanos since `epoch` (+1) when the channel went down; 0 while it is up.
    down_since: AtomicU64,
    /// The `down_since` whose bound has already been enforced.
    purged: AtomicU64,
    counts: [AtomicU64; 12],
    /// Invalidation generations, by key stripe, and of everything: a fill that began before
    /// an invalidation of its key must not land in the first tier after it.
    gens: Box<[AtomicU64]>,
    all_gen: AtomicU64,
    key_hasher: foldhash::quality::RandomState,
    stop: tokio::sync::Notify,
    metrics: Late<TierMetrics>,
}

#[derive(Clone, Copy)]
enum Count {
    RedisHit,
    RedisMiss,
    Foreign,
    RedisError,
    Skipped,
    Sent,
    Received,
    LookupError,
    LookupSkipped,
    LockWon,
    LockWaited,
    LockTimeout,
}

/// The outcome of taking a key's stampede lock.
enum Lock {
    /// We hold it (the lock's Redis key): load, store, release.
    Held(Vec<u8>),
    /// Another instance holds it: wait for its value.
    Taken,
    /// Redis did not answer: load locally.
    Unavailable,
}

impl<K, V> TieredCache<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
{
    /// A tiered cache over `first_tier` with the postcard codec. Must be called inside a
    /// Tokio runtime: it spawns the task that listens for invalidations. It waits up to the
    /// operation timeout for that subscription, and starts anyway (with the channel down)
    /// if Redis does not answer.
    pub async fn new(
        first_tier: Cache<K, V>,
        config: TierConfig,
    ) -> Result<TieredCache<K, V>, redis::RedisError> {
        Self::with_codec(first_tier, config, Postcard).await
    }

    /// [`new`](TieredCache::new) with another codec for the values.
    pub async fn with_codec(
        first_tier: Cache<K, V>,
        config: TierConfig,
        codec: impl Codec<V>,
    ) -> Result<TieredCache<K, V>, redis::RedisError> {
        let client = redis::Client::open(config.redis_url.as_str())?;
        let first_tier_name = first_tier.name().to_owned();
        let first_tier_name = first_tier_name.as_str();
        let mut prefix = format!("{}:v{}:", config.namespace, config.version).into_bytes();
        prefix.shrink_to_fit();
        let channel = format!("{}:v{}:invalidate", config.namespace, config.version);
        let epoch = Instant::now();
        let tier = Arc::new(Tier {
            l1: first_tier,
            client,
            conn: Mutex::new(None),
            codec: Arc::new(codec),
            keys: Postcard,
            prefix,
            channel,
            id: instance_id(),
            epoch,
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            // Down until the first subscription succeeds.
            down_since: AtomicU64::new(1),
            purged: AtomicU64::new(0),
            counts: Default::default(),
            gens: (0..GENERATIONS).map(|_| AtomicU64::new(0)).collect(),
            all_gen: AtomicU64::new(0),
            key_hasher: foldhash::quality::RandomState::default(),
            stop: tokio::sync::Notify::new(),
            metrics: Late::new(|| TierMetrics::new(first_tier_name)),
            config,
        });
        veza_core::publish::register(&tier);
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(listen(Arc::downgrade(&tier), subscribed_tx));
        let _ = tokio::time::timeout(tier.config.op_timeout * 4, subscribed_rx).await;
        Ok(TieredCache { s: tier })
    }

    /// The first tier.
    pub fn first_tier(&self) -> &Cache<K, V> {
        &self.s.l1
    }

    /// The value for `key`: from the first tier, else from Redis (filling the first tier).
    pub async fn get(&self, key: &K) -> Option<V> {
        self.s.enforce_staleness();
        if let Some(value) = self.s.l1.get(key) {
            return Some(value);
        }
        let tier = &self.s;
        let began = tier.generation(key);
        // Boxed: the Redis round trip's state machine would otherwise make every caller's
        // future (first-tier hits included) several KiB to move.
        let (value, ttl) = Box::pin(tier.fetch(key)).await?;
        if tier.unchanged(began) {
            tier.l1.insert_with_ttl(key.clone(), value.clone(), ttl);
            tier.settle_fill(key, began);
        }
        Some(value)
    }

    /// The value for `key` from the first tier, Redis, or `load` (stored in both tiers);
    /// concurrent misses on one key in this instance load once. The loader's error reaches
    /// every caller that waited and is not cached.
    pub async fn get_or_load<F, E>(&self, key: &K, load: F) -> Result<V, SharedError>
    where
        F: Future<Output = Result<V, E>>,
        E: Into<BoxError>,
    {
        self.get_or_load_opt(key, async { load.await.map(Some) })
            .await
            .map(|v| v.expect("a loaded value"))
    }

    /// Like [`get_or_load`](TieredCache::get_or_load) for a loader that may find nothing:
    /// `Ok(None)` is returned to every waiting caller and cached in neither tier.
    pub async fn get_or_load_opt<F, E>(&self, key: &K, load: F) -> Result<Option<V>, SharedError>
    where
        F: Future<Output = Result<Option<V>, E>>,
        E: Into<BoxError>,
    {
        self.get_or_load_opt_served(key, load)
            .await
            .map(|(value, _)| value)
    }

    /// [`get_or_load_opt`](TieredCache::get_or_load_opt), saying which tier answered.
    pub async fn get_or_load_opt_served<F, E>(
        &self,
        key: &K,
        load: F,
    ) -> Result<(Option<V>, Served), SharedError>
    where
        F: Future<Output = Result<Option<V>, E>>,
        E: Into<BoxError>,
    {
        self.s.enforce_staleness();
        // A first-tier hit answers here; the miss path (Redis, the stampede lock, the load,
        // the write-back) is boxed, so the future a caller holds and moves stays small (it
        // was 9 KiB, copied on every move, hits included).
        if let Ok(found) = self.s.l1.hit(key) {
            return found.map(|value| (value, Served::FirstTier));
        }
        Box::pin(self.fill_served(key, load)).await
    }

    /// The miss path of [`get_or_load_opt_served`](TieredCache::get_or_load_opt_served).
    async fn fill_served<F, E>(&self, key: &K, load: F) -> Result<(Option<V>, Served), SharedError>
    where
        F: Future<Output = Result<Option<V>, E>>,
        E: Into<BoxError>,
    {
        let tier = &self.s;
        let began = tier.generation(key);
        let from_redis = std::sync::atomic::AtomicBool::new(false);
        let (loaded, source) = tier
            .l1
            .load_with_ttl_async(key, async {
                let load = async { load.await.map_err(|e| SharedError::from(e.into())) };
                let filled = tier.fill(key, began, load).await?;
                Ok(filled.map(|(value, ttl, redis)| {
                    from_redis.store(redis, Relaxed);
                    (value, Some(ttl))
                }))
            })
            .await;
        tier.settle_fill(key, began);
        let served = match source {
            crate::Source::Hit => Served::FirstTier,
            crate::Source::Loaded if from_redis.load(Relaxed) => Served::Redis,
            crate::Source::Loaded => Served::Loaded,
            _ => Served::Joined,
        };
        loaded.map(|value| (value, served))
    }

    /// [`Cache::get_or_refresh`] through both tiers: the load (Redis, then `load`) runs in a
    /// task of its own, with the first tier's soft and hard timeouts and refresh-ahead; what
    /// it fills is bounded by Redis's time to live and kept out of the first tier if an
    /// invalidation of the key came meanwhile.
    pub async fn get_or_refresh<F, Fut, E>(&self, key: &K, load: F) -> Result<V, SharedError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        self.s.enforce_staleness();
        let began = self.s.generation(key);
        let (tier, owned) = (self.s.clone(), key.clone());
        // Once the load has stored its value: drop it if an invalidation came between the
        // loader's check and the store (the check alone leaves that window).
        let after = {
            let (tier, key) = (self.s.clone(), key.clone());
            Box::new(move || tier.settle_fill(&key, began))
        };
        let load = move || async move {
            let load = async {
                load()
                    .await
                    .map(Some)
                    .map_err(|e| SharedError::from(e.into()))
            };
            let filled = tier.fill(&owned, began, load).await?;
            let (value, ttl, _) = filled.expect("the loader always gives a value");
            Ok((value, Some(ttl)))
        };
        let got = self.s.l1.get_or_refresh_ttl(key, load, after).await;
        self.s.settle_fill(key, began);
        got
    }

    /// Stores `value` under `key` in both tiers and tells the other instances to drop theirs.
    pub async fn insert(&self, key: K, value: V) {
        let ttl = self.s.first_tier_ttl(self.s.config.redis_ttl);
        self.s.bump(&key); // fills in flight must not land over this value
        self.s.l1.insert_with_ttl(key.clone(), value.clone(), ttl);
        self.s.store(&key, &value, true).await;
    }

    /// Removes `key` from both tiers and from the other instances' first tiers.
    pub async fn invalidate(&self, key: &K) {
        self.s.bump(key);
        self.s.l1.invalidate(key);
        let tier = &self.s;
        let Ok(key_bytes) = tier.keys.encode(key) else {
            return;
        };
        let mut pipe = redis::pipe();
        pipe.del(tier.redis_key(&key_bytes)).ignore();
        tier.bump_version(&mut pipe, &key_bytes);
        pipe.publish(&tier.channel, tier.message(KEY, &key_bytes))
            .ignore();
        if tier.run::<()>(pipe).await.is_some() {
            tier.count(Count::Sent);
        }
    }

    /// Empties this instance's first tier and the other instances' (Redis keeps its
    /// entries: they expire by themselves, or are overwritten).
    pub async fn invalidate_all_first_tiers(&self) {
        self.s.all_gen.fetch_add(1, SeqCst);
        self.s.l1.invalidate_all();
        let tier = &self.s;
        let mut pipe = redis::pipe();
        pipe.publish(&tier.channel, tier.message(ALL, &[])).ignore();
        if tier.run::<()>(pipe).await.is_some() {
            tier.count(Count::Sent);
        }
    }

    /// What the tiered cache counted (also published as the `cache_tier_*` catalog metrics at
    /// each scrape, labelled with the first tier's name).
    pub fn stats(&self) -> TierStats {
        self.s.stats()
    }
}

impl<K, V> Tier<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
{
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    fn count(&self, c: Count) {
        self.counts[c as usize].fetch_add(1, Relaxed);
    }

    fn stats(&self) -> TierStats {
        let c = |i: Count| self.counts[i as usize].load(Relaxed);
        TierStats {
            redis_hits: c(Count::RedisHit),
            redis_misses: c(Count::RedisMiss),
            foreign_values: c(Count::Foreign),
            redis_errors: c(Count::RedisError),
            redis_skipped: c(Count::Skipped),
            lookup_errors: c(Count::LookupError),
            lookup_skipped: c(Count::LookupSkipped),
            locks_won: c(Count::LockWon),
            locks_waited: c(Count::LockWaited),
            lock_timeouts: c(Count::LockTimeout),
            invalidations_sent: c(Count::Sent),
            invalidations_received: c(Count::Received),
            breaker_open: !self.breaker_allows(),
            channel_up: self.down_since.load(Relaxed) == 0,
        }
    }

    fn redis_key(&self, key_bytes: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key_bytes.len());
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(key_bytes);
        k
    }

    fn message(&self, kind: u8, key_bytes: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(17 + key_bytes.len());
        m.push(kind);
        m.extend_from_slice(&self.id);
        m.extend_from_slice(key_bytes);
        m
    }

    /// A first-tier time to live no longer than `ttl`, nor than the staleness bound while
    /// the invalidation channel is down.
    fn first_tier_ttl(&self, ttl: Duration) -> Duration {
        let ttl = ttl.max(Duration::from_millis(1));
        if self.down_since.load(Relaxed) == 0 {
            ttl
        } else {
            ttl.min(self.config.max_stale)
        }
    }

    /// While the channel is down: once the bound has passed since it went down, drops every
    /// first-tier entry (new ones live no longer than the bound).
    fn enforce_staleness(&self) {
        let down = self.down_since.load(Relaxed);
        if down == 0 || self.purged.load(Relaxed) == down {
            return;
        }
        let bound = u64::try_from(self.config.max_stale.as_nanos()).unwrap_or(u64::MAX);
        if self.now().saturating_sub(down - 1) >= bound && self.purged.swap(down, Relaxed) != down {
            self.all_gen.fetch_add(1, SeqCst);
            self.l1.invalidate_all();
        }
    }

    fn breaker_allows(&self) -> bool {
        self.now() >= self.open_until.load(Relaxed)
    }

    fn succeeded(&self) {
        if self.failures.load(Relaxed) != 0 {
            self.failures.store(0, Relaxed);
        }
    }

    fn failed(&self) {
        self.count(Count::RedisError);
        *self.conn.lock() = None; // reconnect next time
        if self.failures.fetch_add(1, Relaxed) + 1 >= self.config.breaker_failures {
            let cooldown = u64::try_from(self.config.breaker_cooldown.as_nanos()).unwrap_or(0);
            self.open_until
                .store(self.now().saturating_add(cooldown), Relaxed);
            self.failures.store(0, Relaxed);
        }
    }

    /// A connection, opened if needed (within the operation timeout).
    async fn connection(&self) -> Option<MultiplexedConnection> {
        if let Some(conn) = self.conn.lock().clone() {
            return Some(conn);
        }
        let opened = tokio::time::timeout(
            self.config.op_timeout,
            self.client.get_multiplexed_async_connection(),
        )
        .await;
        match opened {
            Ok(Ok(conn)) => {
                *self.conn.lock() = Some(conn.clone());
                Some(conn)
            }
            _ => None,
        }
    }

    /// Runs `pipe` unless the breaker is open, bounded by the operation timeout.
    async fn run<T: redis::FromRedisValue>(&self, pipe: redis::Pipeline) -> Option<T> {
        if !self.breaker_allows() {
            self.count(Count::Skipped);
            return None;
        }
        let Some(mut conn) = self.connection().await else {
            self.failed();
            return None;
        };
        match tokio::time::timeout(self.config.op_timeout, pipe.query_async::<T>(&mut conn)).await {
            Ok(Ok(value)) => {
                self.succeeded();
                Some(value)
            }
            _ => {
                self.failed();
                None
            }
        }
    }

    /// The value Redis holds for `key` and the first-tier time to live it allows.
    async fn fetch(&self, key: &K) -> Option<(V, Duration)> {
        self.fetch_versioned(key, true).await?.0
    }

    /// [`fetch`](Tier::fetch), counting a miss only if `count_miss` (polls do not).
    async fn fetch_counted(&self, key: &K, count_miss: bool) -> Option<(V, Duration)> {
        self.fetch_versioned(key, count_miss).await?.0
    }

    /// What Redis holds for `key` (value and the first-tier time to live it allows, if any)
    /// and the key's version (empty for none), in one round trip; `None` if Redis could not
    /// be asked.
    async fn fetch_versioned(
        &self,
        key: &K,
        count_miss: bool,
    ) -> Option<(Option<(V, Duration)>, String)> {
        let key_bytes = self.keys.encode(key).ok()?;
        let mut pipe = redis::pipe();
        let redis_key = self.redis_key(&key_bytes);
        pipe.get(&redis_key)
            .pttl(&redis_key)
            .get(self.version_key(&key_bytes));
        let allowed = self.breaker_allows();
        let Some((bytes, pttl, version)) = self
            .run::<(Option<Vec<u8>>, i64, Option<String>)>(pipe)
            .await
        else {
            self.count(if allowed {
                Count::LookupError
            } else {
                Count::LookupSkipped
            });
            return None;
        };
        let version = version.unwrap_or_default();
        let Some(bytes) = bytes else {
            if count_miss {
                self.count(Count::RedisMiss);
            }
            return Some((None, version));
        };
        let Ok(value) = self.codec.decode(&bytes) else {
            self.count(Count::Foreign);
            self.count(Count::RedisMiss);
            return Some((None, version));
        };
        // -1: no expiry; -2: gone since the GET; otherwise what is left.
        let left = match pttl {
            -1 => self.config.redis_ttl,
            ms if ms > 0 => Duration::from_millis(ms.unsigned_abs()),
            _ => {
                self.count(Count::RedisMiss);
                return Some((None, version));
            }
        };
        self.count(Count::RedisHit);
        Some((Some((value, self.first_tier_ttl(left))), version))
    }

    /// Fills a first-tier miss of `key` (which began at `began`): from Redis, else (under the
    /// stampede lock, if configured) from `load`, whose value is written back to Redis unless
    /// a write or invalidation came since the miss was read. The value, its first-tier time to
    /// live (zero if the key was invalidated since `began`), and whether Redis had it; `None`
    /// if the loader found nothing.
    async fn fill(
        &self,
        key: &K,
        began: Generation,
        load: impl Future<Output = Result<Option<V>, SharedError>>,
    ) -> Result<Option<(V, Duration, bool)>, SharedError> {
        let fetched = self.fetch_versioned(key, true).await;
        if let Some((Some((value, ttl)), _)) = fetched {
            return Ok(Some((value, self.fill_ttl(began, ttl), true)));
        }
        let version = fetched.map(|(_, version)| version);
        let mut locked = None;
        if let Some(wait) = self.config.stampede_wait {
            match self.lock(key, wait).await {
                Lock::Held(lock) => locked = Some(lock),
                Lock::Taken => {
                    if let Some((value, ttl)) = self.await_value(key, wait).await {
                        return Ok(Some((value, self.fill_ttl(began, ttl), true)));
                    }
                    self.count(Count::LockTimeout);
                }
                Lock::Unavailable => {}
            }
        }
        let loaded = load.await;
        if let Ok(Some(value)) = &loaded {
            self.store_loaded(key, value, version).await;
        }
        if let Some(lock) = locked {
            self.unlock(lock).await;
        }
        let ttl = self.fill_ttl(began, self.first_tier_ttl(self.config.redis_ttl));
        Ok(loaded?.map(|value| (value, ttl, false)))
    }

    /// Takes the stampede lock of `key` (`SET NX PX`, expiring after twice `wait` in case the
    /// holder dies).
    async fn lock(&self, key: &K, wait: Duration) -> Lock {
        let Ok(key_bytes) = self.keys.encode(key) else {
            return Lock::Unavailable;
        };
        let mut lock_key = self.redis_key(b"lock:");
        lock_key.extend_from_slice(&key_bytes);
        let ttl_ms = u64::try_from(wait.saturating_mul(2).as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&lock_key)
            .arg(&self.id[..])
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms);
        match self.run::<(Option<String>,)>(pipe).await {
            Some((Some(_),)) => {
                self.count(Count::LockWon);
                Lock::Held(lock_key)
            }
            Some((None,)) => {
                self.count(Count::LockWaited);
                Lock::Taken
            }
            None => Lock::Unavailable,
        }
    }

    /// Releases a stampede lock we hold.
    async fn unlock(&self, lock_key: Vec<u8>) {
        let mut pipe = redis::pipe();
        pipe.del(lock_key).ignore();
        let _ = self.run::<()>(pipe).await;
    }

    /// Polls Redis for `key`'s value (every 5 ms) for up to `wait`.
    async fn await_value(&self, key: &K, wait: Duration) -> Option<(V, Duration)> {
        let deadline = veza_core::duration::after(Instant::now(), wait);
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if let Some(found) = self.fetch_counted(key, false).await {
                return Some(found);
            }
        }
        None
    }

    /// Writes `value` to Redis, and publishes an invalidation if `announce`.
    async fn store(&self, key: &K, value: &V, announce: bool) {
        let (Ok(key_bytes), Ok(bytes)) = (self.keys.encode(key), self.codec.encode(value)) else {
            return;
        };
        let ttl_ms = u64::try_from(self.config.redis_ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.redis_key(&key_bytes))
            .arg(bytes)
            .arg("PX")
            .arg(ttl_ms)
            .ignore();
        if announce {
            self.bump_version(&mut pipe, &key_bytes);
            pipe.publish(&self.channel, self.message(KEY, &key_bytes))
                .ignore();
        }
        if self.run::<()>(pipe).await.is_some() && announce {
            self.count(Count::Sent);
        }
    }

    /// Adds to `pipe` the bump of the key's version (which makes loads that read the key
    /// before this write or invalidation leave Redis alone); the version lives twice as long
    /// as values do.
    fn bump_version(&self, pipe: &mut redis::Pipeline, key_bytes: &[u8]) {
        let version = self.version_key(key_bytes);
        let ttl_ms = u64::try_from(self.config.redis_ttl.saturating_mul(2).as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        pipe.incr(&version, 1).ignore();
        pipe.cmd("PEXPIRE").arg(&version).arg(ttl_ms).ignore();
    }

    fn version_key(&self, key_bytes: &[u8]) -> Vec<u8> {
        let mut k = self.redis_key(b"ver:");
        k.extend_from_slice(key_bytes);
        k
    }

    /// Writes a loaded value to Redis only if the key's version is still `version` (the one
    /// read with the miss): a write or invalidation since then wins. Nothing is written when
    /// the miss could not be read from Redis.
    async fn store_loaded(&self, key: &K, value: &V, version: Option<String>) {
        let Some(version) = version else { return };
        let (Ok(key_bytes), Ok(bytes)) = (self.keys.encode(key), self.codec.encode(value)) else {
            return;
        };
        let ttl_ms = u64::try_from(self.config.redis_ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut pipe = redis::pipe();
        pipe.cmd("EVAL")
            .arg(SET_IF_UNCHANGED)
            .arg(2)
            .arg(self.redis_key(&key_bytes))
            .arg(self.version_key(&key_bytes))
            .arg(bytes)
            .arg(version)
            .arg(ttl_ms)
            .ignore();
        let _ = self.run::<()>(pipe).await;
    }

    /// The key's invalidation generation now.
    fn generation(&self, key: &K) -> Generation {
        let stripe = (self.key_hasher.hash_one(key) as usize) & (GENERATIONS - 1);
        Generation {
            stripe,
            key: self.gens[stripe].load(SeqCst),
            all: self.all_gen.load(SeqCst),
        }
    }

    fn unchanged(&self, began: Generation) -> bool {
        self.gens[began.stripe].load(SeqCst) == began.key && self.all_gen.load(SeqCst) == began.all
    }

    /// Marks `key` invalidated (before its first-tier entry is dropped).
    fn bump(&self, key: &K) {
        let stripe = (self.key_hasher.hash_one(key) as usize) & (GENERATIONS - 1);
        self.gens[stripe].fetch_add(1, SeqCst);
    }

    /// The first-tier time to live of a fill that began at `began`: zero (keep nothing) if
    /// the key was invalidated since.
    fn fill_ttl(&self, began: Generation, ttl: Duration) -> Duration {
        if self.unchanged(began) {
            ttl
        } else {
            Duration::ZERO
        }
    }

    /// After a fill: if an invalidation came between the check and the insert, drop what was
    /// inserted (the invalidation marks before it drops, so one of the two sees the other).
    fn settle_fill(&self, key: &K, began: Generation) {
        if !self.unchanged(began) {
            self.l1.invalidate(key);
        }
    }

    /// Applies a message from the channel (unless it is our own).
    fn receive(&self, payload: &[u8]) {
        if payload.len() < 17 || payload[1..17] == self.id {
            return;
        }
        match payload[0] {
            KEY => {
                if let Ok(key) = self.keys.decode(&payload[17..]) {
                    let key: K = key;
                    self.bump(&key);
                    self.l1.invalidate(&key);
                    self.count(Count::Received);
                }
            }
            ALL => {
                self.all_gen.fetch_add(1, SeqCst);
                self.l1.invalidate_all();
                self.count(Count::Received);
            }
            _ => {}
        }
    }

    fn channel_up(&self) {
        // Anything may have been missed while unsubscribed.
        self.all_gen.fetch_add(1, SeqCst);
        self.l1.invalidate_all();
        self.down_since.store(0, Relaxed);
    }

    fn channel_down(&self) {
        let _ = self
            .down_since
            .compare_exchange(0, self.now().saturating_add(1), Relaxed, Relaxed);
    }
}

/// The subscriber: subscribes, applies messages, and on any loss marks the channel down and
/// tries again (100 ms, doubling to 2 s), until the cache is dropped.
async fn listen<K, V>(
    tier: std::sync::Weak<Tier<K, V>>,
    subscribed: tokio::sync::oneshot::Sender<()>,
) where
    K: Eq + Hash + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
{
    let mut subscribed = Some(subscribed);
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(t) = tier.upgrade() else { return };
        let (client, channel, timeout) = (t.client.clone(), t.channel.clone(), t.config.op_timeout);
        drop(t);
        let connected = tokio::time::timeout(timeout * 4, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        if let Ok(Ok(mut pubsub)) = connected {
            let Some(t) = tier.upgrade() else { return };
            t.channel_up();
            backoff = Duration::from_millis(100);
            if let Some(tx) = subscribed.take() {
                let _ = tx.send(());
            }
            let mut messages = pubsub.on_message();
            loop {
                tokio::select! {
                    message = messages.next() => match message {
                        Some(message) => t.receive(message.get_payload_bytes()),
                        None => break,
                    },
                    () = t.stop.notified() => return,
                }
            }
            t.channel_down();
        } else if let Some(t) = tier.upgrade() {
            t.channel_down();
        } else {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

impl<K, V> Drop for Tier<K, V> {
    fn drop(&mut self) {
        self.stop.notify_waiters();
    }
}

/// The `cache_tier_*` metrics of one tiered cache.
struct TierMetrics {
    lookups: [Counter; 5],
    invalidations: [Counter; 2],
    errors: Counter,
    breaker_open: Gauge,
    channel_up: Gauge,
}

impl TierMetrics {
    fn new(name: &str) -> TierMetrics {
        let cache = name.to_owned();
        TierMetrics {
            lookups: ["hit", "miss", "foreign", "error", "skipped"].map(|outcome| {
                metrics::counter!(catalog::TIER_LOOKUPS.name, "cache" => cache.clone(), "outcome" => outcome)
            }),
            invalidations: ["sent", "received"].map(|direction| {
                metrics::counter!(catalog::TIER_INVALIDATIONS.name, "cache" => cache.clone(), "direction" => direction)
            }),
            errors: metrics::counter!(catalog::TIER_ERRORS.name, "cache" => cache.clone()),
            breaker_open: metrics::gauge!(catalog::TIER_BREAKER_OPEN.name, "cache" => cache.clone()),
            channel_up: metrics::gauge!(catalog::TIER_CHANNEL_UP.name, "cache" => cache),
        }
    }
}

impl<K, V> Publish for Tier<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
{
    fn publish(&self) {
        self.metrics.refresh(|| TierMetrics::new(self.l1.name()));
        let m = self.metrics.get();
        let s = self.stats();
        // Misses counted `foreign` are also counted as misses: report them apart.
        let lookups = [
            s.redis_hits,
            s.redis_misses - s.foreign_values,
            s.foreign_values,
            s.lookup_errors,
            s.lookup_skipped,
        ];
        for (counter, n) in m.lookups.iter().zip(lookups) {
            counter.absolute(n);
        }
        m.invalidations[0].absolute(s.invalidations_sent);
        m.invalidations[1].absolute(s.invalidations_received);
        m.errors.absolute(s.redis_errors);
        m.breaker_open.set(f64::from(u8::from(s.breaker_open)));
        m.channel_up.set(f64::from(u8::from(s.channel_up)));
    }
}

fn instance_id() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    let state = foldhash::quality::RandomState::default();
    let mut a = state.build_hasher();
    a.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    a.write_u32(std::process::id());
    let hi = a.finish();
    let lo = foldhash::quality::RandomState::default().hash_one(hi);
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&hi.to_le_bytes());
    id[8..].copy_from_slice(&lo.to_le_bytes());
    id
}

impl<K, V> HealthCheck for TieredCache<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
{
    fn name(&self) -> &str {
        self.s.l1.name()
    }

    /// Degraded while Redis is unreachable (breaker open or channel down): the cache still
    /// answers from the first tier and the loader.
    fn check(&self) -> BoxFuture<'_, Health> {
        Box::pin(async move {
            let stats = self.stats();
            if stats.breaker_open {
                Health::degraded("redis unreachable: breaker open")
            } else if !stats.channel_up {
                Health::degraded("redis invalidation channel down")
            } else {
                Health::Healthy
            }
        })
    }
}

impl<K, V> fmt::Debug for TieredCache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TieredCache")
            .field("namespace", &self.s.config.namespace)
            .field("version", &self.s.config.version)
            .finish_non_exhaustive()
    }
}
