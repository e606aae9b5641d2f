//! Object and buffer pools that reset their objects and stay bounded, and a memory budget that
//! tells pools and caches to shrink before the process is killed.
//!
//! # Overview
//!
//! Rust has no garbage collector to tune, so the guide's memory section (a `sync.Pool`, a
//! manager that forces GC above 80% of a budget) becomes three tools:
//!
//! - [`Pool<T>`]: reuses expensive objects. Objects are reset on return (a closure or
//!   [`Recycle`]), the pool never holds more than its cap (extra returns are dropped and
//!   counted), and it is sharded per core so threads rarely contend. The [`Pooled`] guard
//!   derefs to the object and returns it on drop; [`detach`](Pooled::detach) keeps it;
//!   [`get_owned`](Pool::get_owned) gives a `'static` guard holding an `Arc` of the pool.
//! - [`BufferPool`]: byte buffers (`Vec<u8>`, or `bytes::BytesMut` with the `bytes` feature) in
//!   size classes, handed out empty with their capacity, with a cap on retained bytes; an
//!   oversized buffer is not kept.
//! - [`MemoryBudget`]: a byte budget measured on the resident set (Linux) or exactly on the heap
//!   with the crate's [`CountingAllocator`]; pressure levels (normal, high from 80%, critical
//!   from 100%) sampled on an interval (30 s by default) and on demand; subscribers get every
//!   change, and attached pools trim themselves (half their cap under high pressure, nothing
//!   kept under critical pressure).
//! - In a container, [`MemoryBudget::for_cgroup`] takes the limit of the process's [`Cgroup`]
//!   (v2 `memory.max` up its ancestors, or v1's hierarchical limit), measures the cgroup's
//!   working set (usage less inactive file pages, as the kubelet does), and raises the level
//!   while the kernel reports tasks stalled on memory (PSI), before the OOM killer acts.
//!
//! Statistics come through [`Observe`](veza_core::Observe) as
//! [`PoolStats`](veza_core::PoolStats), and as the `mempool_*`, `memory_budget_*` and
//! `memory_pressure_*` catalog metrics.
//!
//! # Usage
//!
//! ```
//! use std::sync::Arc;
//! use veza_mempool::{BufferPool, MemoryBudget, Pool};
//!
//! let strings = Arc::new(Pool::recycling(|| String::with_capacity(256), 32));
//! {
//!     let mut s = strings.get();
//!     s.push_str("hello");
//! } // cleared and back in the pool
//! assert!(strings.get().is_empty());
//!
//! let buffers = Arc::new(BufferPool::<Vec<u8>>::new());
//! let buf = buffers.get(50_000); // empty, room for at least 50,000 bytes (the 64 KiB class)
//! assert!(buf.is_empty() && buf.capacity() >= 50_000);
//!
//! let budget = MemoryBudget::new(512 << 20)?; // 512 MiB of resident memory
//! budget.attach(&strings);
//! budget.attach(&buffers);
//! budget.sample()?; // or budget.start(Duration::from_secs(30)) in the background
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Pre-allocate instead of locking slices and maps
//!
//! The guide's `OptimizedSlice` and `OptimizedMap` wrap a slice and a map in a read-write lock.
//! In Rust, do this instead:
//!
//! - **Give capacity hints.** `Vec::with_capacity(n)`, `String::with_capacity(n)`,
//!   `HashMap::with_capacity(n)` allocate once instead of growing by doubling (each growth
//!   copies everything). `cargo xtask bench --filter mempool/vec_prealloc` measures pushing
//!   1,000,000 `u64`s both ways; `collect()` from an iterator with an exact size hint does it
//!   for you. Reuse a buffer across loop iterations with `clear()` (capacity kept) rather than
//!   allocating a new one each time, or take it from a [`Pool`].
//! - **Do not share a growing vector behind a lock.** Build it on one thread and share the
//!   finished `Arc<[T]>` (no lock to read), or give each thread its own and merge.
//! - **Maps read by many threads:** a `RwLock<HashMap>` serialises writers and bounces the
//!   lock's cache line between readers. A sharded map or a concurrent cache (`veza-cache`) scales
//!   better; an immutable map swapped atomically is best when writes are rare.
//!
//! # Feature flags
//!
//! | feature | default | what it enables |
//! |---|---|---|
//! | `bytes` | no | `Buffer` for `bytes::BytesMut`, so `BufferPool<BytesMut>` works |
//! | `serde` | no | `Serialize`/`Deserialize` for [`BufferPoolConfig`] and [`BudgetConfig`] (durations as `"30s"`) |
//!
//! # Supported Rust versions
//!
//! Rust 1.85 or newer.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]

#[allow(
    unsafe_code,
    reason = "a global allocator is an unsafe trait; see SAFETY comments"
)]
mod alloc;
#[allow(
    unsafe_code,
    reason = "sysconf(_SC_PAGESIZE) for the resident set size"
)]
mod budget;
mod buffer;
mod cgroup;
mod config;
mod error;
mod guard;
#[allow(
    unsafe_code,
    reason = "a thread's recent pool slots are reached through raw pointers; see SAFETY comments"
)]
mod local;
mod metrics;
mod pool;
mod recycle;
mod shard;

pub use alloc::CountingAllocator;
pub use budget::{
    Attach, MemoryBudget, Monitor, Pressure, PressureChange, Trim, UsageError, UsageSource,
};
pub use buffer::{Buffer, BufferPolicy, BufferPool, ClassPool, PooledBuf, PooledBufOwned};
pub use cgroup::{Cgroup, Stall};
pub use config::{BudgetConfig, BufferPoolConfig};
pub use error::ConfigError;
pub use guard::{Home, Pooled, PooledOwned};
pub use pool::{Closures, Policy, Pool, PoolBuilder};
pub use recycle::Recycle;

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
