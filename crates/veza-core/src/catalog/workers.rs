//! Metrics of the CPU worker pool; `pool` names the pool, `priority` is `high`, `normal` or `low`.

use super::{Group::Workers as G, MetricDef, Unit};

/// Jobs waiting in the queue.
pub const QUEUE_DEPTH: MetricDef = MetricDef::gauge(
    G,
    "workers_queue_depth",
    Unit::Count,
    "Jobs waiting in the worker pool's queue, by priority.",
)
.with_labels(&["pool", "priority"]);

/// Workers running a job.
pub const BUSY: MetricDef = MetricDef::gauge(
    G,
    "workers_busy",
    Unit::Count,
    "Worker threads running a job now.",
)
.with_labels(&["pool"]);

/// Jobs accepted.
pub const SUBMITTED: MetricDef = MetricDef::counter(
    G,
    "workers_jobs_submitted_total",
    Unit::Count,
    "Jobs accepted by the worker pool.",
)
.with_labels(&["pool"]);

/// Jobs finished (panicked ones included).
pub const COMPLETED: MetricDef = MetricDef::counter(
    G,
    "workers_jobs_completed_total",
    Unit::Count,
    "Jobs the worker pool ran to the end, panicked ones included.",
)
.with_labels(&["pool"]);

/// Jobs refused, by `reason` (`full`, `closed`, `timeout`).
pub const REJECTED: MetricDef = MetricDef::counter(
    G,
    "workers_jobs_rejected_total",
    Unit::Count,
    "Jobs refused by the worker pool and handed back, by reason.",
)
.with_labels(&["pool", "reason"]);

/// Jobs that panicked.
pub const PANICKED: MetricDef = MetricDef::counter(
    G,
    "workers_jobs_panicked_total",
    Unit::Count,
    "Jobs that panicked; the worker survived.",
)
.with_labels(&["pool"]);

/// Time from submission to start.
pub const QUEUE_WAIT: MetricDef = MetricDef::histogram(
    G,
    "workers_queue_wait_seconds",
    Unit::Seconds,
    "Time jobs waited in the queue before a worker started them.",
)
.with_labels(&["pool"]);

/// Time a job ran.
pub const JOB_DURATION: MetricDef = MetricDef::histogram(
    G,
    "workers_job_duration_seconds",
    Unit::Seconds,
    "Time a worker spent running a job.",
)
.with_labels(&["pool"]);

/// Every worker-pool metric.
pub const ALL: &[MetricDef] = &[
    QUEUE_DEPTH,
    BUSY,
    SUBMITTED,
    COMPLETED,
    REJECTED,
    PANICKED,
    QUEUE_WAIT,
    JOB_DURATION,
];
