//! A bounded, prioritised, panic-safe pool of worker threads for CPU work, on crossbeam.
//!
//! # Overview
//!
//! [`WorkerPool`] runs jobs on a fixed set of threads (default: one per core) fed by a bounded
//! queue (default capacity 1000). It is the performance guide's worker pool done properly:
//!
//! - **Priorities that work.** [`Priority::High`] jobs are taken before every queued normal and
//!   low job. A guard keeps lower priorities moving (see [the rule](#the-priority-rule)).
//! - **No job is ever lost.** A submission that cannot be accepted hands the job back
//!   ([`SubmitError::Full`], [`Closed`](SubmitError::Closed), [`Timeout`](SubmitError::Timeout)).
//!   Submit blocking ([`submit`](WorkerPool::submit)), without waiting
//!   ([`try_submit`](WorkerPool::try_submit)), with a deadline
//!   ([`submit_timeout`](WorkerPool::submit_timeout)), or from async code without blocking the
//!   runtime ([`submit_async`](WorkerPool::submit_async)).
//! - **Results and panics.** [`submit`](WorkerPool::submit) returns a [`JobHandle`] to
//!   [`join`](JobHandle::join) or `.await`; [`execute`](WorkerPool::execute) is
//!   fire-and-forget. A panicking job never kills its worker: its handle yields
//!   [`JobError::Panicked`] with the message, and the panic is counted.
//! - **Shutdown.** [`shutdown`](WorkerPool::shutdown) runs every accepted job and joins;
//!   [`shutdown_timeout`](WorkerPool::shutdown_timeout) does so until a deadline;
//!   [`shutdown_now`](WorkerPool::shutdown_now) hands back the jobs that never started.
//!   Dropping the pool is a graceful shutdown.
//! - **A cheap handle.** `WorkerPool` is `Clone` (one `Arc`): clones share the threads and the
//!   queue, a shutdown through any clone is seen by all, and dropping the last clone is a
//!   graceful shutdown.
//! - **Observability.** [`Observe`](veza_core::Observe) gives exact [`QueueStats`](veza_core::QueueStats);
//!   [`HealthCheck`](veza_core::HealthCheck) reports a closed pool or a queue 90% full; the
//!   catalog metrics (`workers_*`, labelled by pool name) go to the `metrics` recorder.
//!
//! # Usage
//!
//! ```
//! use veza_workers::{Priority, WorkerPool};
//!
//! let pool = WorkerPool::builder().name("hashing").workers(2).capacity(1000).build()?;
//!
//! let digest = pool.submit(|| (1..=20u64).product::<u64>())?;
//! pool.priority(Priority::High).execute(|| { /* urgent, fire-and-forget */ })?;
//! assert_eq!(digest.join()?, 2_432_902_008_176_640_000);
//!
//! pool.shutdown(); // runs everything accepted, then joins the threads
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! From async code, `let handle = pool.submit_async(job).await?; let value = handle.await?;`.
//!
//! # The priority rule
//!
//! Each worker takes the oldest job of the highest priority that has one. To keep lower
//! priorities from starving, each worker counts, for normal and for low, the jobs it took from a
//! higher priority while that priority had jobs waiting. When a count reaches
//! [`Config::starvation_limit`] (default 32), the worker's next job comes from that priority
//! (low before normal when both are due) and the count restarts; finding that priority's queue
//! empty restarts it too. So under a flood of high-priority work, each worker still gives normal
//! and low jobs at least one of every 33 jobs it takes. `starvation_limit: None` makes priority
//! strict. The capacity bounds the three priorities together.
//!
//! # Which pool to use
//!
//! - **This pool**: CPU-bound jobs submitted from many places (request handlers, async tasks)
//!   that need back-pressure (bounded queue), priorities, panic isolation, graceful shutdown and
//!   metrics: password hashing, image resizing, compression, report generation.
//! - **`tokio::task::spawn_blocking`**: blocking I/O or a blocking library call from async
//!   code. Its pool grows to 512 threads and its queue is unbounded, which suits waiting, not
//!   computing: 500 CPU-bound jobs there oversubscribe the cores.
//! - **rayon**: data parallelism, one big computation split across cores (`par_iter`, `join`),
//!   with work stealing. It has no bounded queue, no priorities and no per-job results.
//!
//! # Metrics
//!
//! Counters are exact (per-worker, single-writer slots; submissions counted in per-thread
//! shards) and published to the recorder every 1024 jobs per worker and whenever a worker goes
//! idle. Queue-wait and run-time histograms time every job while jobs take 50 µs or more and one
//! job in 64 otherwise, so measuring stays under about 1% of a job's cost. Install the recorder
//! (for example with `veza-metrics`) before building the pool: handles are registered at build.
//!
//! # Feature flags
//!
//! | feature | default | what it enables |
//! |---|---|---|
//! | `serde` | no | `Serialize`/`Deserialize` for [`Config`] and [`Priority`] |
//! | `tracing` | no | a `workers.job` span per job run (pool, priority) and one `ERROR` event per panicking job (target `veza_workers::panic`, field `panic`) |
//!
//! # Supported Rust versions
//!
//! Rust 1.85 or newer.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod config;
mod error;
mod handle;
mod metrics;
mod pool;
mod queue;
mod worker;

pub use config::{Builder, Config, Priority};
pub use error::{BuildError, JobError, SubmitError};
pub use handle::{JobFuture, JobHandle, UnstartedJob};
pub use pool::{Submitter, WorkerPool};

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
