//! Metrics of this process, under the standard `process_*` names of the Prometheus client
//! libraries, plus a few Linux extras with the same prefix.

use super::{Group::Process as G, MetricDef, Unit};

/// Total user and system CPU time.
pub const CPU_SECONDS: MetricDef = MetricDef::counter(
    G,
    "process_cpu_seconds_total",
    Unit::Seconds,
    "Total user and system CPU time spent in seconds.",
)
.with_guide_name("cpu_usage_percent");

/// Resident set size.
pub const RESIDENT_MEMORY: MetricDef = MetricDef::gauge(
    G,
    "process_resident_memory_bytes",
    Unit::Bytes,
    "Resident memory size in bytes.",
)
.with_guide_name("memory_usage_bytes");

/// Virtual memory size.
pub const VIRTUAL_MEMORY: MetricDef = MetricDef::gauge(
    G,
    "process_virtual_memory_bytes",
    Unit::Bytes,
    "Virtual memory size in bytes.",
);

/// Address-space limit.
pub const VIRTUAL_MEMORY_MAX: MetricDef = MetricDef::gauge(
    G,
    "process_virtual_memory_max_bytes",
    Unit::Bytes,
    "Maximum amount of virtual memory available in bytes.",
);

/// Heap bytes in use, when a counting allocator is installed.
pub const HEAP: MetricDef = MetricDef::gauge(
    G,
    "process_heap_bytes",
    Unit::Bytes,
    "Process heap size in bytes.",
);

/// Open file descriptors.
pub const OPEN_FDS: MetricDef = MetricDef::gauge(
    G,
    "process_open_fds",
    Unit::Count,
    "Number of open file descriptors.",
);

/// The file-descriptor limit.
pub const MAX_FDS: MetricDef = MetricDef::gauge(
    G,
    "process_max_fds",
    Unit::Count,
    "Maximum number of open file descriptors.",
);

/// OS threads.
pub const THREADS: MetricDef = MetricDef::gauge(
    G,
    "process_threads",
    Unit::Count,
    "Number of OS threads in the process.",
);

/// Start time as a Unix timestamp.
pub const START_TIME: MetricDef = MetricDef::gauge(
    G,
    "process_start_time_seconds",
    Unit::Seconds,
    "Start time of the process since unix epoch in seconds.",
);

/// Page faults, `kind` = `minor` or `major`.
pub const PAGE_FAULTS: MetricDef = MetricDef::counter(
    G,
    "process_page_faults_total",
    Unit::Count,
    "Page faults of the process, minor (no disk read) or major (disk read).",
)
.with_labels(&["kind"])
.with_guide_name("memory_page_faults");

/// Context switches, `kind` = `voluntary` or `involuntary`.
pub const CONTEXT_SWITCHES: MetricDef = MetricDef::counter(
    G,
    "process_context_switches_total",
    Unit::Count,
    "Context switches of the process's threads, voluntary or involuntary.",
)
.with_labels(&["kind"])
.with_guide_name("cpu_context_switches");

/// Bytes read from storage.
pub const IO_READ: MetricDef = MetricDef::counter(
    G,
    "process_io_read_bytes_total",
    Unit::Bytes,
    "Bytes the process caused to be read from storage.",
);

/// Bytes written to storage.
pub const IO_WRITTEN: MetricDef = MetricDef::counter(
    G,
    "process_io_written_bytes_total",
    Unit::Bytes,
    "Bytes the process caused to be written to storage.",
);

/// Every process metric.
pub const ALL: &[MetricDef] = &[
    CPU_SECONDS,
    RESIDENT_MEMORY,
    VIRTUAL_MEMORY,
    VIRTUAL_MEMORY_MAX,
    HEAP,
    OPEN_FDS,
    MAX_FDS,
    THREADS,
    START_TIME,
    PAGE_FAULTS,
    CONTEXT_SWITCHES,
    IO_READ,
    IO_WRITTEN,
];
