//! Metrics of the PostgreSQL pool and its queries; `pool` names the pool.

use super::{Group::Database as G, MetricDef, Unit};

/// Connections checked out.
pub const CONNECTIONS_ACTIVE: MetricDef = MetricDef::gauge(
    G,
    "db_pool_connections_active",
    Unit::Count,
    "Database connections checked out of the pool.",
)
.with_labels(&["pool"])
.with_guide_name("db_connections_active");

/// Connections idle in the pool.
pub const CONNECTIONS_IDLE: MetricDef = MetricDef::gauge(
    G,
    "db_pool_connections_idle",
    Unit::Count,
    "Database connections idle in the pool.",
)
.with_labels(&["pool"])
.with_guide_name("db_connections_idle");

/// Tasks waiting for a connection.
pub const PENDING_CHECKOUTS: MetricDef = MetricDef::gauge(
    G,
    "db_pool_pending_checkouts",
    Unit::Count,
    "Tasks waiting for a database connection.",
)
.with_labels(&["pool"]);

/// Time waited for a connection.
pub const CHECKOUT_WAIT: MetricDef = MetricDef::histogram(
    G,
    "db_pool_checkout_wait_seconds",
    Unit::Seconds,
    "Time a task waited to check out a database connection.",
)
.with_labels(&["pool"]);

/// Checkouts that timed out.
pub const CHECKOUT_TIMEOUTS: MetricDef = MetricDef::counter(
    G,
    "db_pool_checkout_timeouts_total",
    Unit::Count,
    "Checkouts that gave up waiting for a database connection.",
)
.with_labels(&["pool"]);

/// Connections opened.
pub const CONNECTIONS_CREATED: MetricDef = MetricDef::counter(
    G,
    "db_pool_connections_created_total",
    Unit::Count,
    "Database connections opened by the pool.",
)
.with_labels(&["pool"]);

/// Connections closed, by `reason` (`broken`, `max_lifetime`, `idle_timeout`, `closed`).
pub const CONNECTIONS_CLOSED: MetricDef = MetricDef::counter(
    G,
    "db_pool_connections_closed_total",
    Unit::Count,
    "Database connections closed by the pool, by reason.",
)
.with_labels(&["pool", "reason"]);

/// Query time, by a bounded statement name.
pub const QUERY_DURATION: MetricDef = MetricDef::histogram(
    G,
    "db_query_duration_seconds",
    Unit::Seconds,
    "Time to run a database query, by statement name.",
)
.with_labels(&["pool", "statement"])
.with_guide_name("db_query_duration_seconds");

/// Transactions ended, by `outcome` (`commit`, `rollback`).
pub const TRANSACTIONS: MetricDef = MetricDef::counter(
    G,
    "db_transactions_total",
    Unit::Count,
    "Database transactions ended, by outcome.",
)
.with_labels(&["pool", "outcome"])
.with_guide_name("db_transactions_total");

/// Transactions retried, by `reason` (`serialization_failure`, `deadlock`).
pub const TRANSACTION_RETRIES: MetricDef = MetricDef::counter(
    G,
    "db_transaction_retries_total",
    Unit::Count,
    "Database transactions retried after a serialization failure or deadlock.",
)
.with_labels(&["pool", "reason"]);

/// Queries slower than the pool's `slow_query_threshold` (the guide's "monitor slow
/// queries"), by statement name.
pub const SLOW_QUERIES: MetricDef = MetricDef::counter(
    G,
    "db_slow_queries_total",
    Unit::Count,
    "Database queries that took longer than the pool's slow-query threshold, by statement name.",
)
.with_labels(&["pool", "statement"]);

/// Every database metric.
pub const ALL: &[MetricDef] = &[
    CONNECTIONS_ACTIVE,
    CONNECTIONS_IDLE,
    PENDING_CHECKOUTS,
    CHECKOUT_WAIT,
    CHECKOUT_TIMEOUTS,
    CONNECTIONS_CREATED,
    CONNECTIONS_CLOSED,
    QUERY_DURATION,
    SLOW_QUERIES,
    TRANSACTIONS,
    TRANSACTION_RETRIES,
];
