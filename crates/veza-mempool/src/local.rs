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

use std::any::Any;
use std::cell::RefCell;
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

/// One entry of a thread's slot list: the pool's id, its slot (a `Private<T, P>` of that
/// pool's types: one downcast, one virtual call, finds it) and how to tell, without knowing
/// those types, that the pool is gone.
struct Entry {
    id: u64,
    slot: Box<dyn Any>,
    gone: fn(&dyn Any) -> bool,
}

/// Whether the pool of `slot` (a `Private<T, P>`) is gone.
fn gone<T: Send + 'static, P: Policy<T> + 'static>(slot: &dyn Any) -> bool {
    slot.downcast_ref::<Private<T, P>>()
        .is_none_or(|p| p.core.strong_count() == 0)
}

thread_local! {
    /// The slot of each pool this thread used.
    static SLOTS: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

impl<T, P: Policy<T>> Private<T, P> {
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
    SLOTS
        .try_with(|slots| {
            let mut slots = slots.try_borrow_mut().ok()?;
            let private = find::<T, P>(&mut slots, core.locals.id)?;
            let item = private.item.take()?;
            let counts = &*private.counts;
            SlotCounts::bump(&counts.hits);
            counts.held.store(0, Relaxed);
            Some(item)
        })
        .ok()
        .flatten()
}

/// Keeps `item` (reset, of `weight`) in this thread's slot for `core`; gives it back when the
/// slot is full or no room can be reserved.
#[inline]
pub(crate) fn put<T: Send + 'static, P: Policy<T> + 'static>(
    core: &Arc<Core<T, P>>,
    item: T,
    weight: u64,
    level: usize,
) -> Result<(), T> {
    let mut item = Some(item);
    let mut dropped = None;
    let done = SLOTS.try_with(|slots| {
        let Ok(mut slots) = slots.try_borrow_mut() else {
            return false;
        };
        let epoch = core.locals.epoch.load(Relaxed);
        let private = match find::<T, P>(&mut slots, core.locals.id) {
            Some(p) => p,
            None => make(&mut slots, core, epoch),
        };
        if private.epoch != epoch {
            // A trim or a pressure change since: start again from the current caps.
            dropped = private.release(core);
            private.epoch = epoch;
        }
        if private.item.is_some() {
            return false;
        }
        if private.reserved < weight {
            match core.reserve(private.reserved, private.shard, weight, level) {
                Some(shard) => {
                    private.shard = shard;
                    private.reserved = weight;
                }
                None => return false,
            }
        }
        private.item = item.take();
        private.weight = weight;
        let counts = &*private.counts;
        SlotCounts::bump(&counts.returns);
        counts.held.store(weight.saturating_add(1), Relaxed);
        true
    });
    drop(dropped); // outside the borrow: its drop may use a pool
    match (done, item) {
        (Ok(true), _) => Ok(()),
        (_, Some(item)) => Err(item),
        (_, None) => Ok(()),
    }
}

/// A trim or a pressure change: moves `core` to a new epoch, which other threads' slots see on
/// their next use, and empties this thread's slot now (its object is returned).
pub(crate) fn new_epoch<T: Send + 'static, P: Policy<T> + 'static>(core: &Core<T, P>) -> Option<T> {
    core.locals.epoch.fetch_add(1, Relaxed);
    SLOTS
        .try_with(|slots| {
            let mut slots = slots.try_borrow_mut().ok()?;
            let private = find::<T, P>(&mut slots, core.locals.id)?;
            private.epoch = core.locals.epoch.load(Relaxed);
            private.release(core)
        })
        .ok()
        .flatten()
}

#[inline]
fn find<T: Send + 'static, P: Policy<T> + 'static>(
    slots: &mut [Entry],
    id: u64,
) -> Option<&mut Private<T, P>> {
    slots
        .iter_mut()
        .find(|e| e.id == id)
        .and_then(|e| e.slot.downcast_mut::<Private<T, P>>())
}

#[cold]
fn make<'a, T: Send + 'static, P: Policy<T> + 'static>(
    slots: &'a mut Vec<Entry>,
    core: &Arc<Core<T, P>>,
    epoch: u64,
) -> &'a mut Private<T, P> {
    // Slots of pools that are gone go now (their objects with them).
    slots.retain(|e| !(e.gone)(&*e.slot));
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
        epoch,
        counts,
    };
    slots.push(Entry {
        id: core.locals.id,
        slot: Box::new(private),
        gone: gone::<T, P>,
    });
    slots
        .last_mut()
        .and_then(|e| e.slot.downcast_mut::<Private<T, P>>())
        .expect("the slot just pushed")
}
