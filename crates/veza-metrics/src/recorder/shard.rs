//! Per-thread slots: where counters and histograms count without an atomic read-modify-write.
//!
//! Every series that counts (a counter, a histogram's buckets and sum) owns a range of slot
//! numbers. Each thread that records has a [`Shard`], an array of slots only that thread
//! writes, so an increment is a plain load and store on memory no other core writes: no
//! `lock`-prefixed instruction, no cache line moving between cores when many threads hit the
//! same counter. A scrape sums the slot over every shard.
//!
//! A thread that ends hands its shard back to a free list and the next new thread takes it over,
//! values and all: nothing is folded, so a counter never goes down, and the number of shards is
//! the most threads that ever recorded at once. Ownership passes through a mutex, so the
//! new owner sees the old one's last stores.
//!
//! Where a thread has no shard (while its thread-locals are being destroyed) it records into a
//! shared shard with atomic read-modify-writes. A series whose slots did not fit (more than a
//! million slots in use) keeps its own atomics the same way.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{LazyLock, Mutex, OnceLock, PoisonError};

/// Slots per chunk (8 KiB of them); a series' range never crosses a chunk.
pub(crate) const CHUNK: usize = 1 << CHUNK_BITS;
const CHUNK_BITS: usize = 10;
const CHUNK_MASK: usize = CHUNK - 1;
/// Chunks per shard, allocated on first use: a thread only pays for the chunks it touches.
const CHUNKS: usize = 1024;

/// One thread's slots (or the shared ones). The chunk table is inline, so that from the
/// thread's shard to a slot is one load of the chunk's pointer.
pub(crate) struct Shard {
    chunks: [OnceLock<Box<[AtomicU64]>>; CHUNKS],
}

impl Shard {
    fn new() -> Shard {
        Shard {
            chunks: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// The slots `base..base + len` (within one chunk), allocating the chunk on first use.
    #[inline]
    fn range(&self, base: usize, len: usize) -> &[AtomicU64] {
        let cell = &self.chunks[base >> CHUNK_BITS];
        let chunk = match cell.get() {
            Some(chunk) => chunk,
            None => Shard::first_use(cell),
        };
        let start = base & CHUNK_MASK;
        &chunk[start..start + len]
    }

    /// A chunk's slots, allocated (out of the increment's way).
    #[cold]
    #[inline(never)]
    fn first_use(cell: &OnceLock<Box<[AtomicU64]>>) -> &[AtomicU64] {
        cell.get_or_init(|| (0..CHUNK).map(|_| AtomicU64::new(0)).collect())
    }

    /// The slot's value, without allocating (an untouched chunk holds zeros).
    #[inline]
    fn read(&self, slot: usize) -> u64 {
        self.chunks[slot >> CHUNK_BITS]
            .get()
            .map_or(0, |chunk| chunk[slot & CHUNK_MASK].load(Relaxed))
    }
}

struct Global {
    /// The shared shard: atomic read-modify-writes only.
    shared: Shard,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Every shard ever made, owned or free. Never freed (a thread's shard outlives it, for
    /// the next thread), hence `'static`.
    all: Vec<&'static Shard>,
    /// Shards whose thread ended, for the next new thread.
    free: Vec<&'static Shard>,
    /// The next never-used slot.
    next: usize,
    /// Freed ranges by length.
    freed: HashMap<usize, Vec<usize>>,
}

static GLOBAL: LazyLock<Global> = LazyLock::new(|| Global {
    shared: Shard::new(),
    state: Mutex::new(State::default()),
});

fn state() -> std::sync::MutexGuard<'static, State> {
    GLOBAL.state.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    /// This thread's shard, once claimed: a const thread-local without a destructor, so an
    /// increment reads it with one load and no lazy-initialization check.
    static SHARD: Cell<Option<&'static Shard>> = const { Cell::new(None) };
    /// Gives the shard back when the thread ends.
    static OWNER: Cell<Option<Owner>> = const { Cell::new(None) };
}

/// The claim on a thread's shard, returned to the free list when the thread ends.
struct Owner(&'static Shard);

impl Drop for Owner {
    fn drop(&mut self) {
        // What this thread records from now on (in other thread-locals' destructors) goes to
        // the shared shard: this one may belong to a new thread in a moment.
        let _ = SHARD.try_with(|s| s.set(None));
        state().free.push(self.0);
    }
}

/// This thread's shard; `None` while its thread-locals are being destroyed (record into the
/// shared shard then).
#[inline]
fn local() -> Option<&'static Shard> {
    match SHARD.with(Cell::get) {
        Some(shard) => Some(shard),
        None => claim(),
    }
}

/// Takes a free shard (or makes one) for this thread, its owner recording the return. `None`
/// once the owner is gone (the thread's thread-locals are being destroyed): then no shard is
/// taken, and no trip is made through the free list's lock.
#[cold]
fn claim() -> Option<&'static Shard> {
    let shard = OWNER
        .try_with(|owner| {
            let shard = {
                let mut state = state();
                match state.free.pop() {
                    Some(shard) => shard,
                    None => {
                        let shard: &'static Shard = Box::leak(Box::new(Shard::new()));
                        state.all.push(shard);
                        shard
                    }
                }
            };
            owner.set(Some(Owner(shard)));
            shard
        })
        .ok()?;
    SHARD.with(|s| s.set(Some(shard)));
    Some(shard)
}

/// A series' slots: a range in every shard, or atomics of its own when none was free.
pub(crate) enum Slots {
    Sharded { base: usize, len: usize },
    Own(Box<[AtomicU64]>),
}

impl Slots {
    /// `len` slots, zero in every shard (atomics of its own past [`CHUNK`]).
    pub(crate) fn new(len: usize) -> Slots {
        debug_assert!(len > 0);
        let mut state = state();
        if let Some(base) = state.freed.get_mut(&len).and_then(Vec::pop) {
            return Slots::Sharded { base, len };
        }
        // Never across a chunk: skip the end of the current one.
        let mut base = state.next;
        if (base & CHUNK_MASK) + len > CHUNK {
            base = (base | CHUNK_MASK) + 1;
        }
        if base + len > CHUNK * CHUNKS || len > CHUNK {
            drop(state);
            return Slots::Own((0..len).map(|_| AtomicU64::new(0)).collect());
        }
        state.next = base + len;
        Slots::Sharded { base, len }
    }

    /// Adds `n` to slot `i` (saturating).
    #[inline]
    pub(crate) fn add(&self, i: usize, n: u64) {
        // The common case inline (a claimed shard, a sharded series); the rest out of line, so
        // that an increment saves few registers.
        if let (Slots::Sharded { base, len }, Some(shard)) = (self, SHARD.with(Cell::get)) {
            owned_add(&shard.range(*base, *len)[i], n);
        } else {
            self.add_slow(i, n);
        }
    }

    /// [`add`](Slots::add) for a thread without its shard yet (or any more), or a series with
    /// atomics of its own.
    #[cold]
    #[inline(never)]
    fn add_slow(&self, i: usize, n: u64) {
        match self.slots_off_the_fast_path() {
            (slots, true) => owned_add(&slots[i], n),
            (slots, false) => shared_add(&slots[i], n),
        }
    }

    /// Adds `n` to the count in slot `i` and `x` to the float in slot `f` (a histogram's
    /// bucket and sum), with one lookup of the thread's shard.
    #[inline]
    pub(crate) fn add_with_sum(&self, i: usize, n: u64, f: usize, x: f64) {
        if let (Slots::Sharded { base, len }, Some(shard)) = (self, SHARD.with(Cell::get)) {
            owned_add_with_sum(shard.range(*base, *len), i, n, f, x);
        } else {
            self.add_with_sum_slow(i, n, f, x);
        }
    }

    /// [`add_with_sum`](Slots::add_with_sum) off the common case (see [`add_slow`](Slots::add_slow)).
    #[cold]
    #[inline(never)]
    fn add_with_sum_slow(&self, i: usize, n: u64, f: usize, x: f64) {
        match self.slots_off_the_fast_path() {
            (slots, true) => owned_add_with_sum(slots, i, n, f, x),
            (slots, false) => {
                shared_add(&slots[i], n);
                shared_add_f64(&slots[f], x);
            }
        }
    }

    /// Where a record goes when the fast path does not apply, and whether only this thread
    /// writes there: the thread's shard (claimed now), else the shared shard, or the series'
    /// own atomics (both shared: atomic read-modify-writes).
    fn slots_off_the_fast_path(&self) -> (&[AtomicU64], bool) {
        match self {
            Slots::Sharded { base, len } => match local() {
                Some(shard) => (shard.range(*base, *len), true),
                None => (GLOBAL.shared.range(*base, *len), false),
            },
            Slots::Own(slots) => (slots, false),
        }
    }

    /// The sum of slot `i` over every shard (saturating).
    pub(crate) fn read(&self, i: usize, shards: &Shards) -> u64 {
        match self {
            Slots::Sharded { base, .. } => shards
                .iter()
                .fold(0u64, |sum, shard| sum.saturating_add(shard.read(base + i))),
            Slots::Own(slots) => slots[i].load(Relaxed),
        }
    }

    /// The sum of the float in slot `i` over every shard.
    pub(crate) fn read_f64(&self, i: usize, shards: &Shards) -> f64 {
        match self {
            Slots::Sharded { base, .. } => shards
                .iter()
                .map(|shard| f64::from_bits(shard.read(base + i)))
                .sum(),
            Slots::Own(slots) => f64::from_bits(slots[i].load(Relaxed)),
        }
    }
}

impl Drop for Slots {
    /// No handle is left (the series is dropped), so no thread writes these slots: zero them
    /// everywhere and give the range back.
    fn drop(&mut self) {
        if let Slots::Sharded { base, len } = *self {
            let mut state = state();
            for shard in state.all.iter().copied().chain([&GLOBAL.shared]) {
                for slot in base..base + len {
                    if let Some(chunk) = shard.chunks[slot >> CHUNK_BITS].get() {
                        chunk[slot & CHUNK_MASK].store(0, Relaxed);
                    }
                }
            }
            state.freed.entry(len).or_default().push(base);
        }
    }
}

/// Adds `n` to a slot of the thread's own shard: a load and a store (only this thread writes
/// it), saturating.
#[inline(always)]
fn owned_add(slot: &AtomicU64, n: u64) {
    slot.store(slot.load(Relaxed).saturating_add(n), Relaxed);
}

/// Adds `n` to count `i` and `x` to float `f` of the thread's own `slots`.
#[inline(always)]
fn owned_add_with_sum(slots: &[AtomicU64], i: usize, n: u64, f: usize, x: f64) {
    owned_add(&slots[i], n);
    let sum = &slots[f];
    sum.store((f64::from_bits(sum.load(Relaxed)) + x).to_bits(), Relaxed);
}

fn shared_add(a: &AtomicU64, n: u64) {
    let _ = a.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_add(n)));
}

fn shared_add_f64(a: &AtomicU64, x: f64) {
    let _ = a.fetch_update(Relaxed, Relaxed, |v| {
        Some((f64::from_bits(v) + x).to_bits())
    });
}

/// Every shard at one moment (the shared one included), for a scrape to sum over.
pub(crate) struct Shards(Vec<&'static Shard>);

impl Shards {
    pub(crate) fn now() -> Shards {
        Shards(state().all.clone())
    }

    fn iter(&self) -> impl Iterator<Item = &Shard> {
        self.0.iter().copied().chain([&GLOBAL.shared])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn threads_count_apart_and_the_sum_sees_them_all() {
        let slots = Arc::new(Slots::new(3));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let slots = Arc::clone(&slots);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        slots.add(0, 1);
                        slots.add_with_sum(1, 1, 2, 0.5);
                    }
                    slots.add(0, t);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let shards = Shards::now();
        // Ended threads' shards keep their values: nothing is lost when a thread ends.
        assert_eq!(slots.read(0, &shards), 40_000 + 6);
        assert_eq!(slots.read(1, &shards), 40_000);
        assert_eq!(slots.read_f64(2, &shards), 20_000.0);
    }

    #[test]
    fn records_made_while_a_thread_ends_are_kept() {
        struct Late(Arc<Slots>);
        impl Drop for Late {
            fn drop(&mut self) {
                self.0.add(0, 5);
                self.0.add_with_sum(1, 1, 2, 0.25);
            }
        }
        thread_local! {
            static LATE: std::cell::RefCell<Option<Late>> = const { std::cell::RefCell::new(None) };
        }
        let slots = Arc::new(Slots::new(3));
        let theirs = Arc::clone(&slots);
        std::thread::spawn(move || {
            // Registered before the thread claims a shard, so (destructors running in reverse)
            // it records after the shard went back: into the shared shard.
            LATE.with(|l| *l.borrow_mut() = Some(Late(Arc::clone(&theirs))));
            theirs.add(0, 1);
            theirs.add_with_sum(1, 1, 2, 0.5);
        })
        .join()
        .unwrap();
        let shards = Shards::now();
        assert_eq!(slots.read(0, &shards), 6);
        assert_eq!(slots.read(1, &shards), 2);
        assert_eq!(slots.read_f64(2, &shards), 0.75);
        // The late ones went to the shared shard (no thread owns it: only these wrote there).
        let Slots::Sharded { base, .. } = *slots else {
            panic!("sharded")
        };
        assert_eq!(GLOBAL.shared.read(base), 5);
        assert_eq!(GLOBAL.shared.read(base + 1), 1);
    }

    #[test]
    fn freed_ranges_come_back_zeroed_and_ranges_never_cross_a_chunk() {
        let a = Slots::new(5);
        a.add(4, 7);
        let Slots::Sharded { base, .. } = a else {
            panic!("sharded")
        };
        drop(a);
        // Another test may take the freed range first; then this one is fresh anyway.
        let b = Slots::new(5);
        assert_eq!(b.read(4, &Shards::now()), 0, "range at {base} reused dirty");
        for len in [CHUNK, 17, CHUNK - 1] {
            if let Slots::Sharded { base, len } = Slots::new(len) {
                assert_eq!(base >> CHUNK_BITS, (base + len - 1) >> CHUNK_BITS);
            }
        }
        b.add(0, u64::MAX);
        b.add(0, 5);
        assert_eq!(b.read(0, &Shards::now()), u64::MAX, "saturates");
    }
}
