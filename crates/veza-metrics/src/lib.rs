//! Prometheus metrics for a Rust service in three lines.
//!
//! # Overview
//!
//! ```no_run
//! let metrics = veza_metrics::Metrics::builder().install()?;      // recorder + catalog
//! let _exporter = metrics.serve(veza_metrics::DEFAULT_ADDR)?;     // GET 127.0.0.1:9000/metrics
//! let business = veza_metrics::Business::new();                   // typed business handles
//! business.active_users.set(42.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`MetricsBuilder::install`] installs veza-metrics' own [`Recorder`] as the global
//!   `metrics` recorder and describes every metric of `veza_core::catalog` (help and unit).
//!   Counters and histograms count in per-thread slots (a load and a store, no atomic
//!   read-modify-write), summed at scrape; histograms are bucketed when recorded
//!   ([`SECONDS_BUCKETS`] for `_seconds`, [`BYTES_BUCKETS`] for `_bytes`, else
//!   [`DEFAULT_BUCKETS`]). Every Veza crate then reports through it, and every live pool, cache
//!   and worker pool publishes its figures at each scrape, whether it was built before or after
//!   the install. [`MetricsBuilder::global_label`] adds `service`, `instance` and the like to
//!   every series; [`MetricsBuilder::buckets`] sets one histogram's buckets;
//!   [`MetricsBuilder::idle_timeout`] drops series nobody records into any more.
//! - [`RuntimeCollector`] reads the tokio runtime's figures at scrape time (alive tasks,
//!   workers, global queue, busy seconds and parks per worker, busy ratio); the builder adds
//!   one for the runtime it runs in.
//! - [`ProcessCollector`] and [`SystemCollector`] read `/proc` at scrape time, not per request:
//!   real CPU seconds (the guide's gauge returned 0.0), memory, file descriptors, threads, page
//!   faults, context switches, I/O; the machine's CPU by mode, load, memory, swap, disks,
//!   network and filesystems. Linux first; elsewhere the crate builds and reports the rest.
//! - [`Metrics::serve`] answers `GET /metrics` (loopback by default) in the Prometheus text
//!   format, or OpenMetrics 1.0 when the scraper's `Accept` asks ([`Format`]), gzip-compressed
//!   when the scraper accepts it.
//! - [`HttpMetricsLayer`] is a `tower::Layer` for hyper and axum servers: requests by method,
//!   route template and status, durations, response sizes, in-flight requests. [`Routes`]
//!   keeps the `route` label bounded whatever paths clients send.
//! - [`Business`] holds the guide's business metrics as kept handles: a `counter!` call looks
//!   the metric up in the registry each time, a kept handle does not.
//! - [`PerformanceMonitor`] is the guide's monitor as a typed, serialisable snapshot.
//!
//! The guide's p95 response time and error rate are recording rules:
//! `docs/ops/prometheus-rules.yml`.
//!
//! # Feature flags
//!
//! | feature | default | what it enables |
//! |---|---|---|
//! | `pprof` | no | `GET /debug/pprof/profile?seconds=N` (a gzipped pprof protobuf for `go tool pprof`) and `/debug/pprof/flamegraph?seconds=N` (SVG) on the metrics endpoint; one profile at a time, 1 to 300 s |
//! | `heap-profile` | no | `GET /debug/pprof/heap`: a heap profile (pprof, symbolized) from jemalloc's sampling profiler, and [`heap::Jemalloc`] for the global allocator; setup in [`heap`] |
//! | `tracing` | no | a `WARN` event (target `veza_metrics::exporter`) for each connection the exporter could not serve and each failed accept |
//!
//! # Supported Rust versions
//!
//! Rust 1.85 or newer.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod business;
mod error;
pub mod exemplar;
mod exporter;
mod family;
#[cfg(feature = "heap-profile")]
#[cfg_attr(docsrs, doc(cfg(feature = "heap-profile")))]
pub mod heap;
mod layer;
mod monitor;
mod process;
#[cfg(target_os = "linux")]
mod procfs;
#[cfg(feature = "pprof")]
mod profile;
mod recorder;
mod runtime;
mod server;
mod setup;
mod system;

pub use business::Business;
pub use error::Error;
pub use exporter::{DEFAULT_ADDR, Exporter};
pub use family::{Collector, Family};
pub use layer::{HttpMetrics, HttpMetricsLayer, Routes, UNMATCHED};
pub use monitor::{PerformanceMonitor, PerformanceSnapshot};
pub use process::{ProcessCollector, ProcessSample};
pub use recorder::{Format, Recorder};
pub use runtime::RuntimeCollector;
pub use server::{ConnectionSlot, ConnectionSlots, ServerLimits};
pub use setup::{BYTES_BUCKETS, Config, DEFAULT_BUCKETS, Metrics, MetricsBuilder, SECONDS_BUCKETS};
pub use system::SystemCollector;

/// The `metrics` facade, re-exported so a service can emit (`metrics::counter!`) without a
/// dependency of its own, at the version the recorder is built for.
pub use metrics;

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
