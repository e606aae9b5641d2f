//! Request coalescing: identical concurrent requests share one upstream exchange.
//!
//! Every caller waits on the same `tokio::sync::OnceCell`; the first runs the fetch. If that
//! caller is dropped (its future cancelled), the next waiter runs its own fetch in its place,
//! so a cancelled leader never strands the others. Errors are shared too, so a failing
//! upstream sees one request per wave, not one per caller.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::OnceCell;

use crate::{Error, Response};

type Shared = Arc<OnceCell<Result<Response, Error>>>;

/// The requests in flight, by a hash of method, URI and headers.
#[derive(Debug, Default)]
pub(crate) struct Coalescer {
    inflight: Mutex<HashMap<u64, Shared>>,
    keyed: RandomState,
}

impl Coalescer {
    /// The identity of a request: same method, URI and headers (in order) means same request.
    pub(crate) fn key(&self, req: &http::request::Parts) -> u64 {
        let mut h = self.keyed.build_hasher();
        req.method.hash(&mut h);
        req.uri.hash(&mut h);
        for (name, value) in &req.headers {
            name.hash(&mut h);
            value.as_bytes().hash(&mut h);
        }
        h.finish()
    }

    /// Runs `fetch` unless an identical request is already in flight, in which case its
    /// result is shared.
    pub(crate) async fn run<F, Fut>(&self, key: u64, fetch: F) -> Result<Response, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Response, Error>>,
    {
        let cell = Arc::clone(self.inflight.lock().entry(key).or_default());
        let mut ran = false;
        let mut out = cell
            .get_or_init(|| {
                ran = true;
                fetch()
            })
            .await
            .clone();
        if let (false, Ok(r)) = (ran, &mut out) {
            r.cache = crate::CacheStatus::Coalesced;
        }
        let mut inflight = self.inflight.lock();
        if inflight.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            inflight.remove(&key);
        }
        out
    }

    /// Requests in flight (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inflight.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CacheStatus;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn ok() -> Response {
        Response {
            status: http::StatusCode::OK,
            version: http::Version::HTTP_11,
            headers: http::HeaderMap::new(),
            body: bytes::Bytes::from_static(b"x"),
            cache: CacheStatus::Miss,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_run_and_a_cancelled_leader_is_replaced() {
        let c = Arc::new(Coalescer::default());
        let runs = Arc::new(AtomicUsize::new(0));
        // A leader that is cancelled mid-fetch.
        let leader = {
            let (c, runs) = (Arc::clone(&c), Arc::clone(&runs));
            tokio::spawn(async move {
                c.run(1, || async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok(ok())
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut followers = Vec::new();
        for _ in 0..10 {
            let (c, runs) = (Arc::clone(&c), Arc::clone(&runs));
            followers.push(tokio::spawn(async move {
                c.run(1, || async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(ok())
                })
                .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        leader.abort();
        let mut statuses = Vec::new();
        for f in followers {
            let r = f.await.unwrap().unwrap();
            assert_eq!(r.status(), http::StatusCode::OK);
            statuses.push(r.cache_status());
        }
        // The replacement leader's own call reports its fetch; the other nine shared it.
        let coalesced = statuses
            .iter()
            .filter(|s| **s == CacheStatus::Coalesced)
            .count();
        assert_eq!(coalesced, 9, "{statuses:?}");
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "the leader, then one replacement"
        );
        assert_eq!(c.len(), 0, "nothing left in flight");
    }
}
