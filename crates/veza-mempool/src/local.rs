//! Per-thread private slots in front of the shards: the common case (a thread gets an object
//! and gives it back) takes no lock at all, like the private slot of Go's `sync.Pool`.
//!
//! Each thread keeps, per pool it uses, one idle object in a thread-local slot. Giving an
//! object back fills the slot when it is empty; getting one empties it. The cap stays exact:
//! a slot holds an object only inside room it reserved in a shard (under that shard's lock,
//! once, then kept), so the shards plus the slots never hold more than the cap. The counts
//! stay exact: each slot counts its hits and returns in atomics only its thread writes (a
//! load and a store), summed into the pool's statistics.
//!
//! Trims and memory pressure bump the pool's epoch: the calling thread's slot is emptied at
//! once, another thread's when it next uses the pool, and every slot when its thread ends (its
//! object goes back to a shard, its reservation and counts to the pool). A slot whose pool is
//! gone is dropped the next time its thread makes a slot.

use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::pool::{Core, Policy};

/// What one thread's slot of one pool counts, readable by the pool.
#[derive(Debug, Default)]
pub(crate) struct SlotCounts {
    pub(crate) hits: AtomicU64,
    pub(crate) returns: AtomicU64,
    /// 0 while the slot is empty, else 1 + the weight of the object it holds (one store says
    /// both whether it holds one and what it weighs).
    held: AtomicU64,
}

impl SlotCounts {
    /// Adds one: only the slot's thread writes these.
    #[inline]
    fn bump(counter: &AtomicU64) {
        counter.store(counter.load(Relaxed).wrapping_add(1), Relaxed);
    }
}

/// The pool's side: its id, its epoch, the live slots' counts and the ended ones' totals.
#[derive(Debug, Default)]
pub(crate) struct Locals {
    id: u64,
    /// Bumped by trims and pressure: slots of an older epoch give their object up.
    pub(crate) epoch: AtomicU64,
    pub(crate) live: Mutex<Vec<Arc<SlotCounts>>>,
    /// Hits and returns of slots whose thread ended.
    pub(crate) retired: Mutex<(u64, u64)>,
    /// What the metrics have seen of the slots' counts.
    pub(crate) published: Mutex<crate::metrics::Counts>,
}

impl Locals {
    pub(crate) fn new() -> Locals {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Locals {
            id: NEXT.fetch_add(1, Relaxed),
            ..Locals::default()
        }
    }

    /// (hits, returns, idle objects, their weight) over every slot, ended ones included.
    pub(crate) fn totals(&self) -> (u64, u64, u64, u64) {
        // Both locks at once (in the order a slot that ends takes them), so a slot moving from
        // live to retired is counted once.
        let retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut hits, mut returns) = *retired;
        let (mut idle, mut weight) = (0, 0);
        for c in live.iter() {
            hits += c.hits.load(Relaxed);
            returns += c.returns.load(Relaxed);
            let held = c.held.load(Relaxed);
            idle += u64::from(held > 0);
            weight += held.saturating_sub(1);
        }
        (hits, returns, idle, weight)
    }
}

/// One thread's slot of one pool.
struct Private<T, P: Policy<T>> {
    core: Weak<Core<T, P>>,
    item: Option<T>,
    weight: u64,
    /// Room reserved in shard `shard` (0: none).
    reserved: u64,
    shard: usize,
    epoch: u64,
    counts: Arc<SlotCounts>,
}

/// How many pools a thread reaches without a search: its last slots, direct-mapped by pool id
/// (ids are consecutive, so the classes of one buffer pool never collide).
const WAYS: usize = 8;

/// One entry of a thread's slot list: the pool's id and its slot, a `Private<T, P>` of that
/// pool's types, owned here through a raw pointer (so that the pointers [`RECENT`] hands out
/// stay valid while the list itself is borrowed or moved), with the two functions that know
/// those types.
struct Entry {
    id: u64,
    /// From `Box::into_raw`; freed by `free` when the entry is dropped.
    slot: NonNull<()>,
    /// Whether the slot's pool is gone.
    gone: unsafe fn(NonNull<()>) -> bool,
    /// Drops the slot (its object goes back to its pool, if the pool is alive).
    free: unsafe fn(NonNull<()>),
}

/// SAFETY (for callers): `slot` is a live `Private<T, P>` from `Box::into_raw`, not borrowed.
unsafe fn gone<T, P: Policy<T>>(slot: NonNull<()>) -> bool {
    // SAFETY: per the function's contract.
    let private = unsafe { slot.cast::<Private<T, P>>().as_ref() };
    private.core.strong_count() == 0
}

/// SAFETY (for callers): `slot` is a live `Private<T, P>` from `Box::into_raw`, not borrowed,
/// and is not used again.
unsafe fn free<T, P: Policy<T>>(slot: NonNull<()>) {
    // SAFETY: per the function's contract: the box is rebuilt once and dropped.
    drop(unsafe { Box::from_raw(slot.cast::<Private<T, P>>().as_ptr()) });
}

impl Drop for Entry {
    fn drop(&mut self) {
        // First out of the recent list, so that code run by the slot's drop (an object's own
        // drop that uses a pool) can no longer reach it.
        forget_recent(self.id);
        // SAFETY: `slot` came from `Box::into_raw` of a `Private` of the types `free` was made
        // for (see `make`); this is its only release, and no reference to it is live: the
        // fast paths hold one only between statements that run no foreign code.
        unsafe { (self.free)(self.slot) }
    }
}

thread_local! {
    /// The slot of each pool this thread used.
    static SLOTS: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
    /// This thread's last slots: `(pool id, *mut Private<T, P>)`, at `id % WAYS`; id 0 (no
    /// pool has it) when empty. An entry points into `SLOTS` and is cleared before the slot it
    /// points to is dropped. No destructor, so reading it never fails, even while the thread
    /// ends.
    static RECENT: [Cell<(u64, *mut ())>; WAYS] =
        const { [const { Cell::new((0, std::ptr::null_mut())) }; WAYS] };
}

/// The slot of pool `id` from the recent list, if it is there.
#[inline(always)]
fn recent(id: u64) -> Option<*mut ()> {
    RECENT.with(|recent| {
        let (at, slot) = recent[id as usize % WAYS].get();
        (at == id).then_some(slot)
    })
}

fn remember(id: u64, slot: *mut ()) {
    RECENT.with(|recent| recent[id as usize % WAYS].set((id, slot)));
}

fn forget_recent(id: u64) {
    RECENT.with(|recent| {
        let cell = &recent[id as usize % WAYS];
        if cell.get().0 == id {
            cell.set((0, std::ptr::null_mut()));
        }
    });
}

/// This thread's slot for `core`, from the recent list or else the slot list (then
/// remembered); with `make`, one is made when there is none. `None` when there is none, or
/// the thread is ending, or its slot list is in use (a drop run by the list itself).
///
/// The pointer is valid until the slot's entry is dropped: only by [`make`] sweeping slots
/// of pools that are gone (never this live pool's) and when the thread ends. Callers turn it
/// into a `&mut` only while they run no foreign code (no drop of an object, no user closure),
/// so no two references to one slot are ever live.
#[inline(always)]
fn slot<T: Send + 'static, P: Policy<T> + 'static>(
    core: &Core<T, P>,
    make_with: Option<&Arc<Core<T, P>>>,
) -> Option<*mut Private<T, P>> {
    match recent(core.locals.id) {
        Some(slot) => Some(slot.cast()),
        None => search(core.locals.id, make_with),
    }
}

#[inline(never)]
fn search<T: Send + 'static, P: Policy<T> + 'static>(
    id: u64,
    make_with: Option<&Arc<Core<T, P>>>,
) -> Option<*mut Private<T, P>> {
    let slot = SLOTS
        .try_with(|slots| {
            let mut slots = slots.try_borrow_mut().ok()?;
            match (slots.iter().find(|e| e.id == id), make_with) {
                (Some(entry), _) => Some(entry.slot),
                (None, Some(core)) => Some(make(&mut slots, core)),
                (None, None) => None,
            }
        })
        .ok()
        .flatten()?;
    remember(id, slot.as_ptr());
    Some(slot.as_ptr().cast())
}

impl<T, P: Policy<T>> Private<T, P> {
    /// Holds `item` (of `weight`, inside the room already reserved) and counts the return. The
    /// slot must be empty: the assignment then drops nothing, so no foreign code runs.
    #[inline(always)]
    fn keep(&mut self, item: T, weight: u64) {
        debug_assert!(self.item.is_none());
        self.item = Some(item);
        self.weight = weight;
        SlotCounts::bump(&self.counts.returns);
        self.counts.held.store(weight.saturating_add(1), Relaxed);
    }

    /// Gives up the object and the reservation (to the shard they came from).
    fn release(&mut self, core: &Core<T, P>) -> Option<T> {
        let item = self.item.take();
        if item.is_some() {
            self.counts.held.store(0, Relaxed);
        }
        if self.reserved > 0 {
            core.unreserve(self.shard, self.reserved);
            self.reserved = 0;
        }
        item
    }
}

impl<T, P: Policy<T>> Drop for Private<T, P> {
    /// The thread ended (or the slot was swept): the object goes back to a shard, the
    /// reservation and the counts to the pool.
    fn drop(&mut self) {
        let Some(core) = self.core.upgrade() else {
            return;
        };
        let item = self.release(&core);
        {
            let mut retired = core
                .locals
                .retired
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            retired.0 += self.counts.hits.load(Relaxed);
            retired.1 += self.counts.returns.load(Relaxed);
            let mut live = core
                .locals
                .live
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            live.retain(|c| !Arc::ptr_eq(c, &self.counts));
        }
        if let Some(item) = item {
            // Already reset; back into a shard if there is room, counted as neither a hit nor
            // a return a second time.
            core.stash(item, self.weight);
        }
    }
}

/// This thread's idle object for `core`, without a lock; `None` when its slot is empty.
#[inline]
pub(crate) fn take<T: Send + 'static, P: Policy<T> + 'static>(core: &Core<T, P>) -> Option<T> {
    let slot = slot(core, None)?;
    // SAFETY: a live slot (see `slot`); this reference ends before any foreign code runs.
    let private = unsafe { &mut *slot };
    let item = private.item.take()?;
    let counts = &*private.counts;
    SlotCounts::bump(&counts.hits);
    counts.held.store(0, Relaxed);
    Some(item)
}

/// Keeps `item` (reset, of `weight`) in this thread's slot for `core`; gives it back when the
/// slot is full or no room can be reserved.
///
/// Inlined whole into the caller so that the object stays in registers: passed through memory
/// to a call, a `Vec` was stored as two words and loaded back as one 16-byte move, a store
/// that cannot be forwarded (`mempool/buffer_64k` went from 19.6 to 12.7 ns when this was
/// inlined).
#[inline(always)]
pub(crate) fn put<T: Send + 'static, P: Policy<T> + 'static>(
    core: &Arc<Core<T, P>>,
    item: T,
    weight: u64,
    level: usize,
) -> Result<(), T> {
    let Some(slot) = slot(core, Some(core)) else {
        return Err(item);
    };
    {
        // SAFETY: a live slot (see `slot`); this reference ends before any foreign code runs.
        let private = unsafe { &mut *slot };
        if private.item.is_none()
            && private.reserved >= weight
            && private.epoch == core.locals.epoch.load(Relaxed)
        {
            private.keep(item, weight);
            return Ok(());
        }
    }
    put_slow(core, slot, item, weight, level)
}

/// [`put`] when the slot is of an older epoch, holds an object, or lacks the room.
#[cold]
#[inline(never)]
fn put_slow<T: Send + 'static, P: Policy<T> + 'static>(
    core: &Arc<Core<T, P>>,
    slot: *mut Private<T, P>,
    item: T,
    weight: u64,
    level: usize,
) -> Result<(), T> {
    let epoch = core.locals.epoch.load(Relaxed);
    let dropped = {
        // SAFETY: a live slot (see `slot`); this reference ends before any foreign code runs.
        let private = unsafe { &mut *slot };
        if private.epoch == epoch {
            None
        } else {
            // A trim or a pressure change since: start again from the current caps.
            private.epoch = epoch;
            private.release(core)
        }
    };
    if dropped.is_some() {
        // The object of the old epoch is dropped with no slot reference live, then the slot
        // (now of this epoch) is tried again.
        drop(dropped);
        return put(core, item, weight, level);
    }
    // SAFETY: as above; from here on no foreign code runs until the reference ends.
    let private = unsafe { &mut *slot };
    if private.item.is_some() {
        return Err(item);
    }
    if private.reserved < weight {
        match core.reserve(private.reserved, private.shard, weight, level) {
            Some(shard) => {
                private.shard = shard;
                private.reserved = weight;
            }
            None => {
                private.reserved = 0;
                return Err(item);
            }
        }
    }
    private.keep(item, weight);
    Ok(())
}

/// A trim or a pressure change: moves `core` to a new epoch, which other threads' slots see on
/// their next use, and empties this thread's slot now (its object is returned).
pub(crate) fn new_epoch<T: Send + 'static, P: Policy<T> + 'static>(core: &Core<T, P>) -> Option<T> {
    core.locals.epoch.fetch_add(1, Relaxed);
    let slot = slot(core, None)?;
    // SAFETY: a live slot (see `slot`); no foreign code runs while the reference lives.
    let private = unsafe { &mut *slot };
    private.epoch = core.locals.epoch.load(Relaxed);
    private.release(core)
}

#[cold]
fn make<T: Send + 'static, P: Policy<T> + 'static>(
    slots: &mut Vec<Entry>,
    core: &Arc<Core<T, P>>,
) -> NonNull<()> {
    // Slots of pools that are gone go now (their objects with them).
    // SAFETY: each entry's slot is live and unborrowed (no fast path runs during this call
    // but those of other pools' slots, reached from drops, which are not the ones dropped:
    // an entry leaves the recent list before its slot is dropped).
    slots.retain(|e| !unsafe { (e.gone)(e.slot) });
    let counts = Arc::new(SlotCounts::default());
    core.locals
        .live
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Arc::clone(&counts));
    let private: Private<T, P> = Private {
        core: Arc::downgrade(core),
        item: None,
        weight: 0,
        reserved: 0,
        shard: 0,
        epoch: core.locals.epoch.load(Relaxed),
        counts,
    };
    let slot = NonNull::from(Box::leak(Box::new(private))).cast::<()>();
    slots.push(Entry {
        id: core.locals.id,
        slot,
        gone: gone::<T, P>,
        free: free::<T, P>,
    });
    slot
}
