//! Loads in flight, one per key: the first caller to miss leads the load; the others wait for
//! its outcome, blocking ([`Flight::wait`]) or as a future ([`Flight::wait_async`]).
//!
//! Kept apart from the store so a hit never looks at it. A leader that finishes stores its
//! value in the cache first and only then leaves the registry, and a caller that finds no
//! flight looks at the cache again under the registry's lock: so no caller can miss both
//! the value and the flight, and each key loads once for concurrent misses. A leader that
//! panics or whose future is dropped leaves the flight abandoned: its waiters wake, and one of
//! them leads a new load.

use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use hashbrown::HashTable;
use parking_lot::{Condvar, Mutex};

use crate::entry::Slot;

enum State<V> {
    Loading(Vec<Waker>),
    Done(Slot<V>),
    Abandoned,
}

/// One load in flight.
pub(crate) struct Flight<V> {
    state: Mutex<State<V>>,
    finished: Condvar,
}

impl<V: Clone> Flight<V> {
    /// Blocks until the load ends: its outcome, or `None` if it was abandoned.
    pub(crate) fn wait(&self) -> Option<Slot<V>> {
        let mut state = self.state.lock();
        loop {
            match &*state {
                State::Loading(_) => self.finished.wait(&mut state),
                State::Done(slot) => return Some(slot.clone()),
                State::Abandoned => return None,
            }
        }
    }

    /// [`wait`](Flight::wait) without blocking the thread.
    pub(crate) fn wait_async(self: Arc<Self>) -> Wait<V> {
        Wait { flight: self }
    }

    fn end(&self, outcome: State<V>) {
        let wakers = match std::mem::replace(&mut *self.state.lock(), outcome) {
            State::Loading(wakers) => wakers,
            State::Done(_) | State::Abandoned => Vec::new(),
        };
        self.finished.notify_all();
        for waker in wakers {
            waker.wake();
        }
    }
}

/// The future of [`Flight::wait_async`].
pub(crate) struct Wait<V> {
    flight: Arc<Flight<V>>,
}

impl<V: Clone> Future for Wait<V> {
    type Output = Option<Slot<V>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.flight.state.lock();
        match &mut *state {
            State::Loading(wakers) => {
                if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
            State::Done(slot) => Poll::Ready(Some(slot.clone())),
            State::Abandoned => Poll::Ready(None),
        }
    }
}

type Entry<K, V> = (u64, K, Arc<Flight<V>>);
/// One shard of the registry.
type Registry<K, V> = Mutex<HashTable<Entry<K, V>>>;

/// The loads in flight, sharded by key hash.
pub(crate) struct Flights<K, V> {
    shards: Box<[Registry<K, V>]>,
    mask: usize,
}

/// What a caller that missed does next.
pub(crate) enum Joined<K, V>
where
    K: Eq + Hash + Clone,
    V: Clone,
{
    /// The cache holds the key after all (a load just ended).
    Found(Slot<V>),
    /// Another caller is loading it.
    Wait(Arc<Flight<V>>),
    /// This caller loads it.
    Lead(Lead<K, V>),
}

impl<K, V> Flights<K, V>
where
    K: Eq + Hash + Clone,
    V: Clone,
{
    pub(crate) fn new(shards: usize) -> Self {
        let n = shards.max(1).next_power_of_two();
        Flights {
            shards: (0..n).map(|_| Mutex::new(HashTable::new())).collect(),
            mask: n - 1,
        }
    }

    fn shard(&self, hash: u64) -> &Registry<K, V> {
        &self.shards[(hash >> 32) as usize & self.mask]
    }

    /// Joins the load of `key` (hash `hash`), or starts it. `cached` looks at the cache again
    /// under the registry's lock.
    pub(crate) fn join(
        self: &Arc<Self>,
        hash: u64,
        key: &K,
        cached: impl FnOnce() -> Option<Slot<V>>,
    ) -> Joined<K, V> {
        let mut table = self.shard(hash).lock();
        if let Some((_, _, flight)) = table.find(hash, |(h, k, _)| *h == hash && k == key) {
            return Joined::Wait(flight.clone());
        }
        if let Some(slot) = cached() {
            return Joined::Found(slot);
        }
        let flight = Arc::new(Flight {
            state: Mutex::new(State::Loading(Vec::new())),
            finished: Condvar::new(),
        });
        table.insert_unique(hash, (hash, key.clone(), flight.clone()), |(h, _, _)| *h);
        Joined::Lead(Lead {
            flights: self.clone(),
            hash,
            key: key.clone(),
            flight,
            ended: false,
        })
    }

    fn leave(&self, hash: u64, key: &K, flight: &Arc<Flight<V>>) {
        let mut table = self.shard(hash).lock();
        if let Ok(entry) = table.find_entry(hash, |(h, k, f)| {
            *h == hash && k == key && Arc::ptr_eq(f, flight)
        }) {
            entry.remove();
        }
    }
}

/// The leader's duty: end the flight with an outcome, or (dropped) abandon it. It owns a
/// handle on the registry, so a load can go on in a task of its own.
pub(crate) struct Lead<K, V>
where
    K: Eq + Hash + Clone,
    V: Clone,
{
    flights: Arc<Flights<K, V>>,
    hash: u64,
    key: K,
    flight: Arc<Flight<V>>,
    ended: bool,
}

impl<K, V> Lead<K, V>
where
    K: Eq + Hash + Clone,
    V: Clone,
{
    /// Hands `outcome` to the waiters. Store a value in the cache before calling this.
    /// The flight this leader will end (for callers that wait on it).
    #[cfg(feature = "tokio")]
    pub(crate) fn flight(&self) -> Arc<Flight<V>> {
        self.flight.clone()
    }

    pub(crate) fn finish(mut self, outcome: Slot<V>) {
        self.ended = true;
        self.flights.leave(self.hash, &self.key, &self.flight);
        self.flight.end(State::Done(outcome));
    }
}

impl<K, V> Drop for Lead<K, V>
where
    K: Eq + Hash + Clone,
    V: Clone,
{
    fn drop(&mut self) {
        if !self.ended {
            self.flights.leave(self.hash, &self.key, &self.flight);
            self.flight.end(State::Abandoned);
        }
    }
}
