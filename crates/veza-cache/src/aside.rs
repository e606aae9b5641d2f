//! Cache-aside: [`Cache`] as a [`veza_core::AsyncCache`], and [`CacheAside`], which wraps any
//! async loader (the guide's `GetUserWithCache`).

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use veza_core::{AsyncCache, BoxError, BoxFuture, SharedError};

use crate::cache::Cache;

impl<K, V> AsyncCache<K, V> for Cache<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn get<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Option<V>> {
        Box::pin(std::future::ready(Cache::get(self, key)))
    }

    fn insert(&self, key: K, value: V) -> BoxFuture<'_, ()> {
        Cache::insert(self, key, value);
        Box::pin(std::future::ready(()))
    }

    fn get_or_load<'a>(
        &'a self,
        key: K,
        loader: BoxFuture<'a, Result<V, BoxError>>,
    ) -> BoxFuture<'a, Result<V, SharedError>> {
        Box::pin(async move { self.try_get_or_load_async(&key, loader).await })
    }

    fn invalidate<'a>(&'a self, key: &'a K) -> BoxFuture<'a, ()> {
        Cache::invalidate(self, key);
        Box::pin(std::future::ready(()))
    }

    fn invalidate_all(&self) -> BoxFuture<'_, ()> {
        Cache::invalidate_all(self);
        Box::pin(std::future::ready(()))
    }
}

/// A cache in front of an async loader: `get(key)` answers from the cache, or calls
/// `loader(key)` once for all concurrent callers and caches the value.
///
/// ```
/// # tokio_test_shim::run(async {
/// use std::sync::Arc;
/// use veza_cache::{Cache, CacheAside};
///
/// let users = CacheAside::new(Arc::new(Cache::new(10_000)?), |id: u64| async move {
///     Ok::<_, std::io::Error>(format!("user {id}")) // e.g. SELECT ... WHERE id = $1
/// });
/// assert_eq!(users.get(7).await?, "user 7");
/// users.invalidate(&7); // after an UPDATE
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// # mod tokio_test_shim {
/// #     pub fn run<F: std::future::Future>(f: F) -> F::Output {
/// #         let mut f = std::pin::pin!(f);
/// #         let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
/// #         loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// #     }
/// # }
/// ```
pub struct CacheAside<K, V, F> {
    cache: Arc<Cache<K, V>>,
    loader: F,
}

impl<K, V, F, Fut, E> CacheAside<K, V, F>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    F: Fn(K) -> Fut,
    Fut: Future<Output = Result<V, E>>,
    E: Into<BoxError>,
{
    /// Puts `cache` in front of `loader`.
    pub fn new(cache: Arc<Cache<K, V>>, loader: F) -> Self {
        CacheAside { cache, loader }
    }

    /// The value for `key`, from the cache or the loader.
    pub async fn get(&self, key: K) -> Result<V, SharedError> {
        let load = (self.loader)(key.clone());
        self.cache.try_get_or_load_async(&key, load).await
    }

    /// Forgets `key` (after a write to the source).
    pub fn invalidate(&self, key: &K) {
        Cache::invalidate(&self.cache, key);
    }

    /// Forgets every key for which `predicate` is true.
    pub fn invalidate_if(&self, predicate: impl Fn(&K, &V) -> bool) {
        self.cache.invalidate_if(predicate);
    }

    /// Forgets everything.
    pub fn invalidate_all(&self) {
        Cache::invalidate_all(&self.cache);
    }

    /// The cache, for statistics.
    pub fn cache(&self) -> &Arc<Cache<K, V>> {
        &self.cache
    }
}

impl<K, V, F> fmt::Debug for CacheAside<K, V, F>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheAside")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}
