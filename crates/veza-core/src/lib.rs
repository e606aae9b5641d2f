//! Thin, stable traits and value types shared by every Veza performance crate.
//!
//! # Overview
//!
//! `veza-core` is the promise the other crates make to each other and to you. It has no
//! required dependency and changes slowly, in the spirit of `tower-service` and `tracing-core`:
//!
//! - [`ErrorKind`] and [`Classify`]: every error of every Veza crate says what class of failure it
//!   is, so a service maps any of them to an HTTP status or a retry decision in one place.
//! - [`Health`] and [`HealthCheck`]: pools, caches and clients report their health the same way,
//!   for readiness endpoints.
//! - [`PoolStats`], [`CacheStats`], [`QueueStats`] and [`Observe`]: point-in-time snapshots that a
//!   monitor, a test or a debug endpoint reads from any component.
//! - [`AsyncCache`]: the seam for cache-aside, so a database helper can use a cache without
//!   depending on a cache crate.
//! - [`duration`]: durations as configuration files write them (`"30s"`, `"250ms"`), with
//!   the `serde` helpers every `Config` uses.
//! - [`publish`]: components that publish their metrics at scrape time, and handles bound
//!   late, so metrics are live whatever the order in which the recorder and the components
//!   are set up.
//! - [`catalog`]: every metric the Veza crates emit or the performance guide asks for, with its
//!   Prometheus name, kind, unit, labels and help text, in one place.
//!
//! # Usage
//!
//! ```
//! use veza_core::{Classify, ErrorKind};
//!
//! #[derive(Debug)]
//! struct QueueFull;
//!
//! impl std::fmt::Display for QueueFull {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
//!         f.write_str("queue is full")
//!     }
//! }
//! impl std::error::Error for QueueFull {}
//!
//! impl Classify for QueueFull {
//!     fn kind(&self) -> ErrorKind {
//!         ErrorKind::Overloaded
//!     }
//! }
//!
//! let err = QueueFull;
//! assert_eq!(err.kind().http_status(), 503);
//! assert!(err.is_retryable());
//! ```
//!
//! # Feature flags
//!
//! | feature | default | what it enables |
//! |---|---|---|
//! | `serde` | no | `Serialize`/`Deserialize` for [`Health`], the stats snapshots and the catalog types; `duration::human` for `Config` durations |
//!
//! # Supported Rust versions
//!
//! The minimum supported Rust version is 1.85 (edition 2024). Raising it is a minor-version
//! change, announced in the changelog.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod cache;
pub mod catalog;
pub mod duration;
mod error;
mod health;
pub mod publish;
mod stats;

pub use cache::{AsyncCache, BoxFuture, SharedError};
pub use error::{BoxError, Classify, ErrorKind};
pub use health::{Health, HealthCheck};
pub use stats::{CacheStats, Observe, PoolStats, QueueStats};

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
