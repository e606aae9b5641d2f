//! The pool's exact counters and its catalog metrics, kept so that counting never dominates a
//! tiny job.
//!
//! Counters are exact and cheap: each worker owns a cache-padded slot it alone writes, and
//! submissions are counted in per-thread shards. They are published to the `metrics` recorder
//! (with `absolute`, so repeated publishing is harmless) every 1024 jobs of a worker and
//! whenever a worker goes idle. Timing is measured for every job while jobs take 50 µs or more,
//! and for 1 job in 64 otherwise, so the two `Instant::now()` calls stay under ~1% of a job.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use metrics::{Counter, Gauge, Histogram};
use veza_core::catalog::workers as catalog;

use crate::config::Priority;

/// Jobs at or above this run time are all timed.
const SLOW_JOB: Duration = Duration::from_micros(50);
/// One job in this many is timed while jobs are fast.
pub(crate) const SAMPLE_EVERY: u64 = 64;
/// A worker publishes its counters at least this often (in jobs).
pub(crate) const PUBLISH_EVERY: u64 = 1024;
const SHARDS: usize = 8;

/// What one worker counts; written by that worker only.
#[derive(Default)]
pub(crate) struct WorkerSlot {
    pub(crate) completed: AtomicU64,
    pub(crate) panicked: AtomicU64,
    pub(crate) busy: AtomicBool,
}

impl WorkerSlot {
    /// Single-writer increment: no read-modify-write instruction needed.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.store(counter.load(Relaxed) + 1, Relaxed);
    }
}

/// Counters of the whole pool.
pub(crate) struct Counters {
    pub(crate) workers: Box<[CachePadded<WorkerSlot>]>,
    submitted: [CachePadded<AtomicU64>; SHARDS],
    /// Rejections by reason: full, closed, timeout.
    rejected: [AtomicU64; 3],
    /// Jobs handed back by an immediate shutdown.
    pub(crate) cancelled: AtomicU64,
    /// Whether recent jobs were slow enough to time every one.
    pub(crate) time_all: AtomicBool,
}

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    static SUBMIT_TICK: Cell<u64> = const { Cell::new(0) };
}

impl Counters {
    pub(crate) fn new(workers: usize) -> Counters {
        Counters {
            workers: (0..workers).map(|_| CachePadded::default()).collect(),
            submitted: Default::default(),
            rejected: Default::default(),
            cancelled: AtomicU64::new(0),
            time_all: AtomicBool::new(false),
        }
    }

    /// Counts an accepted job; says whether its queue wait should be timed.
    pub(crate) fn submitted(&self) -> bool {
        static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);
        let shard = SHARD.with(|s| {
            if s.get() == usize::MAX {
                s.set(NEXT_SHARD.fetch_add(1, Relaxed) % SHARDS);
            }
            s.get()
        });
        self.submitted[shard].fetch_add(1, Relaxed);
        self.time_all.load(Relaxed)
            || SUBMIT_TICK.with(|t| {
                let n = t.get().wrapping_add(1);
                t.set(n);
                n % SAMPLE_EVERY == 0
            })
    }

    pub(crate) fn rejected(&self, reason: &str) {
        let i = match reason {
            "full" => 0,
            "closed" => 1,
            _ => 2,
        };
        self.rejected[i].fetch_add(1, Relaxed);
    }

    pub(crate) fn total_submitted(&self) -> u64 {
        self.submitted.iter().map(|s| s.load(Relaxed)).sum()
    }

    pub(crate) fn total_rejected(&self) -> u64 {
        self.rejected.iter().map(|r| r.load(Relaxed)).sum()
    }

    pub(crate) fn total_completed(&self) -> u64 {
        self.workers.iter().map(|w| w.completed.load(Relaxed)).sum()
    }

    pub(crate) fn total_panicked(&self) -> u64 {
        self.workers.iter().map(|w| w.panicked.load(Relaxed)).sum()
    }

    pub(crate) fn busy(&self) -> usize {
        self.workers.iter().filter(|w| w.busy.load(Relaxed)).count()
    }

    /// Called after a timed job: time every job while they are slow.
    pub(crate) fn observed_run_time(&self, run: Duration) {
        let slow = run >= SLOW_JOB;
        if self.time_all.load(Relaxed) != slow {
            self.time_all.store(slow, Relaxed);
        }
    }
}

/// The catalog metrics of one pool, registered once with the `pool` label.
pub(crate) struct PoolMetrics {
    submitted: Counter,
    completed: Counter,
    panicked: Counter,
    rejected: [Counter; 3],
    depth: [Gauge; 3],
    busy: Gauge,
    pub(crate) queue_wait: Histogram,
    pub(crate) run_time: Histogram,
}

impl PoolMetrics {
    /// Registers the handles with the recorder installed now (made again by `Late` if one is
    /// installed later).
    pub(crate) fn new(pool: &str) -> PoolMetrics {
        let pool = pool.to_owned();
        let depth = Priority::ALL.map(|p| {
            metrics::gauge!(catalog::QUEUE_DEPTH.name, "pool" => pool.clone(), "priority" => p.as_str())
        });
        let rejected = ["full", "closed", "timeout"].map(|reason| {
            metrics::counter!(catalog::REJECTED.name, "pool" => pool.clone(), "reason" => reason)
        });
        PoolMetrics {
            submitted: metrics::counter!(catalog::SUBMITTED.name, "pool" => pool.clone()),
            completed: metrics::counter!(catalog::COMPLETED.name, "pool" => pool.clone()),
            panicked: metrics::counter!(catalog::PANICKED.name, "pool" => pool.clone()),
            rejected,
            depth,
            busy: metrics::gauge!(catalog::BUSY.name, "pool" => pool.clone()),
            queue_wait: metrics::histogram!(catalog::QUEUE_WAIT.name, "pool" => pool.clone()),
            run_time: metrics::histogram!(catalog::JOB_DURATION.name, "pool" => pool),
        }
    }

    /// Publishes the exact counters and the current gauges.
    pub(crate) fn publish(&self, counters: &Counters, depth: [usize; 3]) {
        self.submitted.absolute(counters.total_submitted());
        self.completed.absolute(counters.total_completed());
        self.panicked.absolute(counters.total_panicked());
        for (counter, value) in self.rejected.iter().zip(&counters.rejected) {
            counter.absolute(value.load(Relaxed));
        }
        for (gauge, value) in self.depth.iter().zip(depth) {
            gauge.set(value as f64);
        }
        self.busy.set(counters.busy() as f64);
    }
}
