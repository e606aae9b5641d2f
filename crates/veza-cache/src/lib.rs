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
//! The cache runs on its own store (module `store`): sharded hash tables under read-write
//! locks, so a hit costs a read lock, a table probe, and a load and a store on the entry's
//! read credit, like quick_cache and far from moka's read path (about a microsecond, slower
//! than the guide's `RwLock<HashMap>`; `cargo xtask bench --filter cache`). Its eviction
//! policy is quick_cache's S3-FIFO, kept step for step (new keys in a small cold queue once
//! the cache is full; read there or back soon after leaving, they move to the hot queue, a
//! CLOCK), plus a door: a cold entry that was not read in time still enters hot if a
//! frequency sketch (TinyLFU's) says it was requested clearly more often lately than hot's
//! next victim. So recency-heavy traffic gets S3-FIFO's hit ratio (where moka's admission
//! filter loses up to 37 points), and a key that comes back at a steady pace too slow for
//! the cold queue (a loop longer than the cache) is kept on its frequency (where S3-FIFO and
//! LRU lose). The hit ratios of every shape against quick_cache, moka and LRU are in
//! `docs/benchmarks.md`, the decision and what was tried in `docs/architecture.md`.
//!
//! What the peers lack, this crate adds: statistics, time to live (cache-wide or per entry)
//! and time to idle, both checked on read, shared errors for single flight, negative caching,
//! eviction listeners ([`CacheBuilder::eviction_listener`], with the [`RemovalCause`]),
//! iteration ([`Cache::iter`]) and a settable shard count ([`CacheBuilder::shards`]).
//!
//! # Feature flags
//!
//! | feature | default | what it enables |
//! |---|---|---|
//! | `serde` | no | `Serialize`/`Deserialize` for [`Config`], durations as `"30s"` |
//! | `tracing` | no | one `WARN` event per failed load (target `veza_cache::load`, fields `cache`, `error`) |
//! | `tokio` | no | [`Cache::get_or_refresh`]: loads that go on without their caller, for soft and hard load timeouts and refresh-ahead |
//! | `redis` | no | [`TieredCache`]: a second tier in Redis with invalidations broadcast to every instance's first tier |
//!
//! # Supported Rust versions
//!
//! Rust 1.85 or newer.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]

mod aside;
#[cfg(feature = "tokio")]
mod background;
mod cache;
mod config;
mod entry;
mod error;
mod flight;
mod listen;
mod load;
mod sketch;
mod sorted_index;
mod stats;
mod store;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod tier;

pub use aside::CacheAside;
pub use cache::{Cache, Iter};
pub use config::{CacheBuilder, Config};
pub use equivalent::Equivalent;
pub use error::ConfigError;
pub use listen::RemovalCause;
pub use load::{Entry, Source};
pub use sorted_index::{SharedIndex, SortedIndex};
#[cfg(feature = "redis")]
pub use tier::{Codec, Postcard, Served, TierConfig, TierStats, TieredCache};

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
