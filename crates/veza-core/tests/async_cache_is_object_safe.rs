//! `AsyncCache` works as a trait object, and a reference implementation honours the contract
//! that the seam documents for single-flight errors: failures are not cached.

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use veza_core::{AsyncCache, BoxError, BoxFuture, SharedError};

/// A map under a mutex: enough to exercise the trait, not a real cache.
#[derive(Default)]
struct MapCache(Mutex<HashMap<u32, String>>);

impl AsyncCache<u32, String> for MapCache {
    fn get<'a>(&'a self, key: &'a u32) -> BoxFuture<'a, Option<String>> {
        Box::pin(async move { self.0.lock().unwrap().get(key).cloned() })
    }

    fn insert(&self, key: u32, value: String) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.0.lock().unwrap().insert(key, value);
        })
    }

    fn get_or_load<'a>(
        &'a self,
        key: u32,
        loader: BoxFuture<'a, Result<String, BoxError>>,
    ) -> BoxFuture<'a, Result<String, SharedError>> {
        Box::pin(async move {
            if let Some(v) = self.get(&key).await {
                return Ok(v);
            }
            let value = loader.await.map_err(SharedError::from)?;
            self.insert(key, value.clone()).await;
            Ok(value)
        })
    }

    fn invalidate<'a>(&'a self, key: &'a u32) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.0.lock().unwrap().remove(key);
        })
    }

    fn invalidate_all(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move { self.0.lock().unwrap().clear() })
    }
}

/// Polls a future that never waits on I/O to completion.
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[test]
fn a_trait_object_serves_cache_aside_reads() {
    let cache: Arc<dyn AsyncCache<u32, String>> = Arc::new(MapCache::default());
    block_on(async {
        let failed = cache
            .get_or_load(
                7,
                Box::pin(async { Err::<String, BoxError>("db down".into()) }),
            )
            .await;
        assert_eq!(failed.unwrap_err().to_string(), "db down");
        assert_eq!(
            cache.get(&7).await,
            None,
            "a failed load must not be cached"
        );

        let loaded = cache
            .get_or_load(7, Box::pin(async { Ok("seven".to_owned()) }))
            .await
            .unwrap();
        assert_eq!(loaded, "seven");
        assert_eq!(cache.get(&7).await.as_deref(), Some("seven"));

        cache.invalidate(&7).await;
        assert_eq!(cache.get(&7).await, None);
        cache.insert(1, "one".into()).await;
        cache.invalidate_all().await;
        assert_eq!(cache.get(&1).await, None);
    });
}
