//! The types of the catalog: [`MetricDef`] and its kind, unit and group, and [`DerivedDef`].

use std::fmt;

/// The Prometheus type of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum MetricKind {
    /// A value that only goes up (resets on restart); its name ends in `_total`.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A distribution of observations in buckets.
    Histogram,
}

impl MetricKind {
    /// The name Prometheus uses in `# TYPE` lines.
    pub const fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The unit of a metric. Only base units: seconds, bytes, and ratios in `0..=1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Unit {
    /// Seconds; the name carries `_seconds`.
    Seconds,
    /// Bytes; the name carries `_bytes`.
    Bytes,
    /// A ratio in `0..=1` (never a percentage); the name ends in `_ratio`.
    Ratio,
    /// A count of things (requests, connections, threads); no unit suffix.
    Count,
}

impl Unit {
    /// The suffix Prometheus conventions ask for in the name, before any `_total`.
    pub const fn suffix(self) -> Option<&'static str> {
        match self {
            Unit::Seconds => Some("_seconds"),
            Unit::Bytes => Some("_bytes"),
            Unit::Ratio => Some("_ratio"),
            Unit::Count => None,
        }
    }

    /// A lowercase name for documentation.
    pub const fn as_str(self) -> &'static str {
        match self {
            Unit::Seconds => "seconds",
            Unit::Bytes => "bytes",
            Unit::Ratio => "ratio",
            Unit::Count => "count",
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The part of the system a metric describes, matching the guide's sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Group {
    /// This process: CPU time, memory, file descriptors, threads.
    Process,
    /// The whole machine: CPU modes, load, memory, disks, network.
    System,
    /// The async runtime.
    Runtime,
    /// Incoming HTTP requests (server side).
    Http,
    /// The PostgreSQL pool and queries.
    Database,
    /// In-process caches.
    Cache,
    /// The CPU worker pool.
    Workers,
    /// Object and buffer pools and the memory budget.
    Memory,
    /// Outgoing HTTP requests (client side).
    HttpClient,
    /// Business figures of the Veza platform.
    Business,
}

impl Group {
    /// A title for documentation.
    pub const fn title(self) -> &'static str {
        match self {
            Group::Process => "Process",
            Group::System => "System",
            Group::Runtime => "Async runtime",
            Group::Http => "HTTP server",
            Group::Database => "Database pool",
            Group::Cache => "Cache",
            Group::Workers => "Worker pool",
            Group::Memory => "Memory pools and budget",
            Group::HttpClient => "HTTP client",
            Group::Business => "Business",
        }
    }
}

/// The definition of one metric: everything an exporter, a dashboard or a document needs.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MetricDef {
    /// The exported name, following Prometheus conventions.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// The base unit.
    pub unit: Unit,
    /// One-line help text, exported as `# HELP`.
    pub help: &'static str,
    /// Label names; every label has a bounded set of values.
    pub labels: &'static [&'static str],
    /// The part of the system it describes.
    pub group: Group,
    /// The name the performance guide gives this figure, when it lists one.
    pub guide_name: Option<&'static str>,
}

impl MetricDef {
    /// A counter; `name` must end in `_total`.
    pub const fn counter(group: Group, name: &'static str, unit: Unit, help: &'static str) -> Self {
        Self::new(group, MetricKind::Counter, name, unit, help)
    }

    /// A gauge.
    pub const fn gauge(group: Group, name: &'static str, unit: Unit, help: &'static str) -> Self {
        Self::new(group, MetricKind::Gauge, name, unit, help)
    }

    /// A histogram.
    pub const fn histogram(
        group: Group,
        name: &'static str,
        unit: Unit,
        help: &'static str,
    ) -> Self {
        Self::new(group, MetricKind::Histogram, name, unit, help)
    }

    const fn new(
        group: Group,
        kind: MetricKind,
        name: &'static str,
        unit: Unit,
        help: &'static str,
    ) -> Self {
        MetricDef {
            name,
            kind,
            unit,
            help,
            labels: &[],
            group,
            guide_name: None,
        }
    }

    /// The same definition with these label names.
    pub const fn with_labels(mut self, labels: &'static [&'static str]) -> Self {
        self.labels = labels;
        self
    }

    /// The same definition, noting the guide's name for it.
    pub const fn with_guide_name(mut self, guide_name: &'static str) -> Self {
        self.guide_name = Some(guide_name);
        self
    }
}

/// A figure the guide lists that Prometheus computes from other metrics: a recording rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct DerivedDef {
    /// The recording rule's name, `level:metric:operations` as Prometheus recommends.
    pub name: &'static str,
    /// The PromQL expression.
    pub expr: &'static str,
    /// What it means.
    pub help: &'static str,
    /// The guide's name for it.
    pub guide_name: &'static str,
}
