//! Point-in-time statistics: [`PoolStats`], [`CacheStats`], [`QueueStats`] and the [`Observe`]
//! trait that produces them.
//!
//! The structs are `#[non_exhaustive]` so fields can be added in minor releases. Outside this
//! crate, build one from `Default` and assign fields:
//!
//! ```
//! let mut stats = veza_core::CacheStats::default();
//! stats.hits = 3;
//! stats.misses = 1;
//! assert_eq!(stats.hit_ratio(), 0.75);
//! ```

/// A component that can report a snapshot of its statistics.
///
/// Taking a snapshot is cheap (a few atomic loads) and never blocks the component's hot path,
/// so monitors may call it on every scrape.
pub trait Observe {
    /// The snapshot type, usually one of [`PoolStats`], [`CacheStats`] or [`QueueStats`].
    type Snapshot;

    /// The component's statistics now.
    fn snapshot(&self) -> Self::Snapshot;
}

impl<T: Observe + ?Sized> Observe for &T {
    type Snapshot = T::Snapshot;
    fn snapshot(&self) -> Self::Snapshot {
        (**self).snapshot()
    }
}

impl<T: Observe + ?Sized> Observe for std::sync::Arc<T> {
    type Snapshot = T::Snapshot;
    fn snapshot(&self) -> Self::Snapshot {
        (**self).snapshot()
    }
}

/// Statistics of a pool of reusable resources: database connections, objects or buffers.
///
/// Gauges (`size`, `idle`, `in_use`, `waiting`) describe now; the `_total`-style counters
/// (`acquired`, `hits`, ...) grow from the pool's creation and never decrease.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct PoolStats {
    /// The most resources the pool keeps (connections open, objects retained).
    pub max_size: u64,
    /// Resources the pool holds now, idle or handed out.
    pub size: u64,
    /// Resources ready to hand out.
    pub idle: u64,
    /// Resources handed out and not yet returned.
    pub in_use: u64,
    /// Callers waiting for a resource.
    pub waiting: u64,
    /// Successful checkouts.
    pub acquired: u64,
    /// Checkouts served by a resource the pool already had.
    pub hits: u64,
    /// Checkouts that had to create a resource.
    pub misses: u64,
    /// Resources given back to the pool.
    pub returns: u64,
    /// Resources dropped instead of kept: returned to a full pool, broken, expired or trimmed.
    pub discards: u64,
    /// Checkouts that gave up waiting.
    pub timeouts: u64,
    /// Bytes the pool retains while idle (buffer pools; 0 where not measured).
    pub retained_bytes: u64,
}

impl PoolStats {
    /// Share of checkouts served without creating a resource, in `0.0..=1.0`; 0 before any.
    pub fn hit_ratio(&self) -> f64 {
        ratio(self.hits, self.hits + self.misses)
    }

    /// Share of `max_size` in use, in `0.0..=1.0`; 0 for a pool without a maximum.
    pub fn utilisation(&self) -> f64 {
        ratio(self.in_use, self.max_size)
    }
}

/// Statistics of a cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups that found a fresh entry.
    pub hits: u64,
    /// Lookups that found nothing (or only an expired entry).
    pub misses: u64,
    /// Entries stored.
    pub inserts: u64,
    /// Entries evicted to respect the capacity.
    pub evictions_size: u64,
    /// Entries removed because their time-to-live or time-to-idle passed.
    pub evictions_expired: u64,
    /// Entries removed by an explicit invalidation.
    pub evictions_explicit: u64,
    /// Loads run by `get_or_load` (one per single-flight group).
    pub loads: u64,
    /// Loads that failed.
    pub load_failures: u64,
    /// Entries held now (may lag behind by pending maintenance).
    pub entries: u64,
    /// Total weight held now: bytes when the cache has a weigher, else the entry count.
    pub weighted_size: u64,
    /// The capacity, in the unit of `weighted_size`.
    pub capacity: u64,
}

impl CacheStats {
    /// `hits / (hits + misses)`, in `0.0..=1.0`; 0 before any lookup.
    pub fn hit_ratio(&self) -> f64 {
        ratio(self.hits, self.hits + self.misses)
    }

    /// Evictions of every cause.
    pub fn evictions(&self) -> u64 {
        self.evictions_size + self.evictions_expired + self.evictions_explicit
    }
}

/// Statistics of a work queue and the workers that drain it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct QueueStats {
    /// Worker threads.
    pub workers: u64,
    /// Workers running a job now.
    pub busy: u64,
    /// The most jobs the queue holds.
    pub capacity: u64,
    /// Jobs queued now, all priorities.
    pub depth: u64,
    /// Jobs queued now by priority: `[high, normal, low]`.
    pub depth_by_priority: [u64; 3],
    /// Jobs accepted.
    pub submitted: u64,
    /// Jobs that ran to completion, including those that panicked.
    pub completed: u64,
    /// Jobs refused (queue full or closed) and handed back.
    pub rejected: u64,
    /// Jobs that panicked.
    pub panicked: u64,
}

impl QueueStats {
    /// Share of the capacity in use, in `0.0..=1.0`; 0 for a queue without capacity.
    pub fn fill_ratio(&self) -> f64 {
        ratio(self.depth, self.capacity)
    }
}

#[allow(
    clippy::cast_precision_loss,
    reason = "statistics ratios tolerate f64 rounding of counts above 2^53"
)]
fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_zero_before_any_event() {
        assert_eq!(CacheStats::default().hit_ratio(), 0.0);
        assert_eq!(PoolStats::default().hit_ratio(), 0.0);
        assert_eq!(PoolStats::default().utilisation(), 0.0);
        assert_eq!(QueueStats::default().fill_ratio(), 0.0);
    }

    #[test]
    fn ratios_use_the_documented_formulas() {
        let cache = CacheStats {
            hits: 9,
            misses: 3,
            evictions_size: 2,
            evictions_expired: 1,
            evictions_explicit: 4,
            ..CacheStats::default()
        };
        assert_eq!(cache.hit_ratio(), 0.75);
        assert_eq!(cache.evictions(), 7);

        let pool = PoolStats {
            max_size: 16,
            in_use: 4,
            hits: 1,
            misses: 1,
            ..PoolStats::default()
        };
        assert_eq!(pool.utilisation(), 0.25);
        assert_eq!(pool.hit_ratio(), 0.5);

        let queue = QueueStats {
            capacity: 1000,
            depth: 250,
            ..QueueStats::default()
        };
        assert_eq!(queue.fill_ratio(), 0.25);
    }

    struct Fixed(QueueStats);
    impl Observe for Fixed {
        type Snapshot = QueueStats;
        fn snapshot(&self) -> QueueStats {
            self.0
        }
    }

    #[test]
    fn observe_works_through_references_and_arcs() {
        let stats = QueueStats {
            depth: 3,
            ..QueueStats::default()
        };
        let shared = std::sync::Arc::new(Fixed(stats));
        assert_eq!(shared.snapshot(), stats);
        fn depth<O: Observe<Snapshot = QueueStats>>(o: O) -> u64 {
            o.snapshot().depth
        }
        assert_eq!(depth(&*shared), 3);
    }
}
