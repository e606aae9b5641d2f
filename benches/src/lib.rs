//! The benchmark harness of the Veza crates.
//!
//! Each bench target (`benches/*.rs`, one per suite) builds a [`Bench`] from its arguments,
//! declares [`Case`]s and runs every contender of a case *interleaved* (A B C A B C ...), after
//! a warm-up, so that drift on a shared machine hits all contenders alike. Every case becomes
//! one [`CaseRecord`] line in the file named by `VEZA_BENCH_OUT`; `cargo xtask bench` collects
//! them into `target/veza-bench/report.json` (schema 2) and `report.md`.
//!
//! A case that says how many operations a sample does ([`Case::ops`]) also gets allocations
//! and bytes allocated per operation, from one extra counting sample per contender; the bench
//! binary must install [`CountingAlloc`] as its global allocator.
//!
//! Arguments understood by every suite: `--quick` (fewer samples) and `--filter TEXT` (only the
//! cases whose id contains TEXT; repeatable), and `--only NAME` (run one contender, for profiling;
//! nothing is recorded). Others (cargo's `--bench`) are ignored.
//! `DATABASE_URL` points at PostgreSQL; `VEZA_BENCH_NO_DB` (a reason) marks database cases as
//! skipped.
#![allow(
    clippy::print_stderr,
    reason = "the harness reports progress on standard error"
)]

mod alloc;
mod data;
mod format;
mod harness;
mod schema;

pub use alloc::CountingAlloc;
pub use data::{SplitMix64, zipf_keys};
pub use format::{format_duration, format_value};
pub use harness::{Bench, Case, Contender, Metric};
pub use schema::{Allocs, CaseRecord, Host, Report};

/// The pages of `docs/guide`, compiled and run as doctests (they use the Veza crates, which are
/// dev-dependencies of this crate, hence available to its doctests).
#[cfg(doctest)]
mod guide {
    #[doc = include_str!("../../docs/guide/metrics.md")]
    struct Metrics;
    #[doc = include_str!("../../docs/guide/cpu.md")]
    struct Cpu;
    #[doc = include_str!("../../docs/guide/memory.md")]
    struct Memory;
    #[doc = include_str!("../../docs/guide/caching.md")]
    struct Caching;
    #[doc = include_str!("../../docs/guide/database.md")]
    struct Database;
    #[doc = include_str!("../../docs/guide/http-client.md")]
    struct HttpClient;
    #[doc = include_str!("../../docs/guide/pitfalls.md")]
    struct Pitfalls;
    #[doc = include_str!("../../docs/guide/migrating.md")]
    struct Migrating;
}
