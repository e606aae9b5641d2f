//! Metrics of the async runtime (tokio), the counterpart of the guide's goroutine count.

use super::{Group::Runtime as G, MetricDef, Unit};

/// Tasks alive in the runtime.
pub const TASKS_ALIVE: MetricDef = MetricDef::gauge(
    G,
    "runtime_tasks_alive",
    Unit::Count,
    "Tasks alive in the async runtime, spawned and not yet finished.",
)
.with_guide_name("goroutines_count");

/// Runtime worker threads.
pub const WORKERS: MetricDef = MetricDef::gauge(
    G,
    "runtime_workers",
    Unit::Count,
    "Worker threads of the async runtime.",
);

/// Every runtime metric.
pub const ALL: &[MetricDef] = &[TASKS_ALIVE, WORKERS];
