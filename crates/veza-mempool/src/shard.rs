//! Per-thread shards: each thread uses one shard's lock, so threads rarely contend.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use parking_lot::{Mutex, MutexGuard};

/// `S` behind one lock per shard; a thread keeps to the shard it was given first.
pub(crate) struct Sharded<S> {
    shards: Box<[Padded<Mutex<S>>]>,
}

/// Keeps each shard's lock on its own cache line.
#[repr(align(128))]
struct Padded<T>(T);

thread_local! {
    static THREAD_INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// A small number that differs between threads (assigned round-robin on first use).
#[inline]
fn thread_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    THREAD_INDEX.with(|i| {
        if i.get() == usize::MAX {
            i.set(NEXT.fetch_add(1, Relaxed));
        }
        i.get()
    })
}

impl<S> Sharded<S> {
    /// One shard per available core (rounded up to a power of two), built by `make(index, count)`.
    pub(crate) fn new(mut make: impl FnMut(usize, usize) -> S) -> Self {
        let count = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .next_power_of_two();
        Sharded {
            shards: (0..count)
                .map(|i| Padded(Mutex::new(make(i, count))))
                .collect(),
        }
    }

    /// The number of shards, a power of two.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.shards.len()
    }

    /// The index of the calling thread's own shard.
    #[inline]
    pub(crate) fn home(&self) -> usize {
        thread_index() & (self.shards.len() - 1)
    }

    #[inline]
    pub(crate) fn lock(&self, index: usize) -> MutexGuard<'_, S> {
        self.shards[index].0.lock()
    }

    /// Runs `f` on the home shard, then on each other shard in turn, until it returns `Some`.
    pub(crate) fn find_map<R>(&self, mut f: impl FnMut(&mut S) -> Option<R>) -> Option<R> {
        let home = self.home();
        let n = self.shards.len();
        (0..n).find_map(|k| f(&mut self.lock((home + k) & (n - 1))))
    }

    /// Runs `f` on every shard.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&mut S)) {
        for shard in self.shards.iter() {
            f(&mut shard.0.lock());
        }
    }
}

/// Splits `total` into `count` parts that differ by at most one and add up to `total`.
pub(crate) fn share(total: usize, index: usize, count: usize) -> usize {
    total / count + usize::from(index < total % count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        for (total, count) in [(10, 4), (1, 4), (0, 2), (7, 1)] {
            let sum: usize = (0..count).map(|i| share(total, i, count)).sum();
            assert_eq!(sum, total);
        }
    }

    #[test]
    fn find_map_visits_every_shard() {
        let sharded = Sharded::new(|i, _| i);
        let mut seen = Vec::new();
        let none: Option<()> = sharded.find_map(|s| {
            seen.push(*s);
            None
        });
        assert!(none.is_none());
        seen.sort_unstable();
        assert_eq!(seen, (0..sharded.len()).collect::<Vec<_>>());
    }
}
