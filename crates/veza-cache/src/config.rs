//! [`CacheBuilder`]: capacity by entries or by weight, time to live, negative caching, name;
//! [`Config`]: the same settings as a value (with `serde` behind the feature), for caches sized
//! by entries.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use crate::cache::Cache;
use crate::entry::WeighFn;
use crate::error::ConfigError;
use crate::listen::{Listener, RemovalCause};

/// A cache's settings as a value, for configuration files: a cache bounded by entries.
/// Apply it with [`CacheBuilder::config`] (then, for a byte bound, call
/// [`CacheBuilder::max_weight`] with a weigher) or build with [`Cache::from_config`].
///
/// With the `serde` feature it reads and writes durations as `"30s"`; every field is optional:
///
/// ```toml
/// name = "users"
/// max_entries = 100000
/// time_to_live = "5m"
/// negative_ttl = "30s"
/// shards = 8
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct Config {
    /// The `cache` label of its metrics. Default `"default"`.
    pub name: String,
    /// At most this many entries. Default 10,000.
    pub max_entries: u64,
    /// Entries expire this long after they were stored. Default none.
    #[cfg_attr(feature = "serde", serde(with = "veza_core::duration::human::option"))]
    pub time_to_live: Option<Duration>,
    /// Entries not read for this long expire. Default none.
    #[cfg_attr(feature = "serde", serde(with = "veza_core::duration::human::option"))]
    pub time_to_idle: Option<Duration>,
    /// "Not found" answers are cached this long. Default none (not cached).
    #[cfg_attr(feature = "serde", serde(with = "veza_core::duration::human::option"))]
    pub negative_ttl: Option<Duration>,
    /// Split the capacity over this many shards (rounded up to a power of two). Default: 32
    /// per core, fewer so each shard holds at least 1,024 entries, but never fewer than 4 per
    /// core halved to 256 entries a shard. See [`CacheBuilder::shards`].
    pub shards: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "default".to_owned(),
            max_entries: 10_000,
            time_to_live: None,
            time_to_idle: None,
            negative_ttl: None,
            shards: None,
        }
    }
}

impl Config {
    /// Checks the values as [`CacheBuilder::build`] does.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            self.max_entries,
            self.shards,
            [self.time_to_live, self.time_to_idle, self.negative_ttl],
        )
    }
}

/// The checks shared by [`Config::validate`] and [`CacheBuilder::build`].
fn check(
    capacity: u64,
    shards: Option<usize>,
    durations: [Option<Duration>; 3],
) -> Result<(), ConfigError> {
    if capacity == 0 {
        return Err(ConfigError("capacity must be at least 1"));
    }
    if shards == Some(0) {
        return Err(ConfigError("shards must be at least 1"));
    }
    if durations.iter().any(|t| t.is_some_and(|t| t.is_zero())) {
        return Err(ConfigError("time to live must be above zero"));
    }
    Ok(())
}

/// Builds a [`Cache`]: `Cache::builder().max_entries(10_000).time_to_live(ttl).build()`.
pub struct CacheBuilder<K, V> {
    pub(crate) name: String,
    pub(crate) capacity: u64,
    pub(crate) estimated_entries: Option<usize>,
    pub(crate) weigher: Option<WeighFn<K, V>>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) tti: Option<Duration>,
    pub(crate) negative_ttl: Option<Duration>,
    pub(crate) shards: Option<usize>,
    pub(crate) listener: Option<Listener<K, V>>,
    pub(crate) fail_safe: Option<Duration>,
    #[cfg(feature = "tokio")]
    pub(crate) soft_timeout: Option<Duration>,
    #[cfg(feature = "tokio")]
    pub(crate) hard_timeout: Option<Duration>,
    #[cfg(feature = "tokio")]
    pub(crate) refresh_ahead: Option<Duration>,
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
            shards: None,
            listener: None,
            fail_safe: None,
            #[cfg(feature = "tokio")]
            soft_timeout: None,
            #[cfg(feature = "tokio")]
            hard_timeout: None,
            #[cfg(feature = "tokio")]
            refresh_ahead: None,
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

    /// Splits the capacity over `shards` independent shards, each with its own lock and its
    /// own eviction policy (rounded up to a power of two, at most 65,536, and fewer if the
    /// capacity is smaller). More shards, less lock contention between threads; fewer, a
    /// capacity honoured more exactly (one shard: exactly `n` distinct keys fit in a cache of
    /// `n`) and a policy that sees more of the traffic. Default: 32 per core, halved while a
    /// shard would hold fewer than 1,024 entries, and at least 4 per core halved while a shard
    /// would hold fewer than 256 (on 2 cores: 8 shards for 10,000 entries, 64 for 100,000).
    /// Two threads reading a 100,000-entry cache ran about 1.4x faster on 64 shards than on 8.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Calls `listener(key, value, cause)` for every value that leaves the cache: evicted for
    /// capacity, expired (found on a read), invalidated, or replaced by an insert. Cached
    /// absences are not values and are not reported. The calls happen after the shard's lock
    /// is released, on the thread whose call removed the entries (an insert that evicts, a
    /// read that finds an entry expired, an invalidation); a hit never calls it. A panic in
    /// the listener is caught and counted ([`Cache::listener_panics`]).
    pub fn eviction_listener(
        mut self,
        listener: impl Fn(K, V, RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Listener::new(listener));
        self
    }

    /// Fail-safe: a value past its time to live is kept `grace` longer as a fallback. A read
    /// (`get`) still misses it, and a load runs as usual; but if the load fails, the callers
    /// get the old value instead of the error (`Source::Stale` through
    /// [`entry_or_load`](Cache::entry_or_load)'s family), and the next call loads again. So a
    /// backend outage shorter than `grace` costs no errors for keys that were cached. Needs a
    /// time to live (cache-wide or per entry); without one nothing goes stale.
    pub fn fail_safe(mut self, grace: Duration) -> Self {
        self.fail_safe = Some(grace);
        self
    }

    /// For [`get_or_refresh`](Cache::get_or_refresh) (feature `tokio`): when a stale value
    /// is kept ([`fail_safe`](CacheBuilder::fail_safe)) and the load takes longer than this,
    /// the callers get the stale value; the load goes on and stores its value when done.
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn soft_timeout(mut self, timeout: Duration) -> Self {
        self.soft_timeout = Some(timeout);
        self
    }

    /// For [`get_or_refresh`](Cache::get_or_refresh) (feature `tokio`): callers wait at most
    /// this long for a load, then get the stale value if one is kept, else a `TimedOut`
    /// error; the load goes on and stores its value when done.
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn hard_timeout(mut self, timeout: Duration) -> Self {
        self.hard_timeout = Some(timeout);
        self
    }

    /// For [`get_or_refresh`](Cache::get_or_refresh) (feature `tokio`): a hit on a value
    /// with less than `before` left to live starts a load in the background (one per key),
    /// so a key read steadily is replaced before it expires and hits never wait.
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn refresh_ahead(mut self, before: Duration) -> Self {
        self.refresh_ahead = Some(before);
        self
    }

    /// Takes every setting of `config` (name, entry bound, time to live and idle, negative
    /// time to live), replacing earlier calls.
    pub fn config(mut self, config: &Config) -> Self {
        self.name.clone_from(&config.name);
        self.capacity = config.max_entries;
        self.estimated_entries = None;
        self.weigher = None;
        self.ttl = config.time_to_live;
        self.tti = config.time_to_idle;
        self.negative_ttl = config.negative_ttl;
        self.shards = config.shards;
        self
    }

    /// The cache. The metrics recorder may be installed before or after.
    pub fn build(self) -> Result<Cache<K, V>, ConfigError> {
        check(
            self.capacity,
            self.shards,
            [self.ttl, self.tti, self.negative_ttl],
        )?;
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
            .field("shards", &self.shards)
            .field("listener", &self.listener.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_sets_every_setting_of_the_cache() {
        let config = Config {
            name: "users".to_owned(),
            max_entries: 8,
            time_to_live: Some(Duration::from_millis(40)),
            ..Config::default()
        };
        config.validate().unwrap();
        // Replaces a weighed bound set before.
        let cache: Cache<u32, u32> = Cache::builder()
            .max_weight(1 << 20, 100, |_, _| 1)
            .config(&config)
            .build()
            .unwrap();
        assert_eq!(cache.name(), "users");
        assert!(!cache.is_weighed());
        for i in 0..100 {
            cache.insert(i, i);
        }
        assert!(cache.len() <= 8, "{} entries kept, bound 8", cache.len());
        cache.insert(1000, 1);
        assert_eq!(cache.get(&1000), Some(1));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&1000), None, "the time to live applies");
        let from: Cache<u32, u32> = Cache::from_config(&config).unwrap();
        assert_eq!(from.name(), "users");
    }

    #[test]
    fn bad_configs_are_refused_with_a_reason() {
        let zero = Config {
            max_entries: 0,
            ..Config::default()
        };
        assert!(
            zero.validate()
                .unwrap_err()
                .to_string()
                .contains("capacity")
        );
        let instant = Config {
            negative_ttl: Some(Duration::ZERO),
            ..Config::default()
        };
        assert!(instant.validate().is_err());
        assert!(Cache::<u8, u8>::from_config(&instant).is_err());
        Config::default().validate().unwrap();
    }

    #[cfg(feature = "serde")]
    #[test]
    fn configs_read_and_write_human_durations() {
        let c: Config = serde_json::from_str(
            r#"{"name": "users", "time_to_live": "5m", "negative_ttl": "30s"}"#,
        )
        .unwrap();
        assert_eq!(c.name, "users");
        assert_eq!(c.max_entries, 10_000, "absent fields keep their defaults");
        assert_eq!(c.time_to_live, Some(Duration::from_secs(300)));
        assert_eq!(c.negative_ttl, Some(Duration::from_secs(30)));
        let back: Config = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        for bad in [r#"{"time_to_live": "5"}"#, r#"{"max_entires": 5}"#] {
            assert!(serde_json::from_str::<Config>(bad).is_err(), "{bad}");
        }
    }
}
