//! Bounded in-process caches with exact statistics and single-flight loading, cache-aside for
//! any async loader, and a fast immutable sorted index.
//!
//! # Overview
//!
//! The guide's `CacheOptimizer` is a map under a read-write lock that never evicts, and its
//! search is a binary search under a lock. This crate replaces both:
//!
//! - [`Cache<K, V>`]: bounded by entries or by weight (bytes with a weigher), lazy time to live
//!   (per entry too) and time to idle,
//!   invalidation by key, predicate or all, exact [`CacheStats`](veza_core::CacheStats)
//!   through [`Observe`](veza_core::Observe) and the `cache_*` catalog metrics, and
//!   [`shrink_to_fraction`](Cache::shrink_to_fraction) for memory pressure.
//! - Single-flight loading, blocking or async: [`get_or_load`](Cache::get_or_load),
//!   [`try_get_or_load`](Cache::try_get_or_load) (errors reach every waiter and are not
//!   cached), [`try_get_or_load_opt`](Cache::try_get_or_load_opt) (with negative caching).
//! - Cache-aside: `Cache` implements [`veza_core::AsyncCache`], and [`CacheAside`] puts a cache
//!   in front of any async loader.
//! - [`SortedIndex`]: an immutable sorted set (static B-tree layout) with `contains`, `rank` and
//!   ranges, readable without locks; [`SharedIndex`] swaps a new one in atomically.
//!
//! # Usage
//!
//! ```
//! use std::time::Duration;
//! use veza_cache::Cache;
//!
//! let users = Cache::<u64, String>::builder()
//!     .name("users")
//!     .max_entries(10_000)
//!     .time_to_live(Duration::from_secs(300))
//!     .build()?;
//! let name = users.get_or_load(&42, || "Ada".to_owned()); // loads once, then hits
//! assert_eq!(users.get(&42).as_deref(), Some("Ada"));
//! users.invalidate(&42);
//! # assert_eq!(name, "Ada");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The engine
//!
//! The cache is backed by `quick_cache` (S3-FIFO eviction). Measured here (`cargo xtask bench
//! --filter cache`), moka's read path costs about a microsecond and would make a cache slower
//! than the guide's `RwLock<HashMap>`; quick_cache reads in tens of nanoseconds with a hit
//! ratio at least as good. What quick_cache lacks, this crate adds: statistics, time to live
//! (cache-wide or per entry) and time to idle, both checked on read, shared errors for single
//! flight, negative caching. Eviction listeners (a moka strength) are not offered.
//!
//! # Feature flags
//!
//! | feature | default | what it enables |
//! |---|---|---|
//! | `serde` | no | `Serialize`/`Deserialize` for [`Config`], durations as `"30s"` |
//! | `tracing` | no | one `WARN` event per failed load (target `veza_cache::load`, fields `cache`, `error`) |
//!
//! # Supported Rust versions
//!
//! Rust 1.85 or newer.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod aside;
mod cache;
mod config;
mod entry;
mod error;
mod load;
mod sorted_index;
mod stats;

pub use aside::CacheAside;
pub use cache::Cache;
pub use config::{CacheBuilder, Config};
pub use error::ConfigError;
pub use load::{Entry, Source};
pub use quick_cache::Equivalent;
pub use sorted_index::{SharedIndex, SortedIndex};

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
