//! The metric catalog: the name, kind, unit, labels and help of every metric, in one place.
//!
//! Crates that emit metrics take the names from here (`catalog::cache::HITS.name`); the
//! exporter describes every metric from here; `docs/metrics.md` and the Prometheus rules are
//! generated from here. So the code, the exporter, the docs and the dashboards cannot drift
//! apart.
//!
//! Names follow the Prometheus conventions: snake_case, base units (`_seconds`, `_bytes`,
//! `_ratio` in `0..=1`, never percentages or milliseconds), counters end in `_total`, and
//! process metrics use the standard `process_*` names of the Prometheus client libraries.
//! Every label has a bounded set of values.
//!
//! ```
//! use veza_core::catalog::{self, MetricKind};
//!
//! let hits = catalog::find("cache_hits_total").unwrap();
//! assert_eq!(hits.kind, MetricKind::Counter);
//! assert_eq!(hits.labels, ["cache"]);
//! assert_eq!(hits, &catalog::cache::HITS);
//! ```

pub mod business;
pub mod cache;
pub mod db;
mod def;
pub mod http;
pub mod http_client;
pub mod memory;
pub mod process;
pub mod runtime;
pub mod system;
pub mod workers;

pub use def::{DerivedDef, Group, MetricDef, MetricKind, Unit};

/// The metrics of each group, in documentation order.
pub const GROUPS: &[&[MetricDef]] = &[
    process::ALL,
    system::ALL,
    runtime::ALL,
    http::ALL,
    db::ALL,
    cache::ALL,
    workers::ALL,
    memory::ALL,
    http_client::ALL,
    business::ALL,
];

/// Every metric of the catalog, in documentation order.
pub const ALL: &[MetricDef] = &ALL_ARRAY;

/// Every recording rule of the catalog: figures the guide lists that Prometheus derives.
pub const DERIVED: &[DerivedDef] = business::DERIVED;

/// Every metric name the performance guide lists (its key metrics and its collector), so a test
/// can prove each one has a home here.
pub const GUIDE_METRICS: &[&str] = &[
    "cpu_usage_percent",
    "cpu_load_average",
    "cpu_context_switches",
    "cpu_interrupts",
    "memory_usage_bytes",
    "memory_available_bytes",
    "memory_swap_usage",
    "memory_page_faults",
    "disk_io_read_bytes",
    "disk_io_write_bytes",
    "disk_io_ops",
    "disk_usage_percent",
    "network_bytes_received",
    "network_bytes_sent",
    "network_packets_received",
    "network_packets_sent",
    "http_requests_total",
    "http_request_duration_seconds",
    "http_requests_in_flight",
    "http_response_size_bytes",
    "db_connections_active",
    "db_connections_idle",
    "db_query_duration_seconds",
    "db_transactions_total",
    "cache_hits_total",
    "cache_misses_total",
    "cache_hit_ratio",
    "cache_memory_usage_bytes",
    "active_users",
    "messages_per_second",
    "streams_active",
    "concurrent_connections",
    "response_time_p95",
    "error_rate",
    "goroutines_count",
];

/// The definition of the metric called `name`.
pub fn find(name: &str) -> Option<&'static MetricDef> {
    ALL.iter().find(|def| def.name == name)
}

/// The catalog's metrics and recording rules that stand for the guide's `guide_name`.
pub fn for_guide_name(guide_name: &str) -> (Vec<&'static MetricDef>, Vec<&'static DerivedDef>) {
    let metrics = ALL
        .iter()
        .filter(|def| def.guide_name == Some(guide_name))
        .collect();
    let derived = DERIVED
        .iter()
        .filter(|def| def.guide_name == guide_name)
        .collect();
    (metrics, derived)
}

const ALL_LEN: usize = {
    let mut total = 0;
    let mut i = 0;
    while i < GROUPS.len() {
        total += GROUPS[i].len();
        i += 1;
    }
    total
};

const ALL_ARRAY: [MetricDef; ALL_LEN] = {
    let mut out = [process::CPU_SECONDS; ALL_LEN];
    let (mut i, mut k) = (0, 0);
    while i < GROUPS.len() {
        let mut j = 0;
        while j < GROUPS[i].len() {
            out[k] = GROUPS[i][j];
            k += 1;
            j += 1;
        }
        i += 1;
    }
    out
};
