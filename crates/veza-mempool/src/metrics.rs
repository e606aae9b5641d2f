//! Catalog metrics of a pool, published in batches so that counting stays off the hot path.

use metrics::{Counter, Gauge};
use veza_core::catalog::memory as catalog;

/// Every this many operations on a shard, its counts are published.
pub(crate) const PUBLISH_EVERY: u64 = 1024;

/// Why an object was dropped instead of kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Discard {
    /// The pool (or its shard) held its cap.
    Full,
    /// A buffer too large (or too small) to keep.
    Oversized,
    /// Removed by a trim (memory pressure or an explicit call).
    Trimmed,
}

/// The counts a shard keeps under its lock; `published` is what the recorder has seen.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    pub(crate) returns: u64,
    pub(crate) full: u64,
    pub(crate) oversized: u64,
    pub(crate) trimmed: u64,
}

impl Counts {
    pub(crate) fn discard(&mut self, why: Discard) {
        match why {
            Discard::Full => self.full += 1,
            Discard::Oversized => self.oversized += 1,
            Discard::Trimmed => self.trimmed += 1,
        }
    }

    pub(crate) fn discards(&self) -> u64 {
        self.full + self.oversized + self.trimmed
    }

    pub(crate) fn add(&mut self, other: &Counts) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.returns += other.returns;
        self.full += other.full;
        self.oversized += other.oversized;
        self.trimmed += other.trimmed;
    }
}

/// The registered handles of one pool.
pub(crate) struct PoolMetrics {
    hits: Counter,
    misses: Counter,
    returns: Counter,
    discards: [Counter; 3],
    idle: Gauge,
    retained: Gauge,
}

impl PoolMetrics {
    pub(crate) fn new(pool: &str) -> PoolMetrics {
        let pool = pool.to_owned();
        let discards = ["full", "oversized", "trimmed"].map(|reason| {
            metrics::counter!(catalog::POOL_DISCARDS.name, "pool" => pool.clone(), "reason" => reason)
        });
        PoolMetrics {
            hits: metrics::counter!(catalog::POOL_HITS.name, "pool" => pool.clone()),
            misses: metrics::counter!(catalog::POOL_MISSES.name, "pool" => pool.clone()),
            returns: metrics::counter!(catalog::POOL_RETURNS.name, "pool" => pool.clone()),
            discards,
            idle: metrics::gauge!(catalog::POOL_IDLE.name, "pool" => pool.clone()),
            retained: metrics::gauge!(catalog::POOL_RETAINED.name, "pool" => pool),
        }
    }

    /// Adds what happened since `published` and moves `published` up to `now`.
    pub(crate) fn publish_delta(&self, now: &Counts, published: &mut Counts) {
        self.hits.increment(now.hits - published.hits);
        self.misses.increment(now.misses - published.misses);
        self.returns.increment(now.returns - published.returns);
        self.discards[0].increment(now.full - published.full);
        self.discards[1].increment(now.oversized - published.oversized);
        self.discards[2].increment(now.trimmed - published.trimmed);
        *published = *now;
    }

    pub(crate) fn set_gauges(&self, idle: u64, retained_bytes: u64) {
        self.idle.set(idle as f64);
        self.retained.set(retained_bytes as f64);
    }
}
