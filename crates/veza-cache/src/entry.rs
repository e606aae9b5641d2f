//! What the cache stores per key, how it is weighed, and the hook that counts evictions.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use veza_core::SharedError;

use crate::stats::{Counters, Event};

/// A stored value, a cached absence (negative caching), or the error of a load that failed,
/// kept just long enough to hand it to the callers waiting on that load.
#[derive(Clone)]
pub(crate) enum Slot<V> {
    Value {
        value: V,
        expires: Option<Instant>,
        /// With a time to idle: the last read, in milliseconds since the cache's epoch.
        touched: Option<Arc<AtomicU64>>,
    },
    Absent {
        expires: Instant,
    },
    Failed(SharedError),
}

/// The clock of time-to-idle: an epoch and the idle limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Idle {
    pub(crate) epoch: Instant,
    pub(crate) limit: Duration,
}

impl Idle {
    /// Milliseconds since the epoch at `now`.
    pub(crate) fn ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }
}

impl<V> Slot<V> {
    /// Whether the entry is past its time to live, or idle too long, at `now` (errors never
    /// count as fresh).
    pub(crate) fn expired(&self, now: Instant, idle: Option<Idle>) -> bool {
        match self {
            Slot::Value {
                expires, touched, ..
            } => {
                expires.is_some_and(|e| now >= e)
                    || match (touched, idle) {
                        (Some(t), Some(idle)) => {
                            idle.ms(now).saturating_sub(t.load(Relaxed))
                                > u64::try_from(idle.limit.as_millis()).unwrap_or(u64::MAX)
                        }
                        _ => false,
                    }
            }
            Slot::Absent { expires } => now >= *expires,
            Slot::Failed(_) => true,
        }
    }
}

/// Weighs user values with the user's weigher; absences and errors weigh 1.
pub(crate) type WeighFn<K, V> = Arc<dyn Fn(&K, &V) -> u64 + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Weigher<K, V>(pub(crate) Option<WeighFn<K, V>>);

impl<K, V> quick_cache::Weighter<K, Slot<V>> for Weigher<K, V> {
    #[inline]
    fn weight(&self, key: &K, slot: &Slot<V>) -> u64 {
        match (&self.0, slot) {
            (Some(weigh), Slot::Value { value, .. }) => weigh(key, value).max(1),
            _ => 1,
        }
    }
}

/// Counts entries evicted to respect the capacity.
#[derive(Clone)]
pub(crate) struct Hooks {
    pub(crate) counters: Arc<Counters>,
}

impl<K, V> quick_cache::Lifecycle<K, Slot<V>> for Hooks {
    type RequestState = ();

    #[inline]
    fn on_evict(&self, _state: &mut (), _key: K, _slot: Slot<V>) {
        self.counters.add(Event::EvictSize, 1);
    }
}
