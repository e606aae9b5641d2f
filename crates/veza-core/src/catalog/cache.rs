//! Metrics of in-process caches; `cache` names the cache.

use super::{Group::Cache as G, MetricDef, Unit};

/// Lookups that found a fresh entry.
pub const HITS: MetricDef = MetricDef::counter(
    G,
    "cache_hits_total",
    Unit::Count,
    "Cache lookups that found a fresh entry.",
)
.with_labels(&["cache"])
.with_guide_name("cache_hits_total");

/// Lookups that found nothing fresh.
pub const MISSES: MetricDef = MetricDef::counter(
    G,
    "cache_misses_total",
    Unit::Count,
    "Cache lookups that found no fresh entry.",
)
.with_labels(&["cache"])
.with_guide_name("cache_misses_total");

/// `hits / (hits + misses)` since the cache was created.
pub const HIT_RATIO: MetricDef = MetricDef::gauge(
    G,
    "cache_hit_ratio",
    Unit::Ratio,
    "Share of cache lookups that hit, since the cache was created.",
)
.with_labels(&["cache"])
.with_guide_name("cache_hit_ratio");

/// Entries stored.
pub const INSERTS: MetricDef = MetricDef::counter(
    G,
    "cache_inserts_total",
    Unit::Count,
    "Entries stored in the cache.",
)
.with_labels(&["cache"]);

/// Entries removed, by `cause` (`size`, `expired`, `explicit`).
pub const EVICTIONS: MetricDef = MetricDef::counter(
    G,
    "cache_evictions_total",
    Unit::Count,
    "Entries removed from the cache, by cause.",
)
.with_labels(&["cache", "cause"]);

/// Entries held.
pub const ENTRIES: MetricDef = MetricDef::gauge(
    G,
    "cache_entries",
    Unit::Count,
    "Entries held by the cache.",
)
.with_labels(&["cache"]);

/// Weighted size of the entries held, in bytes when the cache weighs in bytes.
pub const MEMORY_USAGE: MetricDef = MetricDef::gauge(
    G,
    "cache_memory_usage_bytes",
    Unit::Bytes,
    "Weighed size of the entries held by the cache, in bytes.",
)
.with_labels(&["cache"])
.with_guide_name("cache_memory_usage_bytes");

/// Loads run on a miss, by `outcome` (`ok`, `error`).
pub const LOADS: MetricDef = MetricDef::counter(
    G,
    "cache_loads_total",
    Unit::Count,
    "Loads run after a cache miss (one per single-flight group), by outcome.",
)
.with_labels(&["cache", "outcome"]);

/// Load time.
pub const LOAD_DURATION: MetricDef = MetricDef::histogram(
    G,
    "cache_load_duration_seconds",
    Unit::Seconds,
    "Time to load a value after a cache miss.",
)
.with_labels(&["cache"]);

/// Second-tier (Redis) lookups of a tiered cache after a first-tier miss, by `outcome`
/// (`hit`, `miss`, `foreign`: bytes that did not decode, `error`: failed or timed out,
/// `skipped`: breaker open).
pub const TIER_LOOKUPS: MetricDef = MetricDef::counter(
    G,
    "cache_tier_lookups_total",
    Unit::Count,
    "Second-tier (Redis) lookups after a first-tier miss, by outcome.",
)
.with_labels(&["cache", "outcome"]);

/// Invalidations a tiered cache published (`sent`) or applied from other instances
/// (`received`).
pub const TIER_INVALIDATIONS: MetricDef = MetricDef::counter(
    G,
    "cache_tier_invalidations_total",
    Unit::Count,
    "Invalidations published to the other instances, or received from them and applied.",
)
.with_labels(&["cache", "direction"]);

/// Redis calls of a tiered cache that failed or timed out.
pub const TIER_ERRORS: MetricDef = MetricDef::counter(
    G,
    "cache_tier_errors_total",
    Unit::Count,
    "Second-tier (Redis) calls that failed or timed out.",
)
.with_labels(&["cache"]);

/// 1 while the breaker skips Redis, else 0.
pub const TIER_BREAKER_OPEN: MetricDef = MetricDef::gauge(
    G,
    "cache_tier_breaker_open",
    Unit::Count,
    "1 while the tiered cache's breaker skips Redis after repeated failures, else 0.",
)
.with_labels(&["cache"]);

/// 1 while the invalidation channel is subscribed, else 0.
pub const TIER_CHANNEL_UP: MetricDef = MetricDef::gauge(
    G,
    "cache_tier_channel_up",
    Unit::Count,
    "1 while the tiered cache listens for other instances' invalidations, else 0.",
)
.with_labels(&["cache"]);

/// Every cache metric.
pub const ALL: &[MetricDef] = &[
    HITS,
    MISSES,
    HIT_RATIO,
    INSERTS,
    EVICTIONS,
    ENTRIES,
    MEMORY_USAGE,
    LOADS,
    LOAD_DURATION,
    TIER_LOOKUPS,
    TIER_INVALIDATIONS,
    TIER_ERRORS,
    TIER_BREAKER_OPEN,
    TIER_CHANNEL_UP,
];
