//! Metrics of outgoing HTTP requests; `host` is the upstream's host (a bounded set: the
//! services this one calls), `status_class` is `1xx`..`5xx` or `error`.

use super::{Group::HttpClient as G, MetricDef, Unit};

/// Requests sent upstream or served from the cache.
pub const REQUESTS: MetricDef = MetricDef::counter(
    G,
    "http_client_requests_total",
    Unit::Count,
    "Outgoing HTTP requests, by method, host and status class.",
)
.with_labels(&["method", "host", "status_class"]);

/// Request time, cache hits included.
pub const REQUEST_DURATION: MetricDef = MetricDef::histogram(
    G,
    "http_client_request_duration_seconds",
    Unit::Seconds,
    "Time to get an HTTP response head, from the cache or upstream.",
)
.with_labels(&["method", "host"]);

/// Fresh cache hits.
pub const CACHE_HITS: MetricDef = MetricDef::counter(
    G,
    "http_client_cache_hits_total",
    Unit::Count,
    "Responses served fresh from the HTTP cache.",
)
.with_labels(&["host"]);

/// Cache misses.
pub const CACHE_MISSES: MetricDef = MetricDef::counter(
    G,
    "http_client_cache_misses_total",
    Unit::Count,
    "Cacheable requests the HTTP cache could not answer.",
)
.with_labels(&["host"]);

/// Revalidations, by `outcome` (`not_modified`, `modified`, `error`).
pub const CACHE_REVALIDATIONS: MetricDef = MetricDef::counter(
    G,
    "http_client_cache_revalidations_total",
    Unit::Count,
    "Conditional requests sent to revalidate a stored response, by outcome.",
)
.with_labels(&["host", "outcome"]);

/// Stale responses served, by `reason` (`while_revalidate`, `if_error`).
pub const CACHE_STALE_SERVED: MetricDef = MetricDef::counter(
    G,
    "http_client_cache_stale_served_total",
    Unit::Count,
    "Stale responses served under stale-while-revalidate or stale-if-error.",
)
.with_labels(&["host", "reason"]);

/// Bytes stored in the cache.
pub const CACHE_STORED: MetricDef = MetricDef::gauge(
    G,
    "http_client_cache_stored_bytes",
    Unit::Bytes,
    "Bytes of responses held by the HTTP cache.",
);

/// Open connections, idle in the pool or carrying a request.
pub const CONNECTIONS_OPEN: MetricDef = MetricDef::gauge(
    G,
    "http_client_connections_open",
    Unit::Count,
    "Connections the HTTP client holds open, idle or in use.",
);

/// Connections opened.
pub const CONNECTIONS_OPENED: MetricDef = MetricDef::counter(
    G,
    "http_client_connections_opened_total",
    Unit::Count,
    "Connections opened by the HTTP client.",
)
.with_labels(&["host"]);

/// Retries, by `reason`.
pub const RETRIES: MetricDef = MetricDef::counter(
    G,
    "http_client_retries_total",
    Unit::Count,
    "Requests retried after a connection error, within the retry budget.",
)
.with_labels(&["host"]);

/// Every HTTP client metric.
pub const ALL: &[MetricDef] = &[
    REQUESTS,
    REQUEST_DURATION,
    CACHE_HITS,
    CACHE_MISSES,
    CACHE_REVALIDATIONS,
    CACHE_STALE_SERVED,
    CACHE_STORED,
    CONNECTIONS_OPEN,
    CONNECTIONS_OPENED,
    RETRIES,
];
