//! [`CacheBuilder`]: capacity by entries or by weight, time to live, negative caching, name.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use crate::cache::Cache;
use crate::entry::WeighFn;
use crate::error::ConfigError;

/// Builds a [`Cache`]: `Cache::builder().max_entries(10_000).time_to_live(ttl).build()`.
pub struct CacheBuilder<K, V> {
    pub(crate) name: String,
    pub(crate) capacity: u64,
    pub(crate) estimated_entries: Option<usize>,
    pub(crate) weigher: Option<WeighFn<K, V>>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) tti: Option<Duration>,
    pub(crate) negative_ttl: Option<Duration>,
}

impl<K, V> Default for CacheBuilder<K, V> {
    fn default() -> Self {
        CacheBuilder {
            name: "default".to_owned(),
            capacity: 10_000,
            estimated_entries: None,
            weigher: None,
            ttl: None,
            tti: None,
            negative_ttl: None,
        }
    }
}

impl<K, V> CacheBuilder<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The cache's name: the `cache` label of its metrics (default `"default"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// At most this many entries (default 10,000).
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.capacity = entries;
        self.weigher = None;
        self
    }

    /// At most this total weight, each entry weighed by `weigher` (for example its size in
    /// bytes; a weight of 0 counts as 1). `estimated_entries` sizes the table.
    pub fn max_weight(
        mut self,
        weight: u64,
        estimated_entries: usize,
        weigher: impl Fn(&K, &V) -> u64 + Send + Sync + 'static,
    ) -> Self {
        self.capacity = weight;
        self.estimated_entries = Some(estimated_entries);
        self.weigher = Some(Arc::new(weigher));
        self
    }

    /// Entries expire this long after they were stored (checked on read).
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Entries not read for this long expire (checked on read; each read restarts the
    /// clock). Costs an atomic store per hit on the entry's idle clock, so only set it when
    /// needed.
    pub fn time_to_idle(mut self, tti: Duration) -> Self {
        self.tti = Some(tti);
        self
    }

    /// Caches "not found" answers of [`try_get_or_load_opt`](Cache::try_get_or_load_opt) for
    /// this long. Without it, absences are not cached.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }

    /// The cache. Install a metrics recorder before this call.
    pub fn build(self) -> Result<Cache<K, V>, ConfigError> {
        if self.capacity == 0 {
            return Err(ConfigError("capacity must be at least 1"));
        }
        if [self.ttl, self.tti, self.negative_ttl]
            .iter()
            .any(|t| t.is_some_and(|t| t.is_zero()))
        {
            return Err(ConfigError("time to live must be above zero"));
        }
        Ok(Cache::from_builder(self))
    }
}

impl<K, V> fmt::Debug for CacheBuilder<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("name", &self.name)
            .field("capacity", &self.capacity)
            .field("weighed", &self.weigher.is_some())
            .field("ttl", &self.ttl)
            .field("tti", &self.tti)
            .field("negative_ttl", &self.negative_ttl)
            .finish()
    }
}
