//! Loads that go on without their caller (feature `tokio`): [`Cache::get_or_refresh`], with
//! soft and hard load timeouts and refresh-ahead, as FusionCache made popular.
//!
//! The load runs in a task of its own, which leads the key's flight: callers wait on the
//! flight for as long as their timeout allows, and the task stores the value whenever it
//! finishes, even if nobody waits any more. Outside a Tokio runtime the load runs in the
//! caller, without timeouts.

use std::future::Future;
use std::hash::Hash;
use std::time::{Duration, Instant};

use veza_core::{BoxError, SharedError};

use crate::cache::{Cache, Lookup};
use crate::entry::{NEVER, Slot, nanos};
use crate::flight::{Joined, Lead};
use crate::stats::Event;

impl<K, V> Cache<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The value for `key`, or `load()`'s, with the builder's resilience settings:
    ///
    /// - [`refresh_ahead`](crate::CacheBuilder::refresh_ahead): a hit on a value close to
    ///   its expiry returns it at once and starts `load` in the background (once per key).
    /// - [`soft_timeout`](crate::CacheBuilder::soft_timeout): with a stale value kept
    ///   ([`fail_safe`](crate::CacheBuilder::fail_safe)), callers wait that long at most,
    ///   then get the stale value.
    /// - [`hard_timeout`](crate::CacheBuilder::hard_timeout): callers wait that long at
    ///   most, then get the stale value if one is kept, else an error of kind `TimedOut`.
    ///
    /// In every case the load goes on and stores its value when it finishes; concurrent
    /// callers share one load; a failed load with a stale value kept serves that value.
    /// `load` must be `'static` (it may outlive this call) and is called at most once.
    pub async fn get_or_refresh<F, Fut, E>(&self, key: &K, load: F) -> Result<V, SharedError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let load = move || {
            let loading = load();
            async move {
                loading
                    .await
                    .map(|value| (value, None))
                    .map_err(|e| SharedError::from(e.into()))
            }
        };
        self.get_or_refresh_ttl(key, load, Box::new(|| ())).await
    }

    /// [`get_or_refresh`](Cache::get_or_refresh) with a loader that also gives its value's
    /// time to live here (the tiered cache bounds it by Redis's; zero keeps nothing), and
    /// `after`, run once the load (if this call starts one) has stored its value.
    pub(crate) async fn get_or_refresh_ttl<F, Fut>(
        &self,
        key: &K,
        load: F,
        after: After,
    ) -> Result<V, SharedError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(V, Option<Duration>), SharedError>> + Send + 'static,
    {
        let stale = match self.s.store.get(key) {
            Some(slot) => {
                let expires = match &slot {
                    Slot::Value { expires, .. } => *expires,
                    Slot::Absent { .. } | Slot::Failed(_) => NEVER,
                };
                match self.classify(key, slot) {
                    Lookup::Value(value) => {
                        self.s.counters.add(Event::Hit, 1);
                        if self.due_for_refresh(expires) {
                            self.refresh(key, load, after);
                        }
                        return Ok(value);
                    }
                    Lookup::Stale(value) => Some(value),
                    Lookup::Absent | Lookup::Failed(_) | Lookup::Missing => None,
                }
            }
            None => None,
        };
        self.s.counters.add(Event::Miss, 1);
        let hash = self.s.store.hash(key);
        let flight = match self.s.flights.join(hash, key, || self.fresh(key)) {
            Joined::Found(slot) => return self.value_of(key, slot, stale),
            Joined::Wait(flight) => flight,
            Joined::Lead(lead) => {
                let flight = lead.flight();
                let task = self.load_task(key.clone(), load, stale.clone(), lead, after);
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => drop(runtime.spawn(task)),
                    Err(_) => task.await, // no runtime: load here, no timeouts
                }
                flight
            }
        };
        let limit = match stale {
            Some(_) => self.s.soft_timeout.or(self.s.hard_timeout),
            None => self.s.hard_timeout,
        };
        let waited = match limit {
            Some(limit) => tokio::time::timeout(limit, flight.wait_async()).await.ok(),
            None => Some(flight.wait_async().await),
        };
        match (waited, stale) {
            (Some(Some(slot)), stale) => self.value_of(key, slot, stale),
            // The load was abandoned (its task panicked): the stale value, or an error.
            (Some(None), Some(value)) | (None, Some(value)) => Ok(value),
            (Some(None), None) => Err(error(std::io::ErrorKind::Other, "the cache load panicked")),
            (None, None) => Err(error(
                std::io::ErrorKind::TimedOut,
                &format!("cache load timed out after {:?}", limit.unwrap_or_default()),
            )),
        }
    }

    /// Whether a value expiring at `expires` is close enough to start a refresh.
    fn due_for_refresh(&self, expires: u64) -> bool {
        match self.s.refresh_ahead {
            Some(ahead) if expires != NEVER => {
                nanos(Instant::now()).saturating_add(ahead) >= expires
            }
            _ => false,
        }
    }

    /// Starts `load` in the background unless a load of `key` is already running.
    fn refresh<F, Fut>(&self, key: &K, load: F, after: After)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(V, Option<Duration>), SharedError>> + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // nowhere to run it: the value expires and the next call loads
        };
        let hash = self.s.store.hash(key);
        if let Joined::Lead(lead) = self.s.flights.join(hash, key, || None) {
            drop(runtime.spawn(self.load_task(key.clone(), load, None, lead, after)));
        }
    }

    /// The task that runs `load` and ends the flight `lead` leads.
    fn load_task<F, Fut>(
        &self,
        key: K,
        load: F,
        stale: Option<V>,
        lead: Lead<K, V>,
        after: After,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(V, Option<Duration>), SharedError>> + Send + 'static,
    {
        let cache = self.clone();
        async move {
            cache.s.counters.add(Event::Load, 1);
            let (outcome, ttl) = match load().await {
                Ok((value, ttl)) => (Ok(Some(value)), ttl),
                Err(err) => (Err(err), None),
            };
            let _ = cache.finish(&key, outcome, ttl, stale, lead);
            after();
        }
    }

    /// The value a finished load handed over.
    fn value_of(&self, key: &K, slot: Slot<V>, stale: Option<V>) -> Result<V, SharedError> {
        match self.settle(key, slot) {
            Some(Ok(Some(value))) => Ok(value),
            Some(Err(err)) => stale.ok_or(err),
            // A cached absence (from another API) or an entry gone meanwhile.
            Some(Ok(None)) | None => stale
                .ok_or_else(|| error(std::io::ErrorKind::NotFound, "the cache load found nothing")),
        }
    }
}

/// What runs once a background load has stored its value.
pub(crate) type After = Box<dyn FnOnce() + Send>;

fn error(kind: std::io::ErrorKind, message: &str) -> SharedError {
    let boxed: BoxError = Box::new(std::io::Error::new(kind, message.to_owned()));
    SharedError::from(boxed)
}
