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

/// Tasks waiting in the runtime's global (injection) queue.
pub const GLOBAL_QUEUE_DEPTH: MetricDef = MetricDef::gauge(
    G,
    "runtime_global_queue_depth",
    Unit::Count,
    "Tasks waiting in the async runtime's global queue, scheduled from outside its workers.",
);

/// Time each worker spent busy (polling tasks).
pub const WORKER_BUSY: MetricDef = MetricDef::counter(
    G,
    "runtime_worker_busy_seconds_total",
    Unit::Seconds,
    "Time the async runtime worker spent busy polling tasks.",
)
.with_labels(&["worker"]);

/// Times each worker parked (went to sleep with nothing to do).
pub const WORKER_PARKS: MetricDef = MetricDef::counter(
    G,
    "runtime_worker_parks_total",
    Unit::Count,
    "Times the async runtime worker parked for lack of work.",
)
.with_labels(&["worker"]);

/// Share of the workers' time spent busy since the previous scrape.
pub const BUSY_RATIO: MetricDef = MetricDef::gauge(
    G,
    "runtime_busy_ratio",
    Unit::Ratio,
    "Share of the async runtime workers' time spent busy since the previous scrape (0 to 1).",
);

/// Every runtime metric.
pub const ALL: &[MetricDef] = &[
    TASKS_ALIVE,
    WORKERS,
    GLOBAL_QUEUE_DEPTH,
    WORKER_BUSY,
    WORKER_PARKS,
    BUSY_RATIO,
];
