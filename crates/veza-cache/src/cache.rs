//! [`Cache`]: a bounded concurrent cache with exact statistics, lazy time to live and
//! invalidation by key, by predicate or all.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use quick_cache::Equivalent;
use veza_core::publish::{Late, Publish};
use veza_core::{CacheStats, Observe};

use crate::config::CacheBuilder;
use crate::entry::{Hooks, Idle, NEVER, Slot, Weigher, deadline, nanos};
use crate::stats::{CacheMetrics, Counters, Event};

/// What a lookup found.
pub(crate) enum Lookup<V> {
    Value(V),
    /// A cached "not found".
    Absent,
    /// The error of a load that just failed (about to be removed).
    Failed(veza_core::SharedError),
    Missing,
}

pub(crate) type Inner<K, V> =
    quick_cache::sync::Cache<K, Slot<V>, Weigher<K, V>, quick_cache::DefaultHashBuilder, Hooks>;

/// A bounded, concurrent, in-process cache.
///
/// Backed by [`quick_cache`] (S3-FIFO eviction, sharded read-write locks): a hit takes a
/// shard's read lock, clones the value, and adds one to a hit counter only the calling thread
/// writes. Values are cloned on every read, so wrap large ones in `Arc`.
///
/// - Capacity in entries, or in weight with a weigher ([`CacheBuilder::max_weight`]). The
///   capacity is split evenly over quick_cache's shards (4 per core, fewer for small caches,
///   at least 32 entries each), and each shard evicts once its own share is full. So a cache
///   of `n` holds a little under `n` distinct keys when the keys do not spread perfectly
///   evenly: 964 after 1,000 distinct inserts into a cache of 1,000 on 2 cores (8 shards).
///   Never more than `n`. Size it a few percent above the working set that must fit.
/// - Time to live, checked lazily on read: an expired entry is a miss, removed then (counted
///   as an `expired` eviction), or pushed out by newer entries.
/// - Single-flight loading ([`get_or_load`](Cache::get_or_load) and its `try_`, `_opt` and
///   `_async` forms): concurrent misses on one key run the loader once; an error reaches every
///   caller that waited on that load and is not cached; a loader that panics or whose future is
///   dropped hands the load to one of the waiters.
/// - Statistics through [`Observe`] ([`CacheStats`]) and the `cache_*` catalog metrics,
///   published at every scrape of the metrics endpoint (and when a snapshot is taken).
///
/// A cheap handle, like moka's: `Cache` is `Clone` (one `Arc`), and clones share the entries,
/// the statistics and the metrics. The entries are dropped with the last clone.
pub struct Cache<K, V> {
    pub(crate) s: Arc<Shared<K, V>>,
}

impl<K, V> Clone for Cache<K, V> {
    fn clone(&self) -> Self {
        Cache { s: self.s.clone() }
    }
}

/// What the clones of a cache share.
pub(crate) struct Shared<K, V> {
    pub(crate) inner: Inner<K, V>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) idle: Option<Idle>,
    pub(crate) negative_ttl: Option<Duration>,
    pub(crate) capacity: u64,
    pub(crate) current_capacity: AtomicU64,
    pub(crate) weighed: bool,
    pub(crate) name: String,
    pub(crate) metrics: Late<CacheMetrics>,
}

impl<K, V> Cache<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache of at most `max_entries` entries, without expiry.
    pub fn new(max_entries: u64) -> Result<Cache<K, V>, crate::ConfigError> {
        Cache::builder().max_entries(max_entries).build()
    }

    /// A builder with the defaults (10,000 entries, no expiry).
    pub fn builder() -> CacheBuilder<K, V> {
        CacheBuilder::default()
    }

    /// A cache with these settings (see [`Config`](crate::Config); from a file with the
    /// `serde` feature). The metrics recorder may be installed before or after.
    pub fn from_config(config: &crate::Config) -> Result<Cache<K, V>, crate::ConfigError> {
        Cache::builder().config(config).build()
    }

    pub(crate) fn from_builder(b: CacheBuilder<K, V>) -> Cache<K, V> {
        let counters = Arc::new(Counters::new());
        let estimated = b
            .estimated_entries
            .unwrap_or(usize::try_from(b.capacity).unwrap_or(usize::MAX));
        let mut options = quick_cache::OptionsBuilder::new();
        options
            .estimated_items_capacity(estimated)
            .weight_capacity(b.capacity);
        if let Some(shards) = b.shards {
            options.shards(shards);
        }
        let options = options.build().expect("capacity and estimate are set");
        let inner = Inner::with_options(
            options,
            Weigher(b.weigher.clone()),
            quick_cache::DefaultHashBuilder::default(),
            Hooks {
                counters: counters.clone(),
            },
        );
        let shared = Arc::new(Shared {
            inner,
            counters,
            ttl: b.ttl,
            idle: b.tti.map(|limit| Idle {
                epoch: Instant::now(),
                limit,
            }),
            negative_ttl: b.negative_ttl,
            capacity: b.capacity,
            current_capacity: AtomicU64::new(b.capacity),
            weighed: b.weigher.is_some(),
            metrics: Late::new(|| CacheMetrics::new(&b.name)),
            name: b.name,
        });
        veza_core::publish::register(&shared);
        Cache { s: shared }
    }

    /// The value for `key`, if present and not expired.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let found = match self.lookup(key) {
            Lookup::Value(value) => Some(value),
            Lookup::Absent | Lookup::Failed(_) | Lookup::Missing => None,
        };
        let event = if found.is_some() {
            Event::Hit
        } else {
            Event::Miss
        };
        self.s.counters.add(event, 1);
        found
    }

    /// What the cache holds for `key` now, without counting; expired entries are removed.
    #[inline]
    pub(crate) fn lookup<Q>(&self, key: &Q) -> Lookup<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        match self.s.inner.get(key) {
            None => Lookup::Missing,
            Some(slot) => self.classify(key, slot),
        }
    }

    /// Sorts a slot read from the cache (or handed over by a finished load).
    #[inline]
    pub(crate) fn classify<Q>(&self, key: &Q, slot: Slot<V>) -> Lookup<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        match slot {
            Slot::Value {
                value,
                expires,
                touched,
            } => {
                let timed = expires != NEVER || touched.is_some();
                let now = if timed { Some(Instant::now()) } else { None };
                let idle_too_long = || match (&touched, self.s.idle, now) {
                    (Some(t), Some(idle), Some(now)) => {
                        let ms = idle.ms(now);
                        let limit = u64::try_from(idle.limit.as_millis()).unwrap_or(u64::MAX);
                        if ms.saturating_sub(t.load(Relaxed)) > limit {
                            true
                        } else {
                            t.store(ms, Relaxed); // a read resets the idle clock
                            false
                        }
                    }
                    _ => false,
                };
                let past = |n: Instant| expires != NEVER && nanos(n) >= expires;
                if now.is_some_and(past) || idle_too_long() {
                    self.remove_expired(key);
                    Lookup::Missing
                } else {
                    Lookup::Value(value)
                }
            }
            Slot::Absent { expires } => {
                if expires != NEVER && nanos(Instant::now()) >= expires {
                    self.remove_expired(key);
                    Lookup::Missing
                } else {
                    Lookup::Absent
                }
            }
            Slot::Failed(err) => Lookup::Failed(err),
        }
    }

    /// Stores `value` under `key`, replacing any previous value; the time to live starts now.
    /// A value heavier than a shard's share of the capacity is not kept.
    pub fn insert(&self, key: K, value: V) {
        self.s.inner.insert(key, self.value_slot(value, self.s.ttl));
        self.s.counters.add(Event::Insert, 1);
    }

    /// Like [`insert`](Cache::insert) with this entry's own time to live instead of the
    /// cache's (per-entry expiry).
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) {
        self.s.inner.insert(key, self.value_slot(value, Some(ttl)));
        self.s.counters.add(Event::Insert, 1);
    }

    /// A stored value with its expiry and, with a time to idle, its idle clock. The clock is
    /// read only when one of the two is configured.
    #[inline]
    pub(crate) fn value_slot(&self, value: V, ttl: Option<Duration>) -> Slot<V> {
        if ttl.is_none() && self.s.idle.is_none() {
            return Slot::Value {
                value,
                expires: NEVER,
                touched: None,
            };
        }
        let now = Instant::now();
        Slot::Value {
            value,
            // A time to live too long to count never expires.
            expires: ttl.map_or(NEVER, |t| deadline(now, t)),
            touched: self
                .s
                .idle
                .map(|idle| Arc::new(AtomicU64::new(idle.ms(now)))),
        }
    }

    /// Removes `key`; `true` if it was present.
    pub fn invalidate<Q>(&self, key: &Q) -> bool
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let removed = self.s.inner.remove(key).is_some();
        if removed {
            self.s.counters.add(Event::EvictExplicit, 1);
        }
        removed
    }

    /// Removes every entry for which `predicate(key, value)` is true.
    pub fn invalidate_if(&self, predicate: impl Fn(&K, &V) -> bool) {
        let removed = AtomicU64::new(0);
        self.s.inner.retain(|k, slot| {
            let drop = match slot {
                Slot::Value { value, .. } => predicate(k, value),
                Slot::Absent { .. } | Slot::Failed(_) => false,
            };
            if drop {
                removed.fetch_add(1, Relaxed);
            }
            !drop
        });
        self.s
            .counters
            .add(Event::EvictExplicit, removed.load(Relaxed));
    }

    /// Removes every entry.
    pub fn invalidate_all(&self) {
        let before = self.s.inner.len() as u64;
        self.s.inner.clear();
        self.s.counters.add(Event::EvictExplicit, before);
    }

    /// Entries held now (values, cached absences).
    pub fn len(&self) -> usize {
        self.s.inner.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.s.inner.is_empty()
    }

    /// The total weight held (the entry count without a weigher).
    pub fn weighted_size(&self) -> u64 {
        self.s.inner.weight()
    }

    /// The cache's name, its metrics' `cache` label.
    pub fn name(&self) -> &str {
        &self.s.name
    }

    /// Shrinks the capacity to `fraction` (0 to 1) of the configured one, evicting at once
    /// what no longer fits; `1.0` restores it. Call it from a memory-pressure subscriber
    /// (for example `veza-mempool`'s `MemoryBudget`): high pressure → 0.5, critical → 0.1.
    pub fn shrink_to_fraction(&self, fraction: f64) {
        let fraction = if fraction.is_nan() {
            1.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        let capacity = ((self.s.capacity as f64 * fraction) as u64).max(1);
        self.s.current_capacity.store(capacity, Relaxed);
        self.s.inner.set_capacity(capacity);
    }

    /// Removes `key` if it is (still) an expired entry.
    pub(crate) fn remove_expired<Q>(&self, key: &Q)
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let now = Instant::now();
        if self
            .s
            .inner
            .remove_if(key, |slot| slot.expired(now, self.s.idle))
            .is_some()
        {
            self.s.counters.add(Event::EvictExpired, 1);
        }
    }

    /// How many shards the capacity is split over ([`CacheBuilder::shards`]).
    pub fn shards(&self) -> usize {
        self.s.inner.num_shards()
    }

    /// The values held now and not expired, with their keys (cached absences are not
    /// values), to persist a cache and warm another after a restart. Weakly consistent: the
    /// shards are read one at a time, so an entry inserted or removed meanwhile may or may not
    /// be seen. Reading does not count as a hit and does not touch the eviction policy.
    pub fn iter(&self) -> impl Iterator<Item = (K, V)> + '_ {
        let now = Instant::now();
        let idle = self.s.idle;
        self.s.inner.iter().filter_map(move |(k, slot)| match slot {
            Slot::Value { ref value, .. } if !slot.expired(now, idle) => Some((k, value.clone())),
            _ => None,
        })
    }

    /// Statistics now; also publishes them as metrics.
    pub fn stats(&self) -> CacheStats {
        self.s.stats()
    }

    /// Whether a weigher sets the capacity (bytes) rather than the entry count.
    pub fn is_weighed(&self) -> bool {
        self.s.weighed
    }
}

impl<K, V> Shared<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn stats(&self) -> CacheStats {
        let c = &self.counters;
        let mut s = CacheStats::default();
        s.hits = c.total(Event::Hit);
        s.misses = c.total(Event::Miss);
        s.inserts = c.total(Event::Insert);
        s.evictions_size = c.total(Event::EvictSize);
        s.evictions_expired = c.total(Event::EvictExpired);
        s.evictions_explicit = c.total(Event::EvictExplicit);
        s.loads = c.total(Event::Load);
        s.load_failures = c.total(Event::LoadFailure);
        s.entries = self.inner.len() as u64;
        s.weighted_size = self.inner.weight();
        s.capacity = self.current_capacity.load(Relaxed);
        self.metrics.get().publish(&s);
        s
    }
}

impl<K, V> Publish for Shared<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn publish(&self) {
        self.metrics.refresh(|| CacheMetrics::new(&self.name));
        let _ = self.stats();
    }
}

impl<K, V> Observe for Cache<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    type Snapshot = CacheStats;

    fn snapshot(&self) -> CacheStats {
        self.stats()
    }
}

impl<K, V> fmt::Debug for Cache<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.s.name)
            .field("capacity", &self.s.capacity)
            .field("entries", &self.s.inner.len())
            .field("shards", &self.s.inner.num_shards())
            .field("ttl", &self.s.ttl)
            .finish_non_exhaustive()
    }
}
