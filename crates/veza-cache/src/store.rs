//! The cache's own store: sharded hash tables under read-write locks, evicting by W-TinyLFU
//! with an adaptive window (the policy of Caffeine; Einziger, Eytan, Friedman, Manes, "Adaptive
//! Software Cache Management", Middleware 2018).
//!
//! Each shard keeps its entries in three queues: a *window* that takes every new entry, and a
//! *main* space split into *probation* and *protected* (segmented LRU). When the shard is
//! over its capacity, the window's oldest entry (the candidate) competes with probation's
//! oldest (the victim): a frequency sketch ([`Sketch`]) estimates how often each was requested
//! lately, and the candidate is admitted only if it is the more popular. A scan of keys seen
//! once therefore passes through the small window without pushing the popular keys out,
//! while a key that keeps coming back is admitted.
//!
//! The queues approximate LRU with second chances (CLOCK), so a read never reorders anything
//! and needs only the shard's read lock: a hit adds one to the entry's own small counter
//! (a load and a store, no read-modify-write, as quick_cache does). The counts reach the
//! sketch later, under the write lock, when the eviction hand passes the entry: a counted
//! entry at the head of its queue gets a second chance (window: back to the tail; probation:
//! promoted to protected; protected: back to the tail), and its count moves to the sketch.
//!
//! The window's share of the capacity adapts by hill climbing on the hit ratio, as Caffeine's
//! does: every sample of ten times the capacity in requests, the window grows or shrinks by a
//! step, keeps the direction while the hit ratio improves, turns back when it falls, and takes
//! smaller steps as it settles. Recency-heavy traffic grows the window (toward LRU),
//! frequency-heavy traffic shrinks it (toward LFU).

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering::Relaxed};

use crossbeam_utils::CachePadded;
use equivalent::Equivalent;
use hashbrown::HashTable;
use parking_lot::{Mutex, RwLock};

use crate::entry::{Slot, Weigher};
use crate::listen::{Listener, RemovalCause, Removals};
use crate::sketch::Sketch;
use crate::stats::{Counters, Event};

const NIL: u32 = u32::MAX;
const WINDOW: usize = 0;
const PROBATION: usize = 1;
const PROTECTED: usize = 2;

/// The hit count an entry keeps between two passes of the eviction hand.
const MAX_HITS: u8 = 15;

/// Window share of the capacity, in 1/65,536ths: where it starts (1%, Caffeine's) and the
/// most it may grow to.
const WINDOW_START: f64 = 0.01;
const WINDOW_MOST: f64 = 0.8;
/// Protected share of the main space.
const PROTECTED_SHARE: u64 = 80;

/// Fewest entries per shard the default shard count keeps: fewer and the per-shard policy
/// sees too little of the traffic (and capacity splits too coarsely).
const MIN_SHARD_ENTRIES: u64 = 256;

struct Node<K, V> {
    key: K,
    slot: Slot<V>,
    hash: u64,
    weight: u64,
    prev: u32,
    next: u32,
    queue: u8,
    /// Hits since the eviction hand last passed (reads add with a load and a store).
    hits: AtomicU8,
    /// Contests won as the victim since its last hit.
    defended: u8,
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

/// Hashes of entries that left lately, oldest out first (a bounded FIFO set).
struct Ghost {
    table: HashTable<(u64, u64)>,
    order: std::collections::VecDeque<(u64, u64)>,
    seq: u64,
    cap: usize,
}

impl Ghost {
    fn new(cap: usize) -> Ghost {
        Ghost {
            table: HashTable::new(),
            order: std::collections::VecDeque::new(),
            seq: 0,
            cap: cap.max(1),
        }
    }

    fn push(&mut self, hash: u64) {
        self.seq += 1;
        let seq = self.seq;
        match self.table.find_mut(hash, |&(h, _)| h == hash) {
            Some(e) => e.1 = seq,
            None => {
                self.table.insert_unique(hash, (hash, seq), |&(h, _)| h);
            }
        }
        self.order.push_back((hash, seq));
        if self.order.len() > self.cap {
            if let Some((h, s)) = self.order.pop_front() {
                if let Ok(e) = self.table.find_entry(h, |&(x, y)| x == h && y == s) {
                    e.remove();
                }
            }
        }
    }

    /// Whether `hash` left lately (forgotten now: each departure counts once).
    fn take(&mut self, hash: u64) -> bool {
        match self.table.find_entry(hash, |&(h, _)| h == hash) {
            Ok(e) => {
                e.remove();
                true
            }
            Err(_) => false,
        }
    }
}

/// One shard: its table, its entries and their queues, its sketch.
pub(crate) struct Shard<K, V> {
    table: HashTable<u32>,
    nodes: Vec<Option<Node<K, V>>>,
    free: Vec<u32>,
    queues: [Queue; 3],
    capacity: u64,
    sketch: Sketch,
    /// New keys inserted (the climber looks every 64).
    inserts: u32,
    /// State of the small generator that breaks admission ties against hash flooding.
    rng: u64,
    /// Candidates the filter turned away, and victims main evicted, lately.
    rejected: Ghost,
    evicted: Ghost,
    /// The window's share, adapted by the ghosts.
    pub(crate) window: u64,
    decay: u32,
    s3: bool,
    small: u64,
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
            queues: [EMPTY; 3],
            capacity,
            sketch: Sketch::new(entries),
            inserts: 0,
            rng: seed | 1,
            rejected: Ghost::new((entries as usize) * std::env::var("EXP_GR").ok().and_then(|w| w.parse().ok()).unwrap_or(50) / 100),
            evicted: Ghost::new((entries as usize) * std::env::var("EXP_GE").ok().and_then(|w| w.parse().ok()).unwrap_or(100) / 100),
            window: capacity / 100,
            decay: std::env::var("EXP_DECAY").ok().and_then(|w| w.parse().ok()).unwrap_or(1000),
            s3: std::env::var("EXP_S3").is_ok(),
            small: ((capacity as f64) * std::env::var("EXP_SMALL").ok().and_then(|w| w.parse().ok()).unwrap_or(0.1)) as u64,
        }
    }

    #[inline]
    fn node(&self, i: u32) -> &Node<K, V> {
        self.nodes[i as usize].as_ref().expect("a linked node is live")
    }

    #[inline]
    fn node_mut(&mut self, i: u32) -> &mut Node<K, V> {
        self.nodes[i as usize].as_mut().expect("a linked node is live")
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

    /// The entry for `key`, counted as a hit for the policy.
    #[inline]
    fn get<Q>(&self, hash: u64, key: &Q) -> Option<&Slot<V>>
    where
        Q: Equivalent<K> + ?Sized,
    {
        let node = self.node(self.find(hash, key)?);
        let hits = node.hits.load(Relaxed);
        if hits < MAX_HITS {
            // Racy on purpose: two readers may count one hit; it is a popularity estimate.
            node.hits.store(hits + 1, Relaxed);
        }
        Some(&node.slot)
    }

    fn weight(&self) -> u64 {
        self.queues.iter().map(|q| q.weight).sum()
    }

    fn len(&self) -> usize {
        self.table.len()
    }

    fn main_weight(&self) -> u64 {
        self.queues[PROBATION].weight + self.queues[PROTECTED].weight
    }

    fn push_tail(&mut self, q: usize, i: u32) {
        let tail = self.queues[q].tail;
        let weight = {
            let n = self.node_mut(i);
            n.prev = tail;
            n.next = NIL;
            n.queue = q as u8;
            n.weight
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

    fn unlink(&mut self, i: u32) {
        let (prev, next, q, weight) = {
            let n = self.node(i);
            (n.prev, n.next, n.queue as usize, n.weight)
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

    /// Takes node `i` out of the shard.
    fn remove_at(&mut self, i: u32) -> Node<K, V> {
        self.unlink(i);
        let hash = self.node(i).hash;
        if let Ok(entry) = self.table.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
        self.free.push(i);
        self.nodes[i as usize].take().expect("a linked node is live")
    }

    /// Moves `i`'s pending hits into the sketch.
    fn flush(&mut self, i: u32) {
        let (hash, hits) = {
            let n = self.node_mut(i);
            let hits = std::mem::take(n.hits.get_mut());
            if hits > 0 {
                n.defended = 0;
            }
            (n.hash, hits)
        };
        self.sketch.add(hash, u64::from(hits));
    }

    fn hits(&self, i: u32) -> u8 {
        self.node(i).hits.load(Relaxed)
    }

    fn frequency(&self, i: u32) -> u64 {
        let n = self.node(i);
        let f = self.sketch.estimate(n.hash) + u64::from(n.hits.load(Relaxed));
        f >> (u32::from(n.defended) / self.decay)
    }

    /// Stores `slot` under `key`. An entry heavier than the shard's capacity is not kept (and
    /// replaces nothing: the key's old entry goes). Returns whether the key was new.
    fn insert(
        &mut self,
        hash: u64,
        key: K,
        slot: Slot<V>,
        weight: u64,
        window: u64,
        out: &mut Removals<K, V>,
    ) -> bool {
        let existing = self.find(hash, &key);
        if weight > self.capacity {
            if let Some(i) = existing {
                let old = self.remove_at(i);
                out.removed(old.key, old.slot, RemovalCause::Replaced);
            }
            return false;
        }
        if let Some(i) = existing {
            let (old, old_weight, q) = {
                let n = self.node_mut(i);
                let hits = n.hits.get_mut();
                *hits = (*hits + 1).min(MAX_HITS);
                let old_weight = std::mem::replace(&mut n.weight, weight);
                (std::mem::replace(&mut n.slot, slot), old_weight, n.queue as usize)
            };
            self.queues[q].weight = self.queues[q].weight - old_weight + weight;
            out.removed(key, old, RemovalCause::Replaced);
            self.evict(window, out);
            return false;
        }
        self.sketch.add(hash, 1);
        let ghost_hit = self.s3 && self.rejected.take(hash);
        let node = Node {
            key,
            slot,
            hash,
            weight,
            prev: NIL,
            next: NIL,
            queue: WINDOW as u8,
            hits: AtomicU8::new(0),
            defended: 0,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = Some(node);
                i
            }
            None => {
                let i = u32::try_from(self.nodes.len()).expect("fewer than 2^32 entries a shard");
                self.nodes.push(Some(node));
                i
            }
        };
        let nodes = &self.nodes;
        self.table.insert_unique(hash, i, |&j| {
            nodes[j as usize].as_ref().map_or(0, |n| n.hash)
        });
        self.push_tail(if ghost_hit { PROBATION } else { WINDOW }, i);
        self.inserts = self.inserts.wrapping_add(1);
        self.evict(window, out);
        true
    }

    /// Evicts until the shard is within its capacity (`window`: the window's share now).
    fn evict(&mut self, window: u64, out: &mut Removals<K, V>) {
        if self.s3 {
            return self.evict_s3(out);
        }
        let main_max = self.capacity.saturating_sub(window);
        let protected_max = main_max / 100 * PROTECTED_SHARE;
        // Second chances given in this call; each entry gets at most one per queue, the bound
        // only guards against a bug turning this into a spin.
        let mut chances = 2 * self.len() + 8;
        while self.weight() > self.capacity {
            let main_empty = self.queues[PROBATION].len + self.queues[PROTECTED].len == 0;
            // The newest entry stays in the window: an insert is readable at least until
            // the shard's next insert.
            let window_over = self.queues[WINDOW].weight > window && self.queues[WINDOW].len > 1;
            if window_over || main_empty {
                let Some(candidate) = self.window_candidate(&mut chances) else {
                    break;
                };
                if main_empty {
                    self.evict_at(candidate, out);
                    continue;
                }
                if self.main_weight() + self.node(candidate).weight <= main_max {
                    self.move_to(PROBATION, candidate);
                    continue;
                }
                match self.main_victim(protected_max, &mut chances) {
                    Some(victim) if self.admit(candidate, victim) => {
                        let h = self.node(victim).hash;
                        self.evicted.push(h);
                        self.evict_at(victim, out);
                        self.move_to(PROBATION, candidate);
                    }
                    victim => {
                        if let Some(v) = victim {
                            let n = self.node_mut(v);
                            n.defended = n.defended.saturating_add(1);
                        }
                        let h = self.node(candidate).hash;
                        self.rejected.push(h);
                        self.evict_at(candidate, out)
                    }
                }
            } else {
                match self.main_victim(protected_max, &mut chances) {
                    Some(victim) => {
                        let h = self.node(victim).hash;
                        self.evicted.push(h);
                        self.evict_at(victim, out)
                    }
                    None => break,
                }
            }
        }
        // A window over its share (it just shrank) hands its oldest to main while main has room.
        while self.queues[WINDOW].weight > window {
            let head = self.queues[WINDOW].head;
            if head == NIL || self.main_weight() + self.node(head).weight > main_max {
                break;
            }
            self.move_to(PROBATION, head);
        }
    }

    /// S3-FIFO with a frequency second chance.
    fn evict_s3(&mut self, out: &mut Removals<K, V>) {
        let small_max = self.small.max(1);
        let main_max = self.capacity.saturating_sub(small_max);
        let tiny = std::env::var("EXP_TINY").is_ok();
        while self.weight() > self.capacity {
            let main_empty = self.queues[PROBATION].len == 0;
            let small_over = self.queues[WINDOW].weight > small_max && self.queues[WINDOW].len > 1;
            if small_over || main_empty {
                let i = self.queues[WINDOW].head;
                if i == NIL {
                    break;
                }
                let h = { let n = self.node_mut(i); std::mem::take(n.hits.get_mut()) };
                let hash = self.node(i).hash;
                self.sketch.add(hash, u64::from(h));
                if h > 0 && !main_empty {
                    self.node_mut(i).defended = 0;
                    self.move_to(PROBATION, i);
                    continue;
                }
                if main_empty {
                    self.rejected.push(hash);
                    self.evict_at(i, out);
                    continue;
                }
                if self.main_weight() + self.node(i).weight <= main_max {
                    // Main has room.
                    if tiny && self.frequency(i) > 1 {
                        self.move_to(PROBATION, i);
                        continue;
                    }
                    self.rejected.push(hash);
                    self.evict_at(i, out);
                    continue;
                }
                if tiny {
                    if let Some(v) = self.main_clock() {
                        if self.admit(i, v) {
                            self.evict_at(v, out);
                            self.move_to(PROBATION, i);
                            continue;
                        }
                    }
                }
                self.rejected.push(hash);
                self.evict_at(i, out);
            } else {
                match self.main_clock() {
                    Some(v) => self.evict_at(v, out),
                    None => break,
                }
            }
        }
    }

    /// Main's next victim: the clock passes entries with credit, taking one from each.
    fn main_clock(&mut self) -> Option<u32> {
        let mut spins = 4 * self.queues[PROBATION].len as usize + 8;
        loop {
            let i = self.queues[PROBATION].head;
            if i == NIL {
                return None;
            }
            let h = { let n = self.node_mut(i); std::mem::take(n.hits.get_mut()) };
            let hash = self.node(i).hash;
            self.sketch.add(hash, u64::from(h));
            let n = self.node_mut(i);
            n.defended = (n.defended + h).min(3);
            if n.defended == 0 || spins == 0 {
                return Some(i);
            }
            n.defended -= 1;
            spins -= 1;
            self.move_to(PROBATION, i);
        }
    }

    fn evict_at(&mut self, i: u32, out: &mut Removals<K, V>) {
        let node = self.remove_at(i);
        out.evicted += 1;
        out.removed(node.key, node.slot, RemovalCause::Capacity);
    }

    /// The window's oldest entry not read since the hand last passed it.
    fn window_candidate(&mut self, chances: &mut usize) -> Option<u32> {
        loop {
            let i = self.queues[WINDOW].head;
            if i == NIL {
                return None;
            }
            if i == self.queues[WINDOW].tail {
                return Some(i); // the only one: no second chance to give
            }
            if self.hits(i) > 0 && *chances > 0 {
                *chances -= 1;
                self.flush(i);
                self.move_to(WINDOW, i);
                continue;
            }
            return Some(i);
        }
    }

    /// Probation's oldest entry not read since the hand last passed it; read ones move to
    /// protected, and protected's overflow comes back to probation.
    fn main_victim(&mut self, protected_max: u64, chances: &mut usize) -> Option<u32> {
        loop {
            let i = self.queues[PROBATION].head;
            if i == NIL {
                let j = self.queues[PROTECTED].head;
                if j == NIL {
                    return None;
                }
                self.move_to(PROBATION, j);
                continue;
            }
            if self.hits(i) == 0 || *chances == 0 {
                return Some(i);
            }
            *chances -= 1;
            self.flush(i);
            self.move_to(PROTECTED, i);
            while self.queues[PROTECTED].weight > protected_max {
                let j = self.queues[PROTECTED].head;
                if self.hits(j) > 0 && *chances > 0 {
                    *chances -= 1;
                    self.flush(j);
                    self.move_to(PROTECTED, j);
                } else {
                    self.move_to(PROBATION, j);
                }
            }
        }
    }

    /// TinyLFU: the candidate enters main only if requested more often than the victim. A
    /// popular candidate that ties or loses still gets in once in 128 times, so an attacker
    /// cannot pin the victims by flooding the sketch (Caffeine does the same).
    fn admit(&mut self, candidate: u32, victim: u32) -> bool {
        let (c, v) = (self.frequency(candidate), self.frequency(victim));
        if c > v {
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

    fn remove<Q>(&mut self, hash: u64, key: &Q) -> Option<(K, Slot<V>)>
    where
        Q: Equivalent<K> + ?Sized,
    {
        let i = self.find(hash, key)?;
        let node = self.remove_at(i);
        Some((node.key, node.slot))
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
    }
}

/// Splits a capacity over `n` shards (the remainder to the first ones).
fn share(capacity: u64, n: usize, index: usize) -> u64 {
    let n = n as u64;
    capacity / n + u64::from((index as u64) < capacity % n)
}

/// Most shards a cache may have.
const MAX_SHARDS: usize = 1 << 16;

/// The shard count for a cache: `requested` rounded up to a power of two (at most 65,536), or
/// [`default_shards`]; then halved while a shard's share of the capacity would be zero.
pub(crate) fn shard_count(requested: Option<usize>, capacity: u64, entries: u64) -> usize {
    let mut n = requested.map_or_else(
        || default_shards(entries.min(capacity)),
        |n| n.clamp(1, MAX_SHARDS).next_power_of_two(),
    );
    while n > 1 && capacity / (n as u64) == 0 {
        n /= 2;
    }
    n
}

/// The default shard count: four per core, a power of two, halved while the shards would hold
/// fewer than [`MIN_SHARD_ENTRIES`] each.
pub(crate) fn default_shards(entries: u64) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut n = (cores * 4).next_power_of_two();
    while n > 1 && entries / (n as u64) < MIN_SHARD_ENTRIES {
        n /= 2;
    }
    n
}

/// The hill climber of the window's share.
struct Climber {
    sample: u64,
    hits: u64,
    misses: u64,
    window: f64,
    probe: f64,
    sign: f64,
    last: [f64; 2],
    seen: u32,
    step: f64,
    tolerance: f64,
}

fn envf(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|w| w.parse().ok()).unwrap_or(default)
}

impl Climber {
    fn new(sample: u64) -> Climber {
        Climber {
            sample,
            hits: 0,
            misses: 0,
            window: WINDOW_START,
            probe: envf("EXP_PROBE", 0.05),
            sign: 1.0,
            last: [0.0; 2],
            seen: 0,
            step: envf("EXP_STEP", 0.02),
            tolerance: envf("EXP_TOL", 0.001),
        }
    }

    /// Moves the window once a sample is complete; the new share, if it moved.
    fn climb(&mut self, hits: u64, misses: u64) -> Option<f64> {
        let (h, m) = (
            hits.saturating_sub(self.hits),
            misses.saturating_sub(self.misses),
        );
        let requests = h + m;
        if requests < self.sample {
            return None;
        }
        (self.hits, self.misses) = (hits, misses);
        let ratio = h as f64 / requests as f64;
        self.seen += 1;
        if self.seen >= 3 {
            let gain = self.sign * (ratio - 2.0 * self.last[0] + self.last[1]) / 4.0;
            if gain > self.tolerance {
                self.window += self.step;
            } else if gain < -self.tolerance {
                self.window -= self.step;
            }
            self.window = self.window.clamp(0.0, WINDOW_MOST);
        }
        self.last = [ratio, self.last[0]];
        self.sign = -self.sign;
        let now = (self.window + self.sign * self.probe).clamp(0.0, WINDOW_MOST);
        if std::env::var("EXP_DEBUG").is_ok() { eprintln!("ratio {ratio:.4} window {:.4} now {now:.4}", self.window); }
        Some(now)
    }
}

/// The sharded store.
pub(crate) struct Store<K, V> {
    shards: Box<[CachePadded<RwLock<Shard<K, V>>>]>,
    mask: usize,
    hasher: foldhash::fast::RandomState,
    weigher: Weigher<K, V>,
    counters: Arc<Counters>,
    listener: Option<Listener<K, V>>,
    /// The window's share of each shard's capacity, in 1/65,536ths.
    window: AtomicU32,
    /// Set at the first eviction: the climber waits for a full cache.
    full: AtomicBool,
    climber: Mutex<Climber>,
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
        let n = std::env::var("EXP_SHARDS").ok().and_then(|w| w.parse().ok()).unwrap_or(shards.max(1).next_power_of_two());
        let hasher = foldhash::fast::RandomState::default();
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
            window: AtomicU32::new(fraction(std::env::var("EXP_WINDOW").ok().and_then(|w| w.parse().ok()).unwrap_or(WINDOW_START))),
            full: AtomicBool::new(false),
            climber: Mutex::new(Climber::new(
                capacity.min(entries).max(64).saturating_mul(std::env::var("EXP_SAMPLE").ok().and_then(|w| w.parse().ok()).unwrap_or(3)),
            )),
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

    /// The window's share of a shard of `capacity` now.
    #[inline]
    fn window_of(&self, capacity: u64) -> u64 {
        let share = u64::from(self.window.load(Relaxed));
        u64::try_from(u128::from(capacity) * u128::from(share) >> 16).unwrap_or(capacity)
    }

    /// A copy of the entry for `key` (a hit for the policy).
    #[inline]
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<Slot<V>>
    where
        Q: Hash + Equivalent<K> + ?Sized,
        V: Clone,
    {
        let hash = self.hash(key);
        self.shard(hash).read().get(hash, key).cloned()
    }

    /// Stores `slot` under `key`.
    pub(crate) fn insert(&self, key: K, slot: Slot<V>) {
        let hash = self.hash(&key);
        let weight = self.weigher.weigh(&key, &slot);
        let mut out = self.removals();
        let climb = {
            let mut shard = self.shard(hash).write();
            let window = if std::env::var("EXP_GHOST").is_ok() { shard.window } else { self.window_of(shard.capacity) };
            let new = shard.insert(hash, key, slot, weight, window, &mut out);
            new && shard.inserts % 64 == 0
        };
        self.deliver(out);
        if climb {
            self.climb();
        }
    }

    fn climb(&self) {
        if std::env::var("EXP_WINDOW").is_ok() { return; }
        if !self.full.load(Relaxed) {
            return;
        }
        let Some(mut climber) = self.climber.try_lock() else {
            return;
        };
        let hits = self.counters.total(Event::Hit);
        let misses = self.counters.total(Event::Miss);
        if let Some(window) = climber.climb(hits, misses) {
            self.window.store(fraction(window), Relaxed);
        }
    }

    /// Removes `key` (cause: invalidated); whether it was there.
    pub(crate) fn remove<Q>(&self, key: &Q) -> bool
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let hash = self.hash(key);
        let removed = self.shard(hash).write().remove(hash, key);
        let found = removed.is_some();
        if let Some((k, slot)) = removed {
            let mut out = self.removals();
            out.removed(k, slot, RemovalCause::Invalidated);
            self.deliver(out);
        }
        found
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

    /// Copies of the entries of shard `index` that `pick` keeps.
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
            {
                let mut shard = shard.write();
                shard.capacity = share(capacity, n, i);
                let window = self.window_of(shard.capacity);
                shard.evict(window, &mut out);
            }
            self.deliver(out);
        }
    }

    fn removals(&self) -> Removals<K, V> {
        Removals::new(self.listener.is_some())
    }

    /// Counts what went and hands it to the listener, outside any lock.
    fn deliver(&self, out: Removals<K, V>) {
        if out.evicted > 0 {
            self.counters.add(Event::EvictSize, out.evicted);
            if !self.full.load(Relaxed) {
                self.full.store(true, Relaxed);
            }
        }
        if let Some(listener) = &self.listener {
            listener.deliver(out.into_list());
        }
    }
}

fn fraction(share: f64) -> u32 {
    (share.clamp(0.0, 1.0) * 65_536.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn holds_at_most_its_capacity_and_keeps_the_queues_consistent() {
        let s = store(1_000, 4);
        for i in 0..10_000u64 {
            s.insert(i % 3_000, slot(i));
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
            for (q, queue) in shard.queues.iter().enumerate() {
                // Walk each queue both ways.
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
    fn a_popular_key_survives_a_scan_of_keys_seen_once() {
        let s = store(100, 1);
        for _ in 0..20 {
            for k in 0..50 {
                if s.get(&k).is_none() {
                    s.insert(k, slot(k));
                }
            }
        }
        // A scan of 10,000 keys seen once each.
        for k in 1_000..11_000 {
            s.insert(k, slot(k));
        }
        let kept = (0..50).filter(|k| s.get(k).is_some()).count();
        assert!(kept >= 45, "{kept} of 50 popular keys kept through the scan");
    }

}
