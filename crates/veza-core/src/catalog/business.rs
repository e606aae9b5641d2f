//! Business figures of the Veza platform, recorded by the application, and the guide's two
//! derived figures (p95 response time, error rate) as recording rules.

use super::{DerivedDef, Group::Business as G, MetricDef, Unit};

/// Users active now.
pub const ACTIVE_USERS: MetricDef =
    MetricDef::gauge(G, "active_users", Unit::Count, "Users active now.")
        .with_guide_name("active_users");

/// Messages processed; Prometheus derives the per-second rate.
pub const MESSAGES: MetricDef = MetricDef::counter(
    G,
    "messages_total",
    Unit::Count,
    "Messages processed; rate() of it is the guide's messages per second.",
)
.with_guide_name("messages_per_second");

/// Streams live now.
pub const STREAMS_ACTIVE: MetricDef =
    MetricDef::gauge(G, "streams_active", Unit::Count, "Streams live now.")
        .with_guide_name("streams_active");

/// Client connections open now (WebSocket and HTTP).
pub const CONCURRENT_CONNECTIONS: MetricDef = MetricDef::gauge(
    G,
    "concurrent_connections",
    Unit::Count,
    "Client connections open now.",
)
.with_guide_name("concurrent_connections");

/// Every business metric.
pub const ALL: &[MetricDef] = &[
    ACTIVE_USERS,
    MESSAGES,
    STREAMS_ACTIVE,
    CONCURRENT_CONNECTIONS,
];

/// The guide's `response_time_p95`, per job, over 5 minutes.
pub const RESPONSE_TIME_P95: DerivedDef = DerivedDef {
    name: "job:http_request_duration_seconds:p95_5m",
    expr: "histogram_quantile(0.95, sum by (job, le) (rate(http_request_duration_seconds_bucket[5m])))",
    help: "95th percentile of HTTP request duration over 5 minutes, per job.",
    guide_name: "response_time_p95",
};

/// Requests per second over 5 minutes, per job: the rate dashboards draw from the guide's
/// `http_requests_total`.
pub const REQUEST_RATE: DerivedDef = DerivedDef {
    name: "job:http_requests:rate5m",
    expr: "sum by (job) (rate(http_requests_total[5m]))",
    help: "HTTP requests per second over 5 minutes, per job.",
    guide_name: "http_requests_total",
};

/// The guide's `error_rate`: share of requests answered with a 5xx status, over 5 minutes.
pub const ERROR_RATIO: DerivedDef = DerivedDef {
    name: "job:http_requests_errors:ratio_rate5m",
    expr: "sum by (job) (rate(http_requests_total{status=~\"5..\"}[5m])) / sum by (job) (rate(http_requests_total[5m]))",
    help: "Share of HTTP requests answered with a 5xx status over 5 minutes, per job.",
    guide_name: "error_rate",
};

/// The guide's `messages_per_second`, as a rate per job over 1 minute.
pub const MESSAGES_RATE: DerivedDef = DerivedDef {
    name: "job:messages:rate1m",
    expr: "sum by (job) (rate(messages_total[1m]))",
    help: "Messages processed per second over 1 minute, per job.",
    guide_name: "messages_per_second",
};

/// Every recording rule.
pub const DERIVED: &[DerivedDef] = &[RESPONSE_TIME_P95, REQUEST_RATE, ERROR_RATIO, MESSAGES_RATE];
