//! Exact statistics kept cheaply: counters sharded by thread, so a hit costs one add on memory
//! no other core writes; and the catalog metrics they are published to.
//!
//! Each of the first [`OWNED`] threads that count gets a shard index of its own, the same in
//! every cache: only that thread writes its shard, so it adds with a plain load and store (no
//! atomic read-modify-write, no cache line moving between cores). When the thread ends, its
//! index goes back to a free list and the next new thread takes it over, counts and all, so
//! nothing is lost and no total goes down. Threads beyond those share the last shard with
//! atomic adds.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

use crossbeam_utils::CachePadded;
use metrics::{Counter, Gauge};
use veza_core::catalog::cache as catalog;

/// Threads with a shard of their own; the shard after them is shared.
const OWNED: usize = 32;
const SHARDS: usize = OWNED + 1;
/// The shared shard's index, and "no index yet" (`usize::MAX`).
const SHARED: usize = OWNED;
const UNSET: usize = usize::MAX;

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

/// Indexes free for a new thread (`next` is the first never used).
struct Free {
    next: usize,
    returned: Vec<usize>,
}

static FREE: Mutex<Free> = Mutex::new(Free {
    next: 0,
    returned: Vec::new(),
});

/// Gives the thread's index back when the thread ends.
struct Owner(usize);

impl Drop for Owner {
    fn drop(&mut self) {
        // Anything this thread counts from now on (other thread-locals' destructors) goes to
        // the shared shard: the index may belong to a new thread in a moment.
        let _ = INDEX.try_with(|i| i.set(SHARED));
        FREE.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .returned
            .push(self.0);
    }
}

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(UNSET) };
    static OWNER: Cell<Option<Owner>> = const { Cell::new(None) };
}

#[inline]
fn shard_index() -> usize {
    let i = INDEX.with(Cell::get);
    if i != UNSET {
        return i;
    }
    claim()
}

#[cold]
fn claim() -> usize {
    let claimed = {
        let mut free = FREE.lock().unwrap_or_else(PoisonError::into_inner);
        match free.returned.pop() {
            Some(i) => Some(i),
            None if free.next < OWNED => {
                free.next += 1;
                Some(free.next - 1)
            }
            None => None,
        }
    };
    let Some(i) = claimed else {
        INDEX.with(|c| c.set(SHARED));
        return SHARED;
    };
    // Register the release first; a thread whose thread-locals are going away shares.
    if OWNER.try_with(|o| o.set(Some(Owner(i)))).is_err() {
        FREE.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .returned
            .push(i);
        INDEX.with(|c| c.set(SHARED));
        return SHARED;
    }
    INDEX.with(|c| c.set(i));
    i
}

/// Adds `n` to `counter`: an atomic add on the `shared` shard, else a plain load and store
/// (only this thread writes its own shard).
#[inline(always)]
fn bump(counter: &AtomicU64, n: u64, shared: bool) {
    if shared {
        counter.fetch_add(n, Relaxed);
    } else {
        counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
    }
}

impl Counters {
    pub(crate) fn new() -> Counters {
        Counters {
            shards: (0..SHARDS).map(|_| CachePadded::default()).collect(),
        }
    }

    #[inline]
    pub(crate) fn add(&self, event: Event, n: u64) {
        let i = shard_index();
        bump(&self.shards[i].0[event as usize], n, i == SHARED);
    }

    /// Two adds with one look-up of the thread's shard (an insert and its evictions).
    #[inline]
    pub(crate) fn add_two(&self, a: Event, n: u64, b: Event, m: u64) {
        let i = shard_index();
        let shard = &self.shards[i].0;
        bump(&shard[a as usize], n, i == SHARED);
        bump(&shard[b as usize], m, i == SHARED);
    }

    pub(crate) fn total(&self, event: Event) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0[event as usize].load(Relaxed))
            .fold(0u64, u64::wrapping_add)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_from_many_threads_add_up_exactly() {
        let counters = Arc::new(Counters::new());
        // More threads than owned shards, in waves, so indexes are handed over; each wave's
        // threads all hold their index at once (the barrier), so the shared shard is used too.
        for _ in 0..3 {
            let all = Arc::new(std::sync::Barrier::new(OWNED + 8));
            let threads: Vec<_> = (0..OWNED + 8)
                .map(|_| {
                    let (c, all) = (Arc::clone(&counters), Arc::clone(&all));
                    std::thread::spawn(move || {
                        c.add(Event::Hit, 1);
                        all.wait();
                        for _ in 1..1000 {
                            c.add(Event::Hit, 1);
                            // An insert and its evictions, counted together.
                            c.add_two(Event::Insert, 1, Event::EvictSize, 3);
                        }
                        c.add(Event::Miss, 2);
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
        }
        assert_eq!(counters.total(Event::Hit), 3 * (OWNED as u64 + 8) * 1000);
        assert_eq!(counters.total(Event::Miss), 3 * (OWNED as u64 + 8) * 2);
        assert_eq!(counters.total(Event::Insert), 3 * (OWNED as u64 + 8) * 999);
        assert_eq!(
            counters.total(Event::EvictSize),
            3 * (OWNED as u64 + 8) * 2997
        );
    }
}
