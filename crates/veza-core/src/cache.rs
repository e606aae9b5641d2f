//! The cache-aside seam: [`AsyncCache`], so a component can use a cache without depending on
//! a cache crate.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::BoxError;

/// A boxed, `Send` future: what the object-safe traits of this crate return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An error shared by every caller that waited on the same load.
///
/// When concurrent misses on one key share a single load, they all receive the same error,
/// hence the `Arc`.
pub type SharedError = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// An asynchronous cache for cache-aside reads.
///
/// This is the meeting point of crates that need a cache (a database query helper, an HTTP
/// client) and crates that provide one, so neither depends on the other. It is object safe:
/// store an `Arc<dyn AsyncCache<K, V>>`.
///
/// # Contract
///
/// - [`get_or_load`](AsyncCache::get_or_load) runs the loader at most once for concurrent misses
///   on the same key (single flight) and hands every waiter the same value or the same error.
///   A failed load is not cached: the next call loads again. If the loader future is dropped
///   or panics, the other waiters must not wait forever: one of them loads again.
/// - [`insert`](AsyncCache::insert) may decline to keep a value (capacity, weight); a later `get`
///   then misses, which is always allowed.
/// - Invalidation is visible to every `get` that starts after the invalidation's future
///   completes.
pub trait AsyncCache<K, V>: Send + Sync
where
    K: Send + Sync,
    V: Send + Sync,
{
    /// The cached value for `key`, if present and fresh.
    fn get<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Option<V>>;

    /// Stores `value` under `key`, replacing any previous value.
    fn insert(&self, key: K, value: V) -> BoxFuture<'_, ()>;

    /// The cached value for `key`, or the result of `loader` (stored on success).
    fn get_or_load<'a>(
        &'a self,
        key: K,
        loader: BoxFuture<'a, Result<V, BoxError>>,
    ) -> BoxFuture<'a, Result<V, SharedError>>;

    /// Removes `key`.
    fn invalidate<'a>(&'a self, key: &'a K) -> BoxFuture<'a, ()>;

    /// Removes every entry.
    fn invalidate_all(&self) -> BoxFuture<'_, ()>;
}

impl<K, V, C> AsyncCache<K, V> for Arc<C>
where
    K: Send + Sync,
    V: Send + Sync,
    C: AsyncCache<K, V> + ?Sized,
{
    fn get<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Option<V>> {
        (**self).get(key)
    }

    fn insert(&self, key: K, value: V) -> BoxFuture<'_, ()> {
        (**self).insert(key, value)
    }

    fn get_or_load<'a>(
        &'a self,
        key: K,
        loader: BoxFuture<'a, Result<V, BoxError>>,
    ) -> BoxFuture<'a, Result<V, SharedError>> {
        (**self).get_or_load(key, loader)
    }

    fn invalidate<'a>(&'a self, key: &'a K) -> BoxFuture<'a, ()> {
        (**self).invalidate(key)
    }

    fn invalidate_all(&self) -> BoxFuture<'_, ()> {
        (**self).invalidate_all()
    }
}
