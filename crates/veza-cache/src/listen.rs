//! Eviction listeners: what left the cache and why, delivered after the shard's lock is
//! released, on the thread whose call removed the entries (as moka's sync cache does).

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::entry::Slot;

/// Why an entry left the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// Evicted to keep the cache within its capacity.
    Capacity,
    /// Past its time to live or idle, found on a read.
    Expired,
    /// Removed by `invalidate`, `invalidate_if` or `invalidate_all`.
    Invalidated,
    /// Replaced by an insert under the same key.
    Replaced,
}

type Callback<K, V> = dyn Fn(K, V, RemovalCause) + Send + Sync;

/// A listener and the count of its panics.
pub(crate) struct Listener<K, V> {
    callback: Arc<Callback<K, V>>,
    panics: Arc<AtomicU64>,
}

impl<K, V> Clone for Listener<K, V> {
    fn clone(&self) -> Self {
        Listener {
            callback: self.callback.clone(),
            panics: self.panics.clone(),
        }
    }
}

impl<K, V> Listener<K, V> {
    pub(crate) fn new(callback: impl Fn(K, V, RemovalCause) + Send + Sync + 'static) -> Self {
        Listener {
            callback: Arc::new(callback),
            panics: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Calls the listener for each removal. A panicking listener does not unwind into the
    /// cache's caller: the panic is counted ([`Cache::listener_panics`](crate::Cache)) and
    /// the next removal is delivered as usual.
    #[inline(never)]
    pub(crate) fn deliver(&self, removals: Vec<(K, V, RemovalCause)>) {
        for (key, value, cause) in removals {
            let call = AssertUnwindSafe(|| (self.callback)(key, value, cause));
            if catch_unwind(call).is_err() {
                self.panics.fetch_add(1, Relaxed);
            }
        }
    }

    pub(crate) fn panics(&self) -> u64 {
        self.panics.load(Relaxed)
    }
}

impl<K, V> fmt::Debug for Listener<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener").finish_non_exhaustive()
    }
}

/// What one call removed: counts, and the values for a listener if there is one.
pub(crate) struct Removals<K, V> {
    listening: bool,
    list: Vec<(K, V, RemovalCause)>,
    /// Evicted for capacity.
    pub(crate) evicted: u64,
    /// Dropped by a predicate.
    pub(crate) dropped: u64,
}

impl<K, V> Removals<K, V> {
    pub(crate) fn new(listening: bool) -> Self {
        Removals {
            listening,
            list: Vec::new(),
            evicted: 0,
            dropped: 0,
        }
    }

    /// Whether removed entries are kept for a listener.
    #[inline]
    pub(crate) fn listening(&self) -> bool {
        self.listening
    }

    /// Records a removed entry (user values only: cached absences are not values).
    #[inline]
    pub(crate) fn removed(&mut self, key: K, slot: Slot<V>, cause: RemovalCause) {
        if self.listening {
            if let Slot::Value { value, .. } = slot {
                self.list.push((key, value, cause));
            }
        }
    }

    pub(crate) fn into_list(self) -> Vec<(K, V, RemovalCause)> {
        self.list
    }
}
