//! Single-flight loading: concurrent misses on one key run one loader; its value, absence or
//! error reaches every caller that waited.
//!
//! Built on the registry of loads in flight (module `flight`): the first caller to miss leads
//! the load; the others wait for it. A value (or a cached absence) is stored in the cache,
//! then handed to the waiters; an error, or an absence that is not cached, is only handed to
//! them, so the next call loads again. A loader that panics, or whose future is dropped,
//! abandons its flight: the waiters wake and one of them loads (the trap of moka issue #240
//! does not apply).

use std::future::Future;
use std::hash::Hash;
use std::time::{Duration, Instant};

use veza_core::{BoxError, SharedError};

use crate::cache::{Cache, Lookup};
use crate::entry::{NEVER, Slot};
use crate::flight::{Joined, Lead};
use crate::stats::Event;

impl<K, V> Cache<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The cached value for `key`, or `load()`'s (stored), loading once for concurrent misses.
    pub fn get_or_load(&self, key: &K, load: impl FnOnce() -> V) -> V {
        self.entry_or_load(key, load).into_value()
    }

    /// Like [`get_or_load`](Cache::get_or_load), saying where the value came from: a hit,
    /// this call's own load, or another caller's load this call waited for (moka's
    /// `entry().or_insert_with()` tells the first two apart with `is_fresh`).
    pub fn entry_or_load(&self, key: &K, load: impl FnOnce() -> V) -> Entry<V> {
        let mut load = Some(|| Ok(Some(load())));
        loop {
            match self.load_blocking(key, &mut load) {
                (Ok(Some(value)), source) => return Entry { value, source },
                // We waited on another caller's load, which failed: load ourselves.
                _ if load.is_some() => continue,
                _ => unreachable!("an infallible loader always gives a value"),
            }
        }
    }

    /// Like [`get_or_load`](Cache::get_or_load) with a fallible loader. The error reaches
    /// every caller that waited on this load and is not cached.
    pub fn try_get_or_load<E>(
        &self,
        key: &K,
        load: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, SharedError>
    where
        E: Into<BoxError>,
    {
        self.load_blocking(key, &mut Some(|| load().map(Some).map_err(shared)))
            .0
            .map(|v| v.expect("a loaded value"))
    }

    /// Like [`try_get_or_load`](Cache::try_get_or_load) for lookups that may find nothing:
    /// `Ok(None)` is cached for the builder's `negative_ttl` (not at all without one).
    pub fn try_get_or_load_opt<E>(
        &self,
        key: &K,
        load: impl FnOnce() -> Result<Option<V>, E>,
    ) -> Result<Option<V>, SharedError>
    where
        E: Into<BoxError>,
    {
        self.load_blocking(key, &mut Some(|| load().map_err(shared)))
            .0
    }

    /// Async [`get_or_load`](Cache::get_or_load): waiting callers do not block their thread.
    pub async fn get_or_load_async<F>(&self, key: &K, load: F) -> V
    where
        F: Future<Output = V>,
    {
        self.entry_or_load_async(key, load).await.into_value()
    }

    /// Async [`entry_or_load`](Cache::entry_or_load).
    pub async fn entry_or_load_async<F>(&self, key: &K, load: F) -> Entry<V>
    where
        F: Future<Output = V>,
    {
        let mut load = Some(async { Ok(Some((load.await, None))) });
        loop {
            match self.load_async(key, &mut load).await {
                (Ok(Some(value)), source) => return Entry { value, source },
                _ if load.is_some() => continue,
                _ => unreachable!("an infallible loader always gives a value"),
            }
        }
    }

    /// Async [`try_get_or_load`](Cache::try_get_or_load).
    pub async fn try_get_or_load_async<F, E>(&self, key: &K, load: F) -> Result<V, SharedError>
    where
        F: Future<Output = Result<V, E>>,
        E: Into<BoxError>,
    {
        self.load_async(
            key,
            &mut Some(async { load.await.map(|v| Some((v, None))).map_err(shared) }),
        )
        .await
        .0
        .map(|v| v.expect("a loaded value"))
    }

    /// Async [`try_get_or_load_opt`](Cache::try_get_or_load_opt).
    pub async fn try_get_or_load_opt_async<F, E>(
        &self,
        key: &K,
        load: F,
    ) -> Result<Option<V>, SharedError>
    where
        F: Future<Output = Result<Option<V>, E>>,
        E: Into<BoxError>,
    {
        self.load_async(
            key,
            &mut Some(async {
                load.await
                    .map(|found| found.map(|v| (v, None)))
                    .map_err(shared)
            }),
        )
        .await
        .0
    }

    /// Like [`try_get_or_load_opt_async`](Cache::try_get_or_load_opt_async) with a loader that
    /// also says how long its value may live here (at most; the cache's own time to live is
    /// used when it says nothing): the tiered cache bounds a value filled from Redis by the
    /// time Redis keeps it.
    #[cfg(feature = "redis")]
    pub(crate) async fn load_with_ttl_async<F>(
        &self,
        key: &K,
        load: F,
    ) -> (Result<Option<V>, SharedError>, Source)
    where
        F: Future<Output = Result<Option<(V, Option<std::time::Duration>)>, SharedError>>,
    {
        self.load_async(key, &mut Some(load)).await
    }

    /// Loads through the registry of flights. `load` is taken only if this caller loads; when
    /// it is still there afterwards, the outcome came from a cached entry or another caller's
    /// load.
    fn load_blocking<F>(
        &self,
        key: &K,
        load: &mut Option<F>,
    ) -> (Result<Option<V>, SharedError>, Source)
    where
        F: FnOnce() -> Result<Option<V>, SharedError>,
    {
        let stale = match self.hit(key) {
            Ok(found) => return (found, Source::Hit),
            Err(stale) => stale,
        };
        self.s.counters.add(Event::Miss, 1);
        let hash = self.s.store.hash(key);
        loop {
            let slot = match self.s.flights.join(hash, key, || self.fresh(key)) {
                Joined::Found(slot) => Some(slot),
                Joined::Wait(flight) => flight.wait(),
                Joined::Lead(lead) => {
                    let load = load.take().expect("we load at most once");
                    self.s.counters.add(Event::Load, 1);
                    let outcome = load();
                    return self.finish(key, outcome, None, stale, lead);
                }
            };
            // Abandoned, or expired meanwhile: go again (and perhaps lead).
            if let Some(outcome) = slot.and_then(|slot| self.settle(key, slot)) {
                return (outcome, Source::Coalesced);
            }
        }
    }

    /// The async twin of `load_blocking`; the loader may also give its value's time to live.
    async fn load_async<F>(
        &self,
        key: &K,
        load: &mut Option<F>,
    ) -> (Result<Option<V>, SharedError>, Source)
    where
        F: Future<Output = Result<Option<(V, Option<Duration>)>, SharedError>>,
    {
        let stale = match self.hit(key) {
            Ok(found) => return (found, Source::Hit),
            Err(stale) => stale,
        };
        self.s.counters.add(Event::Miss, 1);
        let hash = self.s.store.hash(key);
        loop {
            let slot = match self.s.flights.join(hash, key, || self.fresh(key)) {
                Joined::Found(slot) => Some(slot),
                Joined::Wait(flight) => flight.wait_async().await,
                Joined::Lead(lead) => {
                    let load = load.take().expect("we load at most once");
                    self.s.counters.add(Event::Load, 1);
                    let (outcome, ttl) = match load.await {
                        Ok(Some((value, ttl))) => (Ok(Some(value)), ttl),
                        Ok(None) => (Ok(None), None),
                        Err(err) => (Err(err), None),
                    };
                    return self.finish(key, outcome, ttl, stale, lead);
                }
            };
            if let Some(outcome) = slot.and_then(|slot| self.settle(key, slot)) {
                return (outcome, Source::Coalesced);
            }
        }
    }

    /// A fresh value or cached absence, counted as a hit; else the stale value kept for
    /// fail-safe, if any.
    pub(crate) fn hit(&self, key: &K) -> Result<Result<Option<V>, SharedError>, Option<V>> {
        let found = match self.lookup(key) {
            Lookup::Value(v) => Ok(Some(v)),
            Lookup::Absent => Ok(None),
            Lookup::Stale(v) => return Err(Some(v)),
            Lookup::Failed(_) | Lookup::Missing => return Err(None),
        };
        self.s.counters.add(Event::Hit, 1);
        Ok(found)
    }

    /// What the cache holds for `key`, if it is not past its time to live (a stale entry is
    /// no answer for a caller that joins a load).
    pub(crate) fn fresh(&self, key: &K) -> Option<Slot<V>> {
        self.s
            .store
            .get(key)
            .filter(|slot| !slot.expired(Instant::now(), self.s.idle))
    }

    /// What a waiter got from the load it joined; `None` if it expired meanwhile.
    pub(crate) fn settle(&self, key: &K, slot: Slot<V>) -> Option<Result<Option<V>, SharedError>> {
        match self.classify(key, slot) {
            Lookup::Value(v) => Some(Ok(Some(v))),
            Lookup::Absent => Some(Ok(None)),
            Lookup::Failed(err) => Some(Err(err)),
            Lookup::Stale(_) | Lookup::Missing => None,
        }
    }

    /// Stores the outcome of our load (a value, or an absence with a negative time to live),
    /// hands it to the waiters and returns it; a failed load with a stale value kept for
    /// fail-safe hands and returns that value instead of the error.
    pub(crate) fn finish(
        &self,
        key: &K,
        outcome: Result<Option<V>, SharedError>,
        ttl: Option<Duration>,
        stale: Option<V>,
        lead: Lead<K, V>,
    ) -> (Result<Option<V>, SharedError>, Source) {
        if let (Err(_err), Some(value)) = (&outcome, stale) {
            self.s.counters.add(Event::LoadFailure, 1);
            #[cfg(feature = "tracing")]
            tracing::warn!(
                target: "veza_cache::load",
                cache = %self.s.name,
                error = %_err,
                "cache load failed; serving the stale value (fail-safe)",
            );
            lead.finish(Slot::Value {
                value: value.clone(),
                expires: NEVER,
                touched: None,
            });
            return (Ok(Some(value)), Source::Stale);
        }
        // What to store in the cache and hand to the waiters.
        let (stored, handed) = match &outcome {
            // A time to live of zero: hand the value over, keep nothing (the tiered cache
            // says so when an invalidation raced with the load).
            Ok(Some(value)) if ttl == Some(Duration::ZERO) => (
                None,
                Slot::Value {
                    value: value.clone(),
                    expires: NEVER,
                    touched: None,
                },
            ),
            Ok(Some(value)) => {
                let slot = self.value_slot(value.clone(), ttl.or(self.s.ttl));
                (Some(slot.clone()), slot)
            }
            Ok(None) => match self.s.negative_ttl {
                // A negative time to live too long to count never expires.
                Some(ttl) => {
                    let slot = Slot::Absent {
                        expires: crate::entry::deadline(Instant::now(), ttl),
                    };
                    (Some(slot.clone()), slot)
                }
                // Hand "absent" to the waiters only.
                None => (None, Slot::Absent { expires: NEVER }),
            },
            Err(err) => {
                self.s.counters.add(Event::LoadFailure, 1);
                #[cfg(feature = "tracing")]
                tracing::warn!(
                    target: "veza_cache::load",
                    cache = %self.s.name,
                    error = %err,
                    "cache load failed",
                );
                (None, Slot::Failed(err.clone()))
            }
        };
        if let Some(slot) = stored {
            // A loaded value counts as an insert (with its evictions); a cached absence not.
            let value = matches!(slot, Slot::Value { .. });
            self.s.store.insert(key.clone(), slot, value);
        }
        lead.finish(handed);
        // No stats pass here: the metrics are published at each scrape (veza_core::publish).
        (outcome, Source::Loaded)
    }
}

/// Where a value from [`Cache::entry_or_load`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// The cache held it.
    Hit,
    /// This call ran the loader.
    Loaded,
    /// Another caller was loading it; this call waited for that load.
    Coalesced,
    /// The load failed and the cache served the value it kept past its time to live
    /// ([`CacheBuilder::fail_safe`](crate::CacheBuilder::fail_safe)).
    Stale,
}

/// A value from [`Cache::entry_or_load`], with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<V> {
    value: V,
    source: Source,
}

impl<V> Entry<V> {
    /// The value.
    pub fn value(&self) -> &V {
        &self.value
    }

    /// The value, taken out.
    pub fn into_value(self) -> V {
        self.value
    }

    /// Where it came from.
    pub fn source(&self) -> Source {
        self.source
    }

    /// Whether this call loaded it (moka's `Entry::is_fresh`).
    pub fn is_fresh(&self) -> bool {
        self.source == Source::Loaded
    }
}

/// Any loader error, shared.
fn shared(err: impl Into<BoxError>) -> SharedError {
    let boxed: BoxError = err.into();
    SharedError::from(boxed)
}
