//! Exact statistics kept cheaply: counters sharded by thread, so a hit costs one uncontended
//! atomic add; and the catalog metrics they are published to.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use crossbeam_utils::CachePadded;
use metrics::{Counter, Gauge};
use veza_core::catalog::cache as catalog;

const SHARDS: usize = 16;

/// What a cache counts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    Hit = 0,
    Miss,
    Insert,
    EvictSize,
    EvictExpired,
    EvictExplicit,
    Load,
    LoadFailure,
}

const EVENTS: usize = 8;

#[derive(Default)]
struct Shard([AtomicU64; EVENTS]);

/// Counters sharded by thread.
pub(crate) struct Counters {
    shards: Box<[CachePadded<Shard>]>,
}

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[inline]
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    SHARD.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT.fetch_add(1, Relaxed) % SHARDS;
            s.set(i);
        }
        i
    })
}

impl Counters {
    pub(crate) fn new() -> Counters {
        Counters {
            shards: (0..SHARDS).map(|_| CachePadded::default()).collect(),
        }
    }

    #[inline]
    pub(crate) fn add(&self, event: Event, n: u64) {
        self.shards[shard_index()].0[event as usize].fetch_add(n, Relaxed);
    }

    pub(crate) fn total(&self, event: Event) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0[event as usize].load(Relaxed))
            .sum()
    }
}

/// The catalog metrics of one cache, labelled with its name.
pub(crate) struct CacheMetrics {
    hits: Counter,
    misses: Counter,
    inserts: Counter,
    evictions: [Counter; 3],
    loads: [Counter; 2],
    hit_ratio: Gauge,
    entries: Gauge,
    memory: Gauge,
}

impl CacheMetrics {
    pub(crate) fn new(name: &str) -> CacheMetrics {
        let cache = name.to_owned();
        CacheMetrics {
            hits: metrics::counter!(catalog::HITS.name, "cache" => cache.clone()),
            misses: metrics::counter!(catalog::MISSES.name, "cache" => cache.clone()),
            inserts: metrics::counter!(catalog::INSERTS.name, "cache" => cache.clone()),
            evictions: ["size", "expired", "explicit"].map(|cause| {
                metrics::counter!(catalog::EVICTIONS.name, "cache" => cache.clone(), "cause" => cause)
            }),
            loads: ["ok", "error"].map(|outcome| {
                metrics::counter!(catalog::LOADS.name, "cache" => cache.clone(), "outcome" => outcome)
            }),
            hit_ratio: metrics::gauge!(catalog::HIT_RATIO.name, "cache" => cache.clone()),
            entries: metrics::gauge!(catalog::ENTRIES.name, "cache" => cache.clone()),
            memory: metrics::gauge!(catalog::MEMORY_USAGE.name, "cache" => cache),
        }
    }

    /// Publishes a snapshot (counters with `absolute`, so publishing again is harmless).
    pub(crate) fn publish(&self, s: &veza_core::CacheStats) {
        self.hits.absolute(s.hits);
        self.misses.absolute(s.misses);
        self.inserts.absolute(s.inserts);
        self.evictions[0].absolute(s.evictions_size);
        self.evictions[1].absolute(s.evictions_expired);
        self.evictions[2].absolute(s.evictions_explicit);
        self.loads[0].absolute(s.loads - s.load_failures);
        self.loads[1].absolute(s.load_failures);
        self.hit_ratio.set(s.hit_ratio());
        self.entries.set(s.entries as f64);
        self.memory.set(s.weighted_size as f64);
    }
}
