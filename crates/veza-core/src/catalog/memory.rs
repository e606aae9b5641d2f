//! Metrics of object and buffer pools (`pool` names the pool) and of the memory budget.

use super::{Group::Memory as G, MetricDef, Unit};

/// Gets served by a pooled object.
pub const POOL_HITS: MetricDef = MetricDef::counter(
    G,
    "mempool_hits_total",
    Unit::Count,
    "Gets served by an object the pool already held.",
)
.with_labels(&["pool"]);

/// Gets that created a new object.
pub const POOL_MISSES: MetricDef = MetricDef::counter(
    G,
    "mempool_misses_total",
    Unit::Count,
    "Gets that had to create a new object.",
)
.with_labels(&["pool"]);

/// Objects returned and kept.
pub const POOL_RETURNS: MetricDef = MetricDef::counter(
    G,
    "mempool_returns_total",
    Unit::Count,
    "Objects returned to the pool and kept for reuse.",
)
.with_labels(&["pool"]);

/// Objects dropped instead of kept, by `reason` (`full`, `oversized`, `trimmed`).
pub const POOL_DISCARDS: MetricDef = MetricDef::counter(
    G,
    "mempool_discards_total",
    Unit::Count,
    "Objects dropped instead of kept, by reason.",
)
.with_labels(&["pool", "reason"]);

/// Objects idle in the pool.
pub const POOL_IDLE: MetricDef = MetricDef::gauge(
    G,
    "mempool_idle_objects",
    Unit::Count,
    "Objects idle in the pool, ready for reuse.",
)
.with_labels(&["pool"]);

/// Bytes retained by idle buffers.
pub const POOL_RETAINED: MetricDef = MetricDef::gauge(
    G,
    "mempool_retained_bytes",
    Unit::Bytes,
    "Capacity in bytes of the buffers idle in the pool.",
)
.with_labels(&["pool"]);

/// The memory budget.
pub const BUDGET: MetricDef = MetricDef::gauge(
    G,
    "memory_budget_bytes",
    Unit::Bytes,
    "The process's memory budget in bytes.",
);

/// Memory counted against the budget.
pub const BUDGET_USED: MetricDef = MetricDef::gauge(
    G,
    "memory_budget_used_bytes",
    Unit::Bytes,
    "Memory counted against the budget (resident set or heap), in bytes.",
);

/// Pressure level: 0 normal, 1 high, 2 critical.
pub const PRESSURE_LEVEL: MetricDef = MetricDef::gauge(
    G,
    "memory_pressure_level",
    Unit::Count,
    "Memory pressure level: 0 normal, 1 high, 2 critical.",
);

/// Changes of pressure level, by the new `level`.
pub const PRESSURE_CHANGES: MetricDef = MetricDef::counter(
    G,
    "memory_pressure_changes_total",
    Unit::Count,
    "Changes of memory pressure level, by the level entered.",
)
.with_labels(&["level"]);

/// Every memory metric.
pub const ALL: &[MetricDef] = &[
    POOL_HITS,
    POOL_MISSES,
    POOL_RETURNS,
    POOL_DISCARDS,
    POOL_IDLE,
    POOL_RETAINED,
    BUDGET,
    BUDGET_USED,
    PRESSURE_LEVEL,
    PRESSURE_CHANGES,
];
