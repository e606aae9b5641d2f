//! What the cache stores per key, how it is weighed, and the hook that counts evictions.

use std::sync::Arc;
use std::time::Instant;

use veza_core::SharedError;

use crate::stats::{Counters, Event};

/// A stored value, a cached absence (negative caching), or the error of a load that failed,
/// kept just long enough to hand it to the callers waiting on that load.
#[derive(Clone)]
pub(crate) enum Slot<V> {
    Value { value: V, expires: Option<Instant> },
    Absent { expires: Instant },
    Failed(SharedError),
}

impl<V> Slot<V> {
    /// Whether the entry is past its time to live at `now` (errors never count as fresh).
    pub(crate) fn expired(&self, now: Instant) -> bool {
        match self {
            Slot::Value { expires, .. } => expires.is_some_and(|e| now >= e),
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
