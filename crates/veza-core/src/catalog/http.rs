//! Metrics of incoming HTTP requests, recorded by the server middleware.
//!
//! `route` is the route template (`/users/{id}`), never the raw path; `status` is the numeric
//! status code.

use super::{Group::Http as G, MetricDef, Unit};

/// Requests answered.
pub const REQUESTS: MetricDef = MetricDef::counter(
    G,
    "http_requests_total",
    Unit::Count,
    "HTTP requests answered, by method, route template and status code.",
)
.with_labels(&["method", "route", "status"])
.with_guide_name("http_requests_total");

/// Time from request head to the end of the response.
pub const REQUEST_DURATION: MetricDef = MetricDef::histogram(
    G,
    "http_request_duration_seconds",
    Unit::Seconds,
    "Time to answer an HTTP request, from its head to the end of the response body.",
)
.with_labels(&["method", "route"])
.with_guide_name("http_request_duration_seconds");

/// Requests being served now.
pub const REQUESTS_IN_FLIGHT: MetricDef = MetricDef::gauge(
    G,
    "http_requests_in_flight",
    Unit::Count,
    "HTTP requests being served now.",
)
.with_guide_name("http_requests_in_flight");

/// Response body size.
pub const RESPONSE_SIZE: MetricDef = MetricDef::histogram(
    G,
    "http_response_size_bytes",
    Unit::Bytes,
    "Size of HTTP response bodies in bytes.",
)
.with_labels(&["method", "route"])
.with_guide_name("http_response_size_bytes");

/// Every HTTP server metric.
pub const ALL: &[MetricDef] = &[
    REQUESTS,
    REQUEST_DURATION,
    REQUESTS_IN_FLIGHT,
    RESPONSE_SIZE,
];
