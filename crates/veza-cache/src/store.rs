//! The cache's own store: sharded hash tables under read-write locks, evicting by quick_cache's
//! S3-FIFO with a frequency contest at the door of the hot queue.
//!
//! Each shard keeps its entries in two queues and remembers some that left:
//!
//! - *hot*, most of the capacity (97%): new keys enter it while it has room (the cache is
//!   filling), and keys that proved themselves are promoted into it. It is a CLOCK: an entry
//!   read since the hand last passed loses one of its (at most two) credits and goes round
//!   again; one with no credit is evicted.
//! - *cold*, the rest: new keys once hot is full. An entry read while in cold is promoted to
//!   hot; one that is not reaches the head and leaves, its hash kept as a *ghost*.
//! - *ghosts*, about half the entry estimate, in two generations of Bloom filters: a key
//!   inserted again while its ghost is remembered goes straight to hot (it came back soon:
//!   recency).
//!
//! This is quick_cache's S3-FIFO, kept step for step (the pre-eviction, the hot admission
//! while filling, the two-credit clock), so on recency-heavy traffic and under Zipf this store
//! does what quick_cache does. What it adds is the door: a cold entry that was *not* read
//! while in cold (a loop longer than the cache, a key that comes back at a steady pace) still
//! enters hot when a count-min sketch ([`Sketch`], TinyLFU's) says it was requested more often
//! lately than the hot entry the clock would evict next; that one leaves instead. So a key
//! that keeps coming back is admitted on its frequency even when its returns are too far
//! apart for the cold queue and the ghosts to see them (where S3-FIFO and LRU miss, and where
//! moka's admission filter wins), while nothing S3-FIFO admits is turned away.
//!
//! A read takes only the shard's read lock and adds a credit with a load and a store (no
//! read-modify-write, no reordering). The sketch hears of reads later, under the write lock:
//! a credit the clock takes is one read counted. Misses are counted when the key is inserted.

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

use crossbeam_utils::CachePadded;
use equivalent::Equivalent;
use hashbrown::HashTable;
use parking_lot::RwLock;

use crate::entry::{NEVER, Slot, Weigher};
use crate::listen::{Listener, RemovalCause, Removals};
use crate::sketch::Sketch;
use crate::stats::{Counters, Event};

const NIL: u32 = u32::MAX;
const COLD: usize = 0;
const HOT: usize = 1;

/// Credits an entry can hold (quick_cache's `MAX_F`).
const MAX_CREDITS: u8 = 2;
/// Hot's share of the capacity (quick_cache's default `hot_allocation`).
const HOT_SHARE: f64 = 0.97;
/// Ghosts remembered, per estimated entry (quick_cache's default `ghost_allocation`).
const GHOST_SHARE: f64 = 0.5;
/// How much more often than the victim a candidate must have been requested to take its
/// place. With no margin, keys of equal popularity (the keys of one loop) replace each other
/// on the sketch's noise and every swap costs a miss: on a loop over 1.2x the capacity mixed
/// with Zipf traffic (capacity 10,000), 0.463 with no margin, 0.596 with 1 or 2. At capacity
/// 1,000 the sketch is noisier: a margin of 1 loses 1 point of Zipf(0.8) to plain S3-FIFO,
/// 2 loses nothing.
const ADMIT_MARGIN: u64 = 2;
/// Fewest entries per shard the default shard count keeps.
const MIN_SHARD_ENTRIES: u64 = 256;
/// Fewest entries per shard for the default's larger count (32 per core), so that each shard's
/// policy still sees enough of the traffic: at 100,000 entries on 2 cores (64 shards instead
/// of 8) the policy simulator's rows move by at most half a point (loop + Zipf +0.5, sliding
/// window -0.3, Zipf then sliding -0.4, the others unchanged).
const MANY_SHARD_ENTRIES: u64 = 1024;
/// Most shards a cache may have.
const MAX_SHARDS: usize = 1 << 16;

/// One entry. Aligned to a cache line: with a word-sized key and value it is exactly 64 bytes,
/// and a read touches one line instead of two (unaligned, most 64-byte nodes straddle two:
/// measured 0.86 of quick_cache's hit throughput unaligned, 0.90-1.03 aligned, on
/// `cache/hit_read`). Larger entries round up to a multiple of 64 bytes.
#[repr(align(64))]
struct Node<K, V> {
    key: K,
    slot: Slot<V>,
    hash: u64,
    /// At most `u32::MAX`: a heavier entry is never kept (so a node holding a `u64` is one
    /// 64-byte cache line).
    weight: u32,
    prev: u32,
    next: u32,
    queue: u8,
    /// The sketch's estimate for the key just after its insert counted it: the contest's
    /// first filter (an entry that was not read since cannot have become more frequent,
    /// other than by the noise of keys sharing its counters).
    seen: u8,
    /// Reads since the hand last passed, at most [`MAX_CREDITS`] (a load and a store).
    credits: AtomicU8,
}

#[derive(Clone, Copy)]
struct Queue {
    head: u32,
    tail: u32,
    weight: u64,
    len: u32,
}

const EMPTY: Queue = Queue {
    head: NIL,
    tail: NIL,
    weight: 0,
    len: 0,
};

/// Keys that left cold lately, as two generations of Bloom filters, each key's three bits in
/// one word of its generation (a blocked filter: one load to test a generation, one store to
/// add; 32 bits a key, about 0.2% false positives a generation, against 0.1% with the bits
/// spread). A departure goes into the young generation; when it is full, the old one is
/// cleared and they swap. So the last departures are remembered, `cap` of them on average,
/// for a few bits each and no table.
struct Ghosts {
    /// Both generations, one after the other: `words` each.
    filters: Box<[u64]>,
    /// Where the young generation starts: 0 or `words`.
    young: usize,
    words: usize,
    count: usize,
    half: usize,
}

impl Ghosts {
    fn new(cap: usize) -> Ghosts {
        // A generation holds two thirds of `cap`: between one and two generations are
        // remembered, `cap` on average (quick_cache remembers exactly `cap`).
        let half = (cap * 2 / 3).max(1);
        let words = (half * 32 / 64).max(1).next_power_of_two();
        Ghosts {
            filters: vec![0; 2 * words].into_boxed_slice(),
            young: 0,
            words,
            count: 0,
            half: if cap == 0 { 0 } else { half },
        }
    }

    /// `hash`'s word in a generation and its three bits there, from a remix of it.
    #[inline(always)]
    fn bits(&self, hash: u64) -> (usize, u64) {
        let h = hash.rotate_left(23).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let word = (h >> 40) as usize & (self.words - 1);
        (
            word,
            1 << (h & 63) | 1 << ((h >> 6) & 63) | 1 << ((h >> 12) & 63),
        )
    }

    #[inline]
    fn push(&mut self, hash: u64) {
        if self.half == 0 {
            return;
        }
        if self.count >= self.half {
            self.young ^= self.words;
            let young = self.young;
            self.filters[young..young + self.words].fill(0);
            self.count = 0;
        }
        let (word, bits) = self.bits(hash);
        self.filters[self.young + word] |= bits;
        self.count += 1;
    }

    /// Whether `hash` left lately (or, rarely, a key whose bits it shares).
    #[inline]
    fn contains(&self, hash: u64) -> bool {
        let (word, bits) = self.bits(hash);
        self.filters[word] & bits == bits || self.filters[self.words + word] & bits == bits
    }

    fn clear(&mut self) {
        self.filters.fill(0);
        self.count = 0;
    }
}

/// One shard: its table, its entries and their queues, its ghosts and its sketch.
pub(crate) struct Shard<K, V> {
    table: HashTable<u32>,
    nodes: Vec<Option<Node<K, V>>>,
    free: Vec<u32>,
    queues: [Queue; 2],
    capacity: u64,
    hot_target: u64,
    ghosts: Ghosts,
    sketch: Sketch,
    /// State of the small generator that breaks admission ties against hash flooding.
    rng: u64,
}

impl<K, V> Shard<K, V>
where
    K: Eq + Hash,
{
    fn new(capacity: u64, entries: u64, seed: u64) -> Shard<K, V> {
        Shard {
            table: HashTable::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            queues: [EMPTY; 2],
            capacity,
            hot_target: hot_target(capacity),
            ghosts: Ghosts::new((entries as f64 * GHOST_SHARE) as usize),
            sketch: Sketch::new(entries),
            rng: seed | 1,
        }
    }

    #[inline]
    fn node(&self, i: u32) -> &Node<K, V> {
        self.nodes[i as usize]
            .as_ref()
            .expect("a linked node is live")
    }

    #[inline]
    fn node_mut(&mut self, i: u32) -> &mut Node<K, V> {
        self.nodes[i as usize]
            .as_mut()
            .expect("a linked node is live")
    }

    #[inline]
    fn find<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        Q: Equivalent<K> + ?Sized,
    {
        self.table
            .find(hash, |&i| {
                self.nodes[i as usize]
                    .as_ref()
                    .is_some_and(|n| key.equivalent(&n.key))
            })
            .copied()
    }

    /// The entry for `key`, credited with a read.
    #[inline]
    fn get<Q>(&self, hash: u64, key: &Q) -> Option<&Slot<V>>
    where
        Q: Equivalent<K> + ?Sized,
    {
        // The node is taken in the probe itself: no second bounds check or slot test.
        let mut found = None;
        self.table.find(hash, |&i| match &self.nodes[i as usize] {
            Some(n) if key.equivalent(&n.key) => {
                found = Some(n);
                true
            }
            _ => false,
        });
        let Some(node) = found else {
            // A miss is most often followed by the insert of the key, which counts it in the
            // sketch: start that line's miss now (measured on `cache/replay_get_insert`: a
            // load kept the insert waiting on it for 15-20% of its time).
            self.sketch.touch(hash);
            return None;
        };
        let credits = node.credits.load(Relaxed);
        if credits < MAX_CREDITS {
            // Racy on purpose: two readers may give one credit; it is a recency hint.
            node.credits.store(credits + 1, Relaxed);
        }
        Some(&node.slot)
    }

    fn weight(&self) -> u64 {
        self.queues[COLD].weight + self.queues[HOT].weight
    }

    fn len(&self) -> usize {
        self.table.len()
    }

    #[inline(always)]
    fn push_tail(&mut self, q: usize, i: u32) {
        let tail = self.queues[q].tail;
        let weight = {
            let n = self.node_mut(i);
            n.prev = tail;
            n.next = NIL;
            n.queue = q as u8;
            u64::from(n.weight)
        };
        if tail == NIL {
            self.queues[q].head = i;
        } else {
            self.node_mut(tail).next = i;
        }
        let queue = &mut self.queues[q];
        queue.tail = i;
        queue.weight += weight;
        queue.len += 1;
    }

    #[inline(always)]
    fn unlink(&mut self, i: u32) {
        let (prev, next, q, weight) = {
            let n = self.node(i);
            (n.prev, n.next, n.queue as usize, u64::from(n.weight))
        };
        if prev == NIL {
            self.queues[q].head = next;
        } else {
            self.node_mut(prev).next = next;
        }
        if next == NIL {
            self.queues[q].tail = prev;
        } else {
            self.node_mut(next).prev = prev;
        }
        let queue = &mut self.queues[q];
        queue.weight -= weight;
        queue.len -= 1;
    }

    fn move_to(&mut self, q: usize, i: u32) {
        self.unlink(i);
        self.push_tail(q, i);
    }

    /// Takes node `i` out of its queue and the table; its index is free again (the node
    /// itself stays for the caller to take or drop).
    #[inline(always)]
    fn detach(&mut self, i: u32) {
        self.unlink(i);
        let hash = self.node(i).hash;
        if let Ok(entry) = self.table.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
        self.free.push(i);
    }

    /// Takes node `i` out of the shard.
    fn remove_at(&mut self, i: u32) -> Node<K, V> {
        self.detach(i);
        self.nodes[i as usize]
            .take()
            .expect("a linked node is live")
    }

    /// Takes one credit from `i` if it has any, counting that read in the sketch.
    #[inline]
    fn spend_credit(&mut self, i: u32) -> bool {
        let (hash, spent) = {
            let n = self.node_mut(i);
            let credits = n.credits.get_mut();
            let spent = *credits > 0;
            if spent {
                *credits -= 1;
            }
            (n.hash, spent)
        };
        if spent {
            self.sketch.add(hash);
        }
        spent
    }

    /// Stores `slot` under `key`. An entry heavier than the shard's hot share is not kept
    /// (and the key's old entry goes).
    fn insert(&mut self, hash: u64, key: K, slot: Slot<V>, weight: u64, out: &mut Removals<K, V>) {
        // A new key's count is read from the sketch after the probe below; start that read
        // now, so that its miss (the sketch is spread over the whole shard) overlaps the
        // probe's.
        self.sketch.touch(hash);
        let existing = self.find(hash, &key);
        let small = u32::try_from(weight)
            .ok()
            .filter(|_| weight <= self.hot_target);
        let Some(weight32) = small else {
            if let Some(i) = existing {
                let old = self.remove_at(i);
                out.removed(old.key, old.slot, RemovalCause::Replaced);
            }
            return;
        };
        if let Some(i) = existing {
            let (old, old_weight, q) = {
                let n = self.node_mut(i);
                let credits = n.credits.get_mut();
                *credits = (*credits + 1).min(MAX_CREDITS);
                let old_weight = u64::from(std::mem::replace(&mut n.weight, weight32));
                (
                    std::mem::replace(&mut n.slot, slot),
                    old_weight,
                    n.queue as usize,
                )
            };
            self.queues[q].weight = self.queues[q].weight - old_weight + weight;
            out.removed(key, old, RemovalCause::Replaced);
            self.trim(out);
            return;
        }
        let seen = self.sketch.add(hash);
        let queue = if self.ghosts.contains(hash) {
            HOT // it came back soon after leaving cold
        } else {
            // While the cache fills, new keys go hot (decided before evicting, as quick_cache).
            let enter_hot = self.queues[HOT].weight + weight <= self.hot_target;
            while self.weight() + weight > self.capacity && self.advance_cold(out) {}
            if enter_hot { HOT } else { COLD }
        };
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = u32::try_from(self.nodes.len()).expect("fewer than 2^32 entries a shard");
                self.nodes.push(None);
                i
            }
        };
        // The node is written where it goes, field by field: the slot is known to be empty,
        // so no drop (a call) comes between building the node and storing it. Built on the
        // stack and copied, its small fields were stored in 1-, 4- and 8-byte pieces and
        // loaded back in 16-byte moves, which the CPU cannot forward (a stall per insert).
        let place = &mut self.nodes[i as usize];
        if place.is_some() {
            unreachable!("a free node slot holds a node");
        }
        *place = Some(Node {
            key,
            slot,
            hash,
            weight: weight32,
            prev: NIL,
            next: NIL,
            queue: queue as u8,
            seen,
            credits: AtomicU8::new(0),
        });
        let nodes = &self.nodes;
        self.table.insert_unique(hash, i, |&j| {
            nodes[j as usize].as_ref().map_or(0, |n| n.hash)
        });
        self.push_tail(queue, i);
        self.trim(out);
    }

    /// Evicts until the shard is within its capacity.
    fn trim(&mut self, out: &mut Removals<K, V>) {
        while self.weight() > self.capacity && self.advance_cold(out) {}
    }

    /// Moves cold's head on: promoted to hot if read there, or admitted to hot by the
    /// frequency contest, or evicted (its hash kept as a ghost). Without cold entries,
    /// advances hot. Whether anything moved.
    ///
    /// The common case is inlined into the insert's loop: the head was not read while in
    /// cold and cannot win the contest, so it leaves (most cold departures under Zipf
    /// traffic). The rest is out of line.
    #[inline(always)]
    fn advance_cold(&mut self, out: &mut Removals<K, V>) -> bool {
        let i = self.queues[COLD].head;
        if i != NIL {
            let (unread, weight, seen, hash) = {
                let n = self.node_mut(i);
                (*n.credits.get_mut() == 0, n.weight, n.seen, n.hash)
            };
            if unread && !self.may_contest(weight, seen) {
                self.ghosts.push(hash);
                self.evict_at(i, out);
                return true;
            }
        }
        self.advance_cold_slow(out)
    }

    /// Whether a cold entry of `weight`, estimated at `seen` on its insert, takes part in
    /// the frequency contest: only one that could win it (most cold departures are keys seen
    /// once or twice, and the victim's count is at least 0), and only when hot is full.
    #[inline(always)]
    fn may_contest(&self, weight: u32, seen: u8) -> bool {
        self.queues[HOT].weight + u64::from(weight) > self.hot_target
            && u64::from(seen) > ADMIT_MARGIN
    }

    /// [`advance_cold`](Shard::advance_cold) when cold is empty, or its head was read, or
    /// may win the contest.
    #[inline(never)]
    fn advance_cold_slow(&mut self, out: &mut Removals<K, V>) -> bool {
        let i = self.queues[COLD].head;
        if i == NIL {
            return self.advance_hot(out);
        }
        if self.spend_credit(i) {
            self.move_to(HOT, i);
            while self.queues[HOT].weight > self.hot_target && self.advance_hot(out) {}
            return true;
        }
        // The contest. An entry leaving cold unread was not requested since its insert, so
        // the estimate taken then answers without touching the sketch; the contest itself
        // reads both estimates afresh.
        let candidate = self.node(i);
        if self.may_contest(candidate.weight, candidate.seen) {
            if let Some(victim) = self.hot_victim() {
                if self.admit(i, victim) {
                    self.evict_at(victim, out);
                    self.move_to(HOT, i);
                    return true;
                }
            }
        }
        let hash = self.node(i).hash;
        self.ghosts.push(hash);
        self.evict_at(i, out);
        true
    }

    /// Evicts hot's next victim; whether there was one.
    fn advance_hot(&mut self, out: &mut Removals<K, V>) -> bool {
        match self.hot_victim() {
            Some(victim) => {
                self.evict_at(victim, out);
                true
            }
            None => false,
        }
    }

    /// Turns hot's clock until an entry without credit is at the head (each pass takes a
    /// credit); that entry, or `None` if hot is empty.
    fn hot_victim(&mut self) -> Option<u32> {
        // Each entry holds at most two credits: three turns of the clock always end.
        let mut turns = 3 * self.queues[HOT].len as usize + 1;
        loop {
            let i = self.queues[HOT].head;
            if i == NIL {
                return None;
            }
            if turns == 0 || !self.spend_credit(i) {
                return Some(i);
            }
            turns -= 1;
            self.move_to(HOT, i);
        }
    }

    #[inline(always)]
    fn evict_at(&mut self, i: u32, out: &mut Removals<K, V>) {
        out.evicted += 1;
        if out.listening() {
            let node = self.remove_at(i);
            out.removed(node.key, node.slot, RemovalCause::Capacity);
        } else {
            // Nobody listens: the entry is dropped where it lies, not moved out first.
            self.detach(i);
            // The slot (the part that may own memory) is dropped first, on its own: then the
            // node's drop has nothing left to call for a key without drop glue, and `None` is
            // one store. Assigned over a live node, `None` was built on the stack around the
            // drop's calls and copied over the node in 16-byte moves whose first overlapped an
            // 8-byte store just made (a stall the CPU cannot forward: a quarter of
            // `advance_cold`'s time in the replay). Taking the node out instead gained
            // nothing measurable.
            let place = &mut self.nodes[i as usize];
            if let Some(node) = place {
                node.slot = Slot::Absent { expires: NEVER };
            }
            *place = None;
        }
    }

    /// TinyLFU: the candidate enters only if it was requested clearly more often lately than
    /// the victim: by more than [`ADMIT_MARGIN`] in the sketch. A popular candidate that does
    /// not still gets in once in 128 times, so an attacker cannot pin the victims by flooding
    /// the sketch (Caffeine does the same).
    fn admit(&mut self, candidate: u32, victim: u32) -> bool {
        let c = self.sketch.estimate(self.node(candidate).hash);
        let v = self.sketch.estimate(self.node(victim).hash);
        if c > v + ADMIT_MARGIN {
            return true;
        }
        if c >= 6 {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            return self.rng & 127 == 0;
        }
        false
    }

    fn remove_if<Q>(
        &mut self,
        hash: u64,
        key: &Q,
        f: impl FnOnce(&Slot<V>) -> bool,
    ) -> Option<(K, Slot<V>)>
    where
        Q: Equivalent<K> + ?Sized,
    {
        let i = self.find(hash, key)?;
        if !f(&self.node(i).slot) {
            return None;
        }
        let node = self.remove_at(i);
        Some((node.key, node.slot))
    }

    /// Removes the entries for which `keep` is false.
    fn retain(&mut self, mut keep: impl FnMut(&K, &Slot<V>) -> bool, out: &mut Removals<K, V>) {
        let doomed: Vec<u32> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (i, n)))
            .filter(|(_, n)| !keep(&n.key, &n.slot))
            .map(|(i, _)| i as u32)
            .collect();
        for i in doomed {
            let node = self.remove_at(i);
            out.dropped += 1;
            out.removed(node.key, node.slot, RemovalCause::Invalidated);
        }
        if self.table.is_empty() {
            // Empty: give the memory back.
            self.nodes = Vec::new();
            self.free = Vec::new();
            self.table = HashTable::new();
            self.ghosts.clear();
        }
    }

    fn set_capacity(&mut self, capacity: u64, out: &mut Removals<K, V>) {
        self.capacity = capacity;
        self.hot_target = hot_target(capacity);
        self.trim(out);
        while self.queues[HOT].weight > self.hot_target && self.advance_hot(out) {}
    }
}

/// Hot's share of a shard of `capacity`: at least 1 (an entry of weight 1 always fits).
fn hot_target(capacity: u64) -> u64 {
    ((capacity as f64 * HOT_SHARE) as u64).clamp(capacity.min(1), capacity)
}

/// Splits a capacity over `n` shards (the remainder to the first ones).
fn share(capacity: u64, n: usize, index: usize) -> u64 {
    let n = n as u64;
    capacity / n + u64::from((index as u64) < capacity % n)
}

/// The shard count for a cache: `requested` rounded up to a power of two (at most 65,536), or
/// by default the larger of two rules: 32 per core halved while a shard would hold fewer than
/// [`MANY_SHARD_ENTRIES`] entries (large caches: less contention), and 4 per core halved while
/// a shard would hold fewer than [`MIN_SHARD_ENTRIES`] (small caches keep the shards they
/// had); then halved while a shard's share of the capacity would be zero.
///
/// Why 32 per core: a read holds its shard's read lock for the lookup and the copy, and two
/// threads reading the same shard at once move its lock word between their cores. On
/// `cache/hit_read` (2 threads, 100,000 entries), 8 shards gave 53.5 M lookups/s, 16 gave
/// 60.6 M, 32 68.9 M, 64 79.8 M and 128 73.0 M (one run, the machine in its fast state; in
/// its slow state 20-22, 24, 26-31, 28-31 M). A single-thread replay at 10,000 entries, which
/// this rule leaves at 8 shards, read 33.3 M requests/s at 32 shards against 33.8 M at 8.
pub(crate) fn shard_count(requested: Option<usize>, capacity: u64, entries: u64) -> usize {
    let mut n = match requested {
        Some(n) => n.clamp(1, MAX_SHARDS).next_power_of_two(),
        None => {
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            let fill = entries.min(capacity);
            let halved = |per_core: usize, least: u64| {
                let mut n = (cores * per_core).clamp(1, MAX_SHARDS).next_power_of_two();
                while n > 1 && fill / (n as u64) < least {
                    n /= 2;
                }
                n
            };
            halved(32, MANY_SHARD_ENTRIES).max(halved(4, MIN_SHARD_ENTRIES))
        }
    };
    while n > 1 && capacity / (n as u64) == 0 {
        n /= 2;
    }
    n
}

/// A shard behind its lock, on cache lines of its own.
type Locked<K, V> = CachePadded<RwLock<Shard<K, V>>>;

/// The sharded store.
pub(crate) struct Store<K, V> {
    shards: Box<[Locked<K, V>]>,
    mask: usize,
    hasher: foldhash::quality::RandomState,
    weigher: Weigher<K, V>,
    counters: Arc<Counters>,
    listener: Option<Listener<K, V>>,
}

impl<K, V> Store<K, V>
where
    K: Eq + Hash,
{
    pub(crate) fn new(
        capacity: u64,
        entries: u64,
        shards: usize,
        weigher: Weigher<K, V>,
        counters: Arc<Counters>,
        listener: Option<Listener<K, V>>,
    ) -> Store<K, V> {
        let n = shards.clamp(1, MAX_SHARDS).next_power_of_two();
        let hasher = foldhash::quality::RandomState::default();
        let seed = hasher.hash_one(0x5eed_u64);
        let shards = (0..n)
            .map(|i| {
                CachePadded::new(RwLock::new(Shard::new(
                    share(capacity, n, i),
                    share(entries, n, i).max(1),
                    seed.wrapping_add(i as u64),
                )))
            })
            .collect();
        Store {
            shards,
            mask: n - 1,
            hasher,
            weigher,
            counters,
            listener,
        }
    }

    #[inline]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn shard(&self, hash: u64) -> &RwLock<Shard<K, V>> {
        &self.shards[(hash >> 32) as usize & self.mask]
    }

    /// The number of shards.
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// A copy of the entry for `key` (credited with a read).
    #[inline]
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<Slot<V>>
    where
        Q: Hash + Equivalent<K> + ?Sized,
        V: Clone,
    {
        let hash = self.hash(key);
        self.shard(hash).read().get(hash, key).cloned()
    }

    /// For [`Cache::get`](crate::Cache::get): a copy of the value for `key` if it is one
    /// without expiry or idle clock (the common entry, nothing more to check), else a copy of
    /// the slot for the caller to sort (credited with a read either way).
    #[inline]
    pub(crate) fn get_plain<Q>(&self, key: &Q) -> Option<Result<V, Slot<V>>>
    where
        Q: Hash + Equivalent<K> + ?Sized,
        V: Clone,
    {
        let hash = self.hash(key);
        let shard = self.shard(hash).read();
        Some(match shard.get(hash, key)? {
            Slot::Value {
                value,
                expires: NEVER,
                touched: None,
            } => Ok(value.clone()),
            slot => Err(slot.clone()),
        })
    }

    /// Stores `slot` under `key`; with `count`, counted as an insert (with the evictions it
    /// caused, in one look-up of the thread's counters).
    pub(crate) fn insert(&self, key: K, slot: Slot<V>, count: bool) {
        let hash = self.hash(&key);
        let weight = self.weigher.weigh(&key, &slot);
        let mut out = self.removals();
        self.shard(hash)
            .write()
            .insert(hash, key, slot, weight, &mut out);
        if count {
            let evicted = std::mem::take(&mut out.evicted);
            self.counters
                .add_two(Event::Insert, 1, Event::EvictSize, evicted);
        }
        self.deliver(out);
    }

    /// Removes `key` if `f` says so of its entry (cause: `cause`); whether it did.
    pub(crate) fn remove_if<Q>(
        &self,
        key: &Q,
        cause: RemovalCause,
        f: impl FnOnce(&Slot<V>) -> bool,
    ) -> bool
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let hash = self.hash(key);
        let removed = self.shard(hash).write().remove_if(hash, key, f);
        let found = removed.is_some();
        if let Some((k, slot)) = removed {
            let mut out = self.removals();
            out.removed(k, slot, cause);
            self.deliver(out);
        }
        found
    }

    /// Removes every entry for which `keep` is false; how many went.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&K, &Slot<V>) -> bool) -> u64 {
        let mut dropped = 0;
        for shard in self.shards.iter() {
            let mut out = self.removals();
            shard.write().retain(&mut keep, &mut out);
            dropped += out.dropped;
            self.deliver(out);
        }
        dropped
    }

    /// What `pick` makes of the entries of shard `index`, under its read lock.
    pub(crate) fn collect<T>(
        &self,
        index: usize,
        mut pick: impl FnMut(&K, &Slot<V>) -> Option<T>,
    ) -> Vec<T> {
        let shard = self.shards[index].read();
        shard
            .nodes
            .iter()
            .flatten()
            .filter_map(|n| pick(&n.key, &n.slot))
            .collect()
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }

    /// Total weight held.
    pub(crate) fn weight(&self) -> u64 {
        self.shards.iter().map(|s| s.read().weight()).sum()
    }

    /// A new total capacity, evicting at once what no longer fits.
    pub(crate) fn set_capacity(&self, capacity: u64) {
        let n = self.shards.len();
        for (i, shard) in self.shards.iter().enumerate() {
            let mut out = self.removals();
            shard.write().set_capacity(share(capacity, n, i), &mut out);
            self.deliver(out);
        }
    }

    fn removals(&self) -> Removals<K, V> {
        Removals::new(self.listener.is_some())
    }

    /// Counts what went and hands it to the listener, outside any lock.
    #[inline(always)]
    fn deliver(&self, out: Removals<K, V>) {
        if out.evicted > 0 {
            self.counters.add(Event::EvictSize, out.evicted);
        }
        if let Some(listener) = &self.listener {
            listener.deliver(out.into_list());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_caches_get_32_shards_a_core_while_each_keeps_1024_entries() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let n = shard_count(None, 100_000, 100_000);
        assert!(n.is_power_of_two());
        let old_rule = (cores * 4).next_power_of_two();
        assert!(100_000 / n as u64 >= MANY_SHARD_ENTRIES || n <= old_rule);
        // As many as 32 a core allows, unless twice as many would leave a shard too small.
        assert!(
            n == (cores * 32).next_power_of_two() || 100_000 / (2 * n as u64) < MANY_SHARD_ENTRIES,
            "{n} shards on {cores} cores"
        );
        // Small caches keep the shards they had: 4 a core, at least 256 entries each.
        assert_eq!(shard_count(None, 300, 300), 1);
        assert!(shard_count(None, 10_000, 10_000) <= old_rule.max(8));
        assert!(shard_count(None, 10_000, 10_000) * 256 <= 10_000);
    }

    fn store(capacity: u64, shards: usize) -> Store<u64, u64> {
        Store::new(
            capacity,
            capacity,
            shards,
            Weigher(None),
            Arc::new(Counters::new()),
            None,
        )
    }

    fn slot(v: u64) -> Slot<u64> {
        Slot::Value {
            value: v,
            expires: crate::entry::NEVER,
            touched: None,
        }
    }

    fn request(s: &Store<u64, u64>, k: u64) -> bool {
        let hit = s.get(&k).is_some();
        if !hit {
            s.insert(k, slot(k), true);
        }
        hit
    }

    #[test]
    fn ghosts_remember_the_last_departures_and_rarely_anything_else() {
        let mix = |i: u64| foldhash::quality::FixedState::with_seed(7).hash_one(i);
        let mut g = Ghosts::new(3_000);
        for i in 0..10_000u64 {
            g.push(mix(i));
        }
        // A generation holds 2,000: the last 2,000 departures are always remembered.
        assert!((8_000..10_000).all(|i| g.contains(mix(i))));
        // The ones before the two kept generations are forgotten (but for false positives).
        let old = (0..4_000).filter(|&i| g.contains(mix(i))).count();
        let unseen = (1_000_000..1_100_000)
            .filter(|&i| g.contains(mix(i)))
            .count();
        assert!(old < 40, "{old} of 4,000 forgotten keys still held");
        // Two generations, each under 0.5% false positives.
        assert!(unseen < 1_000, "{unseen} false positives in 100,000");
    }

    #[test]
    fn an_evicted_entry_gives_its_key_and_value_back_at_once() {
        // Keys and values that own a count: what the store holds is all that is left alive.
        let (key_owner, value_owner) = (Arc::new(()), Arc::new(()));
        let s: Store<(u64, Arc<()>), Arc<()>> =
            Store::new(100, 100, 4, Weigher(None), Arc::new(Counters::new()), None);
        for i in 0..5_000u64 {
            let slot = Slot::Value {
                value: value_owner.clone(),
                expires: crate::entry::NEVER,
                touched: None,
            };
            s.insert((i, key_owner.clone()), slot, true);
        }
        assert!(s.len() <= 100);
        assert_eq!(Arc::strong_count(&key_owner), 1 + s.len());
        assert_eq!(Arc::strong_count(&value_owner), 1 + s.len());
        drop(s);
        assert_eq!(Arc::strong_count(&key_owner), 1);
        assert_eq!(Arc::strong_count(&value_owner), 1);
    }

    #[test]
    fn a_node_holding_a_word_is_one_cache_line() {
        assert!(std::mem::size_of::<Option<Node<u64, u64>>>() <= 64);
    }

    #[test]
    fn holds_at_most_its_capacity_and_keeps_the_queues_consistent() {
        let s = store(1_000, 4);
        for i in 0..20_000u64 {
            s.insert(i % 3_000, slot(i), true);
            if i % 7 == 0 {
                let _ = s.get(&(i % 50));
            }
        }
        assert!(s.len() <= 1_000, "{}", s.len());
        assert_eq!(s.len() as u64, s.weight());
        for shard in s.shards.iter() {
            let shard = shard.read();
            let by_queue: u32 = shard.queues.iter().map(|q| q.len).sum();
            assert_eq!(by_queue as usize, shard.len());
            assert!(shard.queues[HOT].weight <= shard.hot_target.max(shard.capacity));
            for (q, queue) in shard.queues.iter().enumerate() {
                // Walk each queue: links, queue tags and counts agree.
                let (mut i, mut n, mut prev) = (queue.head, 0, NIL);
                while i != NIL {
                    let node = shard.node(i);
                    assert_eq!(node.queue as usize, q);
                    assert_eq!(node.prev, prev);
                    (prev, i, n) = (i, node.next, n + 1);
                }
                assert_eq!(prev, queue.tail);
                assert_eq!(n, queue.len);
            }
        }
    }

    #[test]
    fn a_loop_longer_than_the_cache_is_partly_kept_by_its_frequency() {
        // A loop over 1.2x the capacity: LRU and S3-FIFO alone keep missing it (each key
        // comes back after 1,200 others); the door admits what the sketch finds frequent.
        let s = store(1_000, 1);
        let mut hits = 0;
        for round in 0..30 {
            for k in 0..1_200 {
                let hit = request(&s, k);
                if round >= 20 {
                    hits += usize::from(hit);
                }
            }
        }
        assert!(
            hits >= 10 * 1_200 / 2,
            "{hits} hits in the last 10 rounds of 1,200"
        );
    }

    #[test]
    fn a_working_set_that_fits_is_kept_after_the_traffic_moves_to_it() {
        let s = store(1_000, 1);
        for _ in 0..20 {
            for k in 0..900 {
                request(&s, k);
            }
        }
        // The traffic moves to 800 new keys, each coming back after 800 others: further than
        // cold and the ghosts reach, and hot is full of the old keys. S3-FIFO alone keeps the
        // old keys; the door lets the new ones in once the sketch has seen them more often
        // (measured: 0, 70, 70, 76, 76, 104, 291, then 795 and 800 hits a round).
        for _ in 0..9 {
            for k in 10_000..10_800 {
                request(&s, k);
            }
        }
        let hits = (10_000..10_800).filter(|&k| request(&s, k)).count();
        assert!(hits >= 760, "{hits} of 800");
    }
}
