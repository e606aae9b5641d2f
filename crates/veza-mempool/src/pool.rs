//! [`Pool`]: a bounded, sharded pool of reusable objects that are reset on return.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};

use veza_core::publish::{Late, Publish};
use veza_core::{Observe, PoolStats};

use crate::budget::{Pressure, Trim};
use crate::guard::{Home, Pooled, PooledOwned};
use crate::local::{self, Locals};
use crate::metrics::{Counts, Discard, PUBLISH_EVERY, PoolMetrics};
use crate::recycle::Recycle;
use crate::shard::{Sharded, share};

type Create<T> = Box<dyn Fn() -> T + Send + Sync>;
type Reset<T> = Box<dyn Fn(&mut T) + Send + Sync>;
type Weigh<T> = Box<dyn Fn(&T) -> u64 + Send + Sync>;
type Keep<T> = Box<dyn Fn(&T) -> bool + Send + Sync>;

/// How a pool makes, resets, weighs and screens its objects.
///
/// [`Pool::builder`] assembles one from closures ([`Closures`]); implement it yourself to have
/// every call dispatched statically (the buffer pool does).
pub trait Policy<T>: Send + Sync {
    /// A new object, when none is idle.
    fn create(&self) -> T;
    /// Cleans a returned object for reuse. Must not panic.
    fn reset(&self, _item: &mut T) {}
    /// Whether a returned object may be kept at all (checked before `reset`).
    fn keep(&self, _item: &T) -> bool {
        true
    }
    /// The object's weight against the cap: 1 by default, bytes for buffers.
    fn weigh(&self, _item: &T) -> u64 {
        1
    }
    /// Whether `weigh` measures bytes (reported as retained bytes).
    fn weighs_bytes(&self) -> bool {
        false
    }
}

/// A [`Policy`] made of the closures given to a [`PoolBuilder`].
pub struct Closures<T> {
    create: Create<T>,
    reset: Option<Reset<T>>,
    weigh: Option<Weigh<T>>,
    keep: Option<Keep<T>>,
}

impl<T> Policy<T> for Closures<T> {
    fn create(&self) -> T {
        (self.create)()
    }
    fn reset(&self, item: &mut T) {
        if let Some(reset) = &self.reset {
            reset(item);
        }
    }
    fn keep(&self, item: &T) -> bool {
        self.keep.as_ref().is_none_or(|keep| keep(item))
    }
    fn weigh(&self, item: &T) -> u64 {
        self.weigh.as_ref().map_or(1, |w| w(item))
    }
    fn weighs_bytes(&self) -> bool {
        self.weigh.is_some()
    }
}

impl<T> fmt::Debug for Closures<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Closures")
            .field("reset", &self.reset.is_some())
            .field("weigh", &self.weigh.is_some())
            .field("keep", &self.keep.is_some())
            .finish_non_exhaustive()
    }
}

/// A pool of reusable objects.
///
/// - `get` hands out an idle object, or creates one; the [`Pooled`] guard derefs to it and
///   gives it back when dropped (or [`detach`](Pooled::detach) keeps it).
/// - On return the object is reset (a closure, or [`Recycle`]), then kept only while the pool
///   holds less than its cap (`max_idle` objects, or a total weight when a weigher is set);
///   otherwise it is dropped and counted as a discard. The pool never holds more than its cap.
/// - Each thread keeps one idle object per pool in a private slot (Go's `sync.Pool` does the
///   same): a thread that gets an object back after giving one takes no lock at all. The slot
///   holds its object inside room it reserved against the cap, and counts what it does, so the
///   cap and the statistics stay exact. Behind the slots, objects are kept in per-core shards,
///   each behind its own lock; a thread whose shard is empty takes from the others before
///   creating. A trim or a pressure change empties the calling thread's slot at once and the
///   other threads' slots when those threads next use the pool or end.
/// - Statistics through [`Observe`] (`PoolStats`), catalog metrics (`mempool_*`, current at
///   every scrape), and [`Trim`] so a [`MemoryBudget`](crate::MemoryBudget) can shrink it
///   under pressure.
/// - A cheap handle: `Pool` is `Clone` (one `Arc`); clones share the idle objects, the
///   counts and the metrics. The idle objects are dropped with the last clone and the last
///   guard.
pub struct Pool<T, P: Policy<T> = Closures<T>> {
    s: Arc<Core<T, P>>,
}

impl<T, P: Policy<T>> Clone for Pool<T, P> {
    fn clone(&self) -> Self {
        Pool { s: self.s.clone() }
    }
}

/// What the clones of a pool share.
pub(crate) struct Core<T, P> {
    shards: Sharded<Stack<T>>,
    policy: P,
    max_weight: u64,
    pressure: AtomicU8,
    detached: AtomicU64,
    name: String,
    metrics: Late<PoolMetrics>,
    /// The threads' private slots.
    pub(crate) locals: Locals,
}

/// One shard: idle objects and the counts of what happened here.
struct Stack<T> {
    items: Vec<T>,
    /// Total weight of `items` (their number without a weigher).
    weight: u64,
    /// Room reserved by threads' private slots (the objects they hold fit in it).
    reserved: u64,
    /// This shard's share of the pool's cap at each pressure level (normal, high, critical).
    caps: [u64; 3],
    counts: Counts,
    published: Counts,
    /// Operations since the counts were last published.
    unpublished: u64,
}

/// A shard's share of the cap at each pressure level: all of it, half, nothing.
fn caps(max_weight: u64, index: usize, count: usize) -> [u64; 3] {
    [
        share_u64(max_weight, index, count),
        share_u64(max_weight / 2, index, count),
        0,
    ]
}

fn share_u64(total: u64, index: usize, count: usize) -> u64 {
    share(total as usize, index, count) as u64
}

impl<T: Send + 'static> Pool<T> {
    /// A pool keeping at most `max_idle` idle objects, made by `create`, not reset on return.
    pub fn new(create: impl Fn() -> T + Send + Sync + 'static, max_idle: usize) -> Pool<T> {
        Pool::builder(create).max_idle(max_idle).build()
    }

    /// A pool that recycles objects with [`Recycle`] on return.
    pub fn recycling(create: impl Fn() -> T + Send + Sync + 'static, max_idle: usize) -> Pool<T>
    where
        T: Recycle + 'static,
    {
        Pool::builder(create).max_idle(max_idle).recycle().build()
    }

    /// A builder, for reset, weight, prefill and name.
    pub fn builder(create: impl Fn() -> T + Send + Sync + 'static) -> PoolBuilder<T> {
        PoolBuilder {
            create: Box::new(create),
            reset: None,
            weigh: None,
            keep: None,
            max_weight: 64,
            prefill: 0,
            name: "default".to_owned(),
        }
    }
}

impl<T: Send + 'static, P: Policy<T> + 'static> Pool<T, P> {
    /// A pool with a hand-written [`Policy`] and a cap (in the policy's weight units).
    pub fn with_policy(policy: P, max_weight: u64, name: &str) -> Pool<T, P> {
        let core = Arc::new(Core {
            shards: Sharded::new(|index, count| Stack {
                items: Vec::new(),
                weight: 0,
                reserved: 0,
                caps: caps(max_weight, index, count),
                counts: Counts::default(),
                published: Counts::default(),
                unpublished: 0,
            }),
            policy,
            max_weight,
            pressure: AtomicU8::new(Pressure::Normal as u8),
            detached: AtomicU64::new(0),
            metrics: Late::new(|| PoolMetrics::new(name)),
            name: name.to_owned(),
            locals: Locals::new(),
        });
        veza_core::publish::register(&core);
        Pool { s: core }
    }
}

impl<T: Send + 'static, P: Policy<T> + 'static> Pool<T, P> {
    /// An idle object, or a new one when none is idle.
    pub fn get(&self) -> Pooled<'_, T, Self> {
        Pooled::new(self, self.take(), ())
    }

    /// Like [`get`](Pool::get), with a guard that owns a clone of the pool (for `'static` use:
    /// moving into a thread or a task).
    pub fn get_owned(&self) -> PooledOwned<T, Self> {
        PooledOwned::new(self.clone(), self.take(), ())
    }

    /// The pool's name, its metrics' `pool` label.
    pub fn name(&self) -> &str {
        &self.s.name
    }

    /// Idle objects now (in the shards and in threads' private slots).
    pub fn idle(&self) -> usize {
        let mut idle = 0;
        self.s.shards.for_each(|s| idle += s.items.len());
        idle + self.s.locals.totals().2 as usize
    }

    /// Drops idle objects until at most `keep` remain in the shards (counted as trimmed
    /// discards). The calling thread's private slot is emptied too; other threads' slots
    /// give their object up the next time those threads use the pool, or when they end.
    pub fn trim_to(&self, keep: usize) {
        let count = self.s.shards.len();
        let mut dropped = self.s.new_epoch();
        for index in 0..count {
            let mut shard = self.s.shards.lock(index);
            let keep_here = share(keep, index, count);
            while shard.items.len() > keep_here {
                let item = shard.items.pop().expect("non-empty");
                shard.weight -= self.weight_of(&item);
                shard.counts.discard(Discard::Trimmed);
                dropped.push(item);
            }
        }
        drop(dropped); // outside the locks
    }

    /// Inlined into the caller with only the private slot's path: the rest is out of line, so
    /// that the object comes back in registers (returned through memory, it was stored a word
    /// at a time and loaded back as one 16-byte move: a store that cannot be forwarded).
    #[inline(always)]
    pub(crate) fn take(&self) -> T {
        // Fastest: this thread's private slot, no lock.
        match local::take(&self.s) {
            Some(item) => item,
            None => self.take_shared(),
        }
    }

    /// [`take`](Pool::take) from the shards, or a new object.
    #[inline(never)]
    fn take_shared(&self) -> T {
        let home = self.s.shards.home();
        // Fast path: this thread's own shard.
        if let Some(item) = self.pop_from(&mut self.s.shards.lock(home)) {
            return item;
        }
        let count = self.s.shards.len();
        let stolen = (1..count)
            .find_map(|k| self.pop_from(&mut self.s.shards.lock((home + k) & (count - 1))));
        stolen.unwrap_or_else(|| {
            let mut shard = self.s.shards.lock(home);
            shard.counts.misses += 1;
            self.maybe_publish(&mut shard);
            drop(shard);
            self.s.policy.create()
        })
    }

    #[inline]
    fn pop_from(&self, shard: &mut Stack<T>) -> Option<T> {
        let item = shard.items.pop()?;
        shard.weight -= self.weight_of(&item);
        shard.counts.hits += 1;
        self.maybe_publish(shard);
        Some(item)
    }

    /// Takes an object back: resets it, then keeps it if there is room, else drops it.
    /// Inlined with only the private slot's path, for the reason [`take`](Pool::take) gives.
    #[inline(always)]
    pub(crate) fn put(&self, mut item: T) {
        if !self.s.policy.keep(&item) {
            self.count_discard(Discard::Oversized);
            return;
        }
        self.s.policy.reset(&mut item);
        let weight = self.weight_of(&item);
        let level = usize::from(self.s.pressure.load(Relaxed)).min(2);
        // Fastest: this thread's private slot, no lock (room reserved once).
        if let Err(item) = local::put(&self.s, item, weight, level) {
            self.put_shared(item, weight, level);
        }
    }

    /// [`put`](Pool::put) into a shard with room, or a discard.
    #[inline(never)]
    fn put_shared(&self, item: T, weight: u64, level: usize) {
        let home = self.s.shards.home();
        let count = self.s.shards.len();
        for k in 0..count {
            let mut shard = self.s.shards.lock((home + k) & (count - 1));
            if shard.weight + shard.reserved + weight <= shard.caps[level] {
                shard.items.push(item);
                shard.weight += weight;
                shard.counts.returns += 1;
                self.maybe_publish(&mut shard);
                return;
            }
        }
        self.count_discard(Discard::Full);
        drop(item); // outside the locks
    }

    pub(crate) fn count_discard(&self, why: Discard) {
        self.s.count_discard(why);
    }

    fn weight_of(&self, item: &T) -> u64 {
        self.s.policy.weigh(item)
    }

    fn maybe_publish(&self, shard: &mut Stack<T>) {
        self.s.maybe_publish(shard);
    }

    fn totals(&self) -> (Counts, u64, u64) {
        self.s.totals()
    }
}

impl<T, P: Policy<T>> Core<T, P> {
    pub(crate) fn count_discard(&self, why: Discard) {
        let mut home = self.shards.lock(self.shards.home());
        home.counts.discard(why);
        self.maybe_publish(&mut home);
    }

    fn maybe_publish(&self, shard: &mut Stack<T>) {
        shard.unpublished += 1;
        if shard.unpublished >= PUBLISH_EVERY {
            shard.unpublished = 0;
            self.metrics
                .get()
                .publish_delta(&shard.counts, &mut shard.published);
        }
    }

    /// Reserves `weight` of room for a private slot, first giving back its current
    /// reservation (`held` in shard `at`): the shard it lands in, or `None` when no shard has
    /// room at pressure `level`.
    pub(crate) fn reserve(&self, held: u64, at: usize, weight: u64, level: usize) -> Option<usize> {
        if held > 0 {
            self.unreserve(at, held);
        }
        let home = self.shards.home();
        let count = self.shards.len();
        (0..count).map(|k| (home + k) & (count - 1)).find(|&index| {
            let mut shard = self.shards.lock(index);
            let room = shard.weight + shard.reserved + weight <= shard.caps[level];
            if room {
                shard.reserved += weight;
            }
            room
        })
    }

    /// Gives back room a private slot had reserved in shard `at`.
    pub(crate) fn unreserve(&self, at: usize, weight: u64) {
        let mut shard = self.shards.lock(at);
        shard.reserved = shard.reserved.saturating_sub(weight);
    }

    /// Puts an object that left a private slot (already reset and counted as returned) into a
    /// shard with room, or drops it as trimmed.
    pub(crate) fn stash(&self, item: T, weight: u64) {
        let level = usize::from(self.pressure.load(Relaxed)).min(2);
        let mut item = Some(item);
        let kept = self.shards.find_map(|shard| {
            (shard.weight + shard.reserved + weight <= shard.caps[level]).then(|| {
                shard.items.push(item.take().expect("once"));
                shard.weight += weight;
            })
        });
        if kept.is_none() {
            self.count_discard(Discard::Trimmed);
        }
        drop(item); // outside the locks
    }

    /// Sums every shard and private slot; publishes the metrics on the way.
    fn totals(&self) -> (Counts, u64, u64) {
        let metrics = self.metrics.get();
        let (mut counts, mut idle, mut weight) = (Counts::default(), 0, 0);
        self.shards.for_each(|shard| {
            metrics.publish_delta(&shard.counts, &mut shard.published);
            counts.add(&shard.counts);
            idle += shard.items.len() as u64;
            weight += shard.weight;
        });
        let (hits, returns, private_idle, private_weight) = self.locals.totals();
        let private = Counts {
            hits,
            returns,
            ..Counts::default()
        };
        metrics.publish_delta(
            &private,
            &mut self
                .locals
                .published
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        counts.add(&private);
        idle += private_idle;
        weight += private_weight;
        let retained = if self.policy.weighs_bytes() {
            weight
        } else {
            0
        };
        metrics.set_gauges(idle, retained);
        (counts, idle, weight)
    }
}

impl<T: Send, P: Policy<T>> Publish for Core<T, P> {
    fn publish(&self) {
        if self.metrics.refresh(|| PoolMetrics::new(&self.name)) {
            // The counts so far went to no recorder: the new handles get all of them.
            self.shards
                .for_each(|shard| shard.published = Counts::default());
            *self
                .locals
                .published
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Counts::default();
        }
        let _ = self.totals();
    }
}

impl<T: Send + 'static, P: Policy<T> + 'static> Home<T> for Pool<T, P> {
    type Hint = ();

    fn give_back(&self, item: T, _hint: ()) {
        self.put(item);
    }

    fn detached(&self) {
        self.s.detached.fetch_add(1, Relaxed);
    }
}

impl<T: Send + 'static, P: Policy<T> + 'static> Observe for Pool<T, P> {
    type Snapshot = PoolStats;

    /// `max_size` is the cap (in weight units with a weigher); `in_use` counts objects handed
    /// out and not yet returned, discarded or detached.
    fn snapshot(&self) -> PoolStats {
        let (c, idle, weight) = self.totals();
        let handed_out = c.hits + c.misses;
        let back = c.returns + c.full + c.oversized + self.s.detached.load(Relaxed);
        let mut stats = PoolStats::default();
        stats.max_size = self.s.max_weight;
        stats.idle = idle;
        stats.in_use = handed_out.saturating_sub(back);
        stats.size = stats.idle + stats.in_use;
        stats.acquired = handed_out;
        stats.hits = c.hits;
        stats.misses = c.misses;
        stats.returns = c.returns;
        stats.discards = c.discards();
        stats.retained_bytes = if self.s.policy.weighs_bytes() {
            weight
        } else {
            0
        };
        stats
    }
}

impl<T: Send + 'static, P: Policy<T> + 'static> Trim for Pool<T, P> {
    /// Under high pressure the pool keeps at most half its cap, under critical pressure
    /// nothing; back to normal, the full cap applies again.
    fn on_pressure(&self, pressure: Pressure) {
        self.s.on_pressure(pressure);
    }
}

impl<T: Send + 'static, P: Policy<T> + 'static> crate::budget::Attach for Pool<T, P> {
    fn trim_target(&self) -> std::sync::Weak<dyn Trim> {
        Arc::downgrade(&self.s) as std::sync::Weak<dyn Trim>
    }
}

impl<T: Send + 'static, P: Policy<T> + 'static> Core<T, P> {
    /// A trim or a pressure change reaches the private slots ([`local::new_epoch`]): the
    /// objects to drop (this thread's slot's, counted as trimmed), to go with the shards' own.
    fn new_epoch(&self) -> Vec<T> {
        let own = local::new_epoch(self);
        if own.is_some() {
            self.count_discard(Discard::Trimmed);
        }
        own.into_iter().collect()
    }
}

impl<T: Send + 'static, P: Policy<T> + 'static> Trim for Core<T, P> {
    /// Private slots see the new caps through the epoch: this thread's is emptied now, the
    /// others' when their threads next use the pool or end.
    fn on_pressure(&self, pressure: Pressure) {
        self.pressure.store(pressure as u8, Relaxed);
        let count = self.shards.len();
        let mut dropped = self.new_epoch();
        for index in 0..count {
            let mut shard = self.shards.lock(index);
            let cap = shard.caps[pressure as usize];
            while shard.weight + shard.reserved > cap {
                let Some(item) = shard.items.pop() else { break };
                shard.weight -= self.policy.weigh(&item);
                shard.counts.discard(Discard::Trimmed);
                dropped.push(item);
            }
        }
        drop(dropped);
    }
}

impl<T: Send + 'static, P: Policy<T> + 'static> fmt::Debug for Pool<T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.s.name)
            .field("max_weight", &self.s.max_weight)
            .field("idle", &self.idle())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Pool`].
pub struct PoolBuilder<T> {
    create: Create<T>,
    reset: Option<Reset<T>>,
    weigh: Option<Weigh<T>>,
    keep: Option<Keep<T>>,
    max_weight: u64,
    prefill: usize,
    name: String,
}

impl<T: Send + 'static> PoolBuilder<T> {
    /// At most this many idle objects (default 64). With [`weigh`](PoolBuilder::weigh), the
    /// cap is on their total weight instead.
    pub fn max_idle(mut self, max: usize) -> Self {
        self.max_weight = max as u64;
        self
    }

    /// Resets each object on return.
    pub fn reset(mut self, reset: impl Fn(&mut T) + Send + Sync + 'static) -> Self {
        self.reset = Some(Box::new(reset));
        self
    }

    /// Resets each object on return with [`Recycle`].
    pub fn recycle(self) -> Self
    where
        T: Recycle + 'static,
    {
        self.reset(T::recycle)
    }

    /// Weighs objects (for example by capacity in bytes): the cap set by `max_weight` then
    /// bounds the total weight kept.
    pub fn weigh(mut self, weigh: impl Fn(&T) -> u64 + Send + Sync + 'static) -> Self {
        self.weigh = Some(Box::new(weigh));
        self
    }

    /// The cap on the total weight kept, with [`weigh`](PoolBuilder::weigh).
    pub fn max_weight(mut self, max: u64) -> Self {
        self.max_weight = max;
        self
    }

    /// Keeps a returned object only if `keep` says so (checked before the reset), for
    /// example to drop buffers that grew too large.
    pub fn keep_if(mut self, keep: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        self.keep = Some(Box::new(keep));
        self
    }

    /// Creates this many objects up front (never more than the cap allows).
    pub fn prefill(mut self, count: usize) -> Self {
        self.prefill = count;
        self
    }

    /// The pool's name: its metrics' `pool` label (default `"default"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The pool. The metrics recorder may be installed before or after.
    pub fn build(self) -> Pool<T> {
        let policy = Closures {
            create: self.create,
            reset: self.reset,
            weigh: self.weigh,
            keep: self.keep,
        };
        let pool = Pool::with_policy(policy, self.max_weight, &self.name);
        for _ in 0..self.prefill {
            let item = pool.s.policy.create();
            let weight = pool.weight_of(&item);
            let mut item = Some(item);
            let kept = pool.s.shards.find_map(|shard| {
                (shard.weight + shard.reserved + weight <= shard.caps[0]).then(|| {
                    shard.items.push(item.take().expect("once"));
                    shard.weight += weight;
                })
            });
            if kept.is_none() {
                break;
            }
        }
        pool
    }
}

impl<T> fmt::Debug for PoolBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("name", &self.name)
            .field("max_weight", &self.max_weight)
            .field("prefill", &self.prefill)
            .finish_non_exhaustive()
    }
}
