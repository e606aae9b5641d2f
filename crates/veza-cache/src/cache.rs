//! [`Cache`]: a bounded concurrent cache with exact statistics, lazy time to live and
//! invalidation by key, by predicate or all.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use equivalent::Equivalent;
use veza_core::publish::{Late, Publish};
use veza_core::{CacheStats, Observe};

use crate::config::CacheBuilder;
use crate::entry::{Idle, NEVER, Slot, Weigher, deadline, nanos};
use crate::flight::Flights;
use crate::listen::{Listener, RemovalCause};
use crate::stats::{CacheMetrics, Counters, Event};
use crate::store::Store;

/// What a lookup found.
pub(crate) enum Lookup<V> {
    Value(V),
    /// A cached "not found".
    Absent,
    /// A value past its time to live but within the fail-safe grace: a miss, kept as the
    /// fallback of a load that fails.
    Stale(V),
    /// The error of a load that just failed (about to be removed).
    Failed(veza_core::SharedError),
    Missing,
}

/// A bounded, concurrent, in-process cache.
///
/// Sharded read-write locks over hash tables, evicting by S3-FIFO with a frequency contest at
/// the door of its main queue (see the crate documentation): a hit takes a shard's read lock,
/// clones the value, credits the entry with a read (a load and a store) and adds one to a hit
/// counter only the calling thread writes. Values are cloned on every read, so wrap large ones
/// in `Arc`.
///
/// - Capacity in entries, or in weight with a weigher ([`CacheBuilder::max_weight`]). The
///   capacity is split evenly over the shards ([`CacheBuilder::shards`]; by default 4 per
///   core, fewer so each holds at least 256 entries), and each shard evicts once its own
///   share is full. So a cache of `n` never holds more than `n`, and holds a little under `n`
///   distinct keys when the keys do not spread perfectly evenly over the shards; with one
///   shard it holds exactly `n`. A new key is always stored, but once the cache is full it
///   starts in a small probation queue (3% of the capacity) and leaves soon unless it is read
///   there, comes back soon after, or proves more popular than what it would replace.
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
    pub(crate) store: Store<K, V>,
    pub(crate) flights: Arc<Flights<K, V>>,
    pub(crate) listener: Option<Listener<K, V>>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) idle: Option<Idle>,
    pub(crate) negative_ttl: Option<Duration>,
    /// The fail-safe grace past a value's time to live, in nanoseconds.
    pub(crate) fail_safe: Option<u64>,
    #[cfg(feature = "tokio")]
    pub(crate) soft_timeout: Option<Duration>,
    #[cfg(feature = "tokio")]
    pub(crate) hard_timeout: Option<Duration>,
    /// Refresh-ahead: how long before its expiry a hit starts a reload, in nanoseconds.
    #[cfg(feature = "tokio")]
    pub(crate) refresh_ahead: Option<u64>,
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
        let entries = b
            .estimated_entries
            .map_or(b.capacity, |e| u64::try_from(e).unwrap_or(u64::MAX))
            .max(1);
        let shards = crate::store::shard_count(b.shards, b.capacity, entries);
        let store = Store::new(
            b.capacity,
            entries,
            shards,
            Weigher(b.weigher.clone()),
            counters.clone(),
            b.listener.clone(),
        );
        let shared = Arc::new(Shared {
            store,
            flights: Arc::new(Flights::new(shards)),
            listener: b.listener,
            counters,
            ttl: b.ttl,
            idle: b.tti.map(|limit| Idle {
                epoch: Instant::now(),
                limit,
            }),
            negative_ttl: b.negative_ttl,
            fail_safe: b
                .fail_safe
                .map(|grace| u64::try_from(grace.as_nanos()).unwrap_or(u64::MAX)),
            #[cfg(feature = "tokio")]
            soft_timeout: b.soft_timeout,
            #[cfg(feature = "tokio")]
            hard_timeout: b.hard_timeout,
            #[cfg(feature = "tokio")]
            refresh_ahead: b
                .refresh_ahead
                .map(|ahead| u64::try_from(ahead.as_nanos()).unwrap_or(u64::MAX)),
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
        let found = match self.s.store.get_plain(key) {
            None => None,
            // The common entry: a value without expiry or idle clock (no clock read).
            Some(Ok(value)) => Some(value),
            Some(Err(slot)) => self.timed_value(key, slot),
        };
        let event = if found.is_some() {
            Event::Hit
        } else {
            Event::Miss
        };
        self.s.counters.add(event, 1);
        found
    }

    /// The value of a slot that has an expiry or an idle clock, or is not a value; kept out
    /// of [`get`](Cache::get)'s common path.
    #[inline(never)]
    fn timed_value<Q>(&self, key: &Q, slot: Slot<V>) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        match self.classify(key, slot) {
            Lookup::Value(value) => Some(value),
            Lookup::Absent | Lookup::Stale(_) | Lookup::Failed(_) | Lookup::Missing => None,
        }
    }

    /// What the cache holds for `key` now, without counting; expired entries are removed.
    #[inline]
    pub(crate) fn lookup<Q>(&self, key: &Q) -> Lookup<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        match self.s.store.get(key) {
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
                    let in_grace = |n: Instant| {
                        self.s
                            .fail_safe
                            .is_some_and(|grace| nanos(n) < expires.saturating_add(grace))
                    };
                    if expires != NEVER && now.is_some_and(in_grace) {
                        return Lookup::Stale(value);
                    }
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
        self.s
            .store
            .insert(key, self.value_slot(value, self.s.ttl), true);
    }

    /// Like [`insert`](Cache::insert) with this entry's own time to live instead of the
    /// cache's (per-entry expiry).
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) {
        self.s
            .store
            .insert(key, self.value_slot(value, Some(ttl)), true);
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
        let removed = self
            .s
            .store
            .remove_if(key, RemovalCause::Invalidated, |_| true);
        if removed {
            self.s.counters.add(Event::EvictExplicit, 1);
        }
        removed
    }

    /// Removes every entry for which `predicate(key, value)` is true.
    pub fn invalidate_if(&self, predicate: impl Fn(&K, &V) -> bool) {
        let removed = self.s.store.retain(|k, slot| match slot {
            Slot::Value { value, .. } => !predicate(k, value),
            Slot::Absent { .. } | Slot::Failed(_) => true,
        });
        self.s.counters.add(Event::EvictExplicit, removed);
    }

    /// Removes every entry.
    pub fn invalidate_all(&self) {
        let removed = self.s.store.retain(|_, _| false);
        self.s.counters.add(Event::EvictExplicit, removed);
    }

    /// Entries held now (values, cached absences).
    pub fn len(&self) -> usize {
        self.s.store.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.s.store.len() == 0
    }

    /// The total weight held (the entry count without a weigher).
    pub fn weighted_size(&self) -> u64 {
        self.s.store.weight()
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
        self.s.store.set_capacity(capacity);
    }

    /// Removes `key` if it is (still) an expired entry.
    pub(crate) fn remove_expired<Q>(&self, key: &Q)
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let now = Instant::now();
        if self.s.store.remove_if(key, RemovalCause::Expired, |slot| {
            slot.expired(now, self.s.idle)
        }) {
            self.s.counters.add(Event::EvictExpired, 1);
        }
    }

    /// The entries (keys and values, not cached absences) held now and not expired, to
    /// persist a cache and warm it after a restart. Weakly consistent: the shards are copied
    /// one at a time under their read lock, so an entry inserted or removed meanwhile may or
    /// may not be seen; reading does not count as a hit.
    pub fn iter(&self) -> Iter<K, V> {
        Iter {
            cache: self.clone(),
            shard: 0,
            batch: Vec::new().into_iter(),
        }
    }

    /// How many shards the capacity is split over ([`CacheBuilder::shards`]).
    pub fn shards(&self) -> usize {
        self.s.store.shard_count()
    }

    /// How many calls of the eviction listener panicked (each panic is caught, counted and
    /// the next removal delivered as usual).
    pub fn listener_panics(&self) -> u64 {
        self.s.listener.as_ref().map_or(0, Listener::panics)
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
        s.entries = self.store.len() as u64;
        s.weighted_size = self.store.weight();
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
            .field("entries", &self.s.store.len())
            .field("shards", &self.s.store.shard_count())
            .field("ttl", &self.s.ttl)
            .finish_non_exhaustive()
    }
}

/// The iterator of [`Cache::iter`]: owned copies of the keys and values.
pub struct Iter<K, V> {
    cache: Cache<K, V>,
    shard: usize,
    batch: std::vec::IntoIter<(K, V)>,
}

impl<K, V> Iterator for Iter<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    type Item = (K, V);

    fn next(&mut self) -> Option<(K, V)> {
        loop {
            if let Some(entry) = self.batch.next() {
                return Some(entry);
            }
            let s = &self.cache.s;
            if self.shard >= s.store.shard_count() {
                return None;
            }
            let now = Instant::now();
            let idle = s.idle;
            self.batch = s
                .store
                .collect(self.shard, |k, slot| match slot {
                    Slot::Value { value, .. } if !slot.expired(now, idle) => {
                        Some((k.clone(), value.clone()))
                    }
                    _ => None,
                })
                .into_iter();
            self.shard += 1;
        }
    }
}

impl<K, V> fmt::Debug for Iter<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("shard", &self.shard)
            .finish_non_exhaustive()
    }
}
