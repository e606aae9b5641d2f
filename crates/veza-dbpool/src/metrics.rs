//! The pool's catalog metrics, with kept handles.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};
use veza_core::PoolStats;
use veza_core::catalog::db as catalog;
use veza_core::publish::Late;

pub(crate) struct PoolMetrics {
    handles: Late<Handles>,
    /// Connections closed on return because a query was still running / a transaction open.
    abandoned: [AtomicU64; 2],
    /// Connections closed at their (jittered) end of life.
    expired: AtomicU64,
    waiting: AtomicU64,
    timeouts_total: AtomicU64,
    pool: String,
}

/// The recorder's handles, made again if a recorder is installed after the pool is built.
struct Handles {
    active: Gauge,
    idle: Gauge,
    pending: Gauge,
    wait: Histogram,
    timeouts: Counter,
    created: Counter,
    closed: [Counter; 6],
}

impl Handles {
    fn new(p: &str) -> Handles {
        let p = p.to_owned();
        Handles {
            active: metrics::gauge!(catalog::CONNECTIONS_ACTIVE.name, "pool" => p.clone()),
            idle: metrics::gauge!(catalog::CONNECTIONS_IDLE.name, "pool" => p.clone()),
            pending: metrics::gauge!(catalog::PENDING_CHECKOUTS.name, "pool" => p.clone()),
            wait: metrics::histogram!(catalog::CHECKOUT_WAIT.name, "pool" => p.clone()),
            timeouts: metrics::counter!(catalog::CHECKOUT_TIMEOUTS.name, "pool" => p.clone()),
            created: metrics::counter!(catalog::CONNECTIONS_CREATED.name, "pool" => p.clone()),
            closed: [
                "broken",
                "invalid",
                "max_lifetime",
                "idle_timeout",
                "abandoned_query",
                "abandoned_transaction",
            ]
            .map(|reason| {
                metrics::counter!(catalog::CONNECTIONS_CLOSED.name, "pool" => p.clone(), "reason" => reason)
            }),
        }
    }
}

/// Leaves the waiting count when the checkout ends, however it ends.
pub(crate) struct Waiting<'a>(&'a PoolMetrics);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let now = self.0.waiting.fetch_sub(1, Relaxed) - 1;
        self.0.handles.get().pending.set(now as f64);
    }
}

impl PoolMetrics {
    pub(crate) fn new(pool: &str) -> PoolMetrics {
        PoolMetrics {
            handles: Late::new(|| Handles::new(pool)),
            abandoned: [AtomicU64::new(0), AtomicU64::new(0)],
            expired: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            timeouts_total: AtomicU64::new(0),
            pool: pool.to_owned(),
        }
    }

    /// A connection came back with a query still running (now cancelled) and is closed.
    pub(crate) fn abandoned_query(&self) {
        self.abandoned[0].fetch_add(1, Relaxed);
    }

    /// A connection came back inside a transaction and is closed.
    pub(crate) fn abandoned_transaction(&self) {
        self.abandoned[1].fetch_add(1, Relaxed);
    }

    /// A connection reached the end of its lifetime and is closed.
    pub(crate) fn expired(&self) {
        self.expired.fetch_add(1, Relaxed);
    }

    pub(crate) fn waiting(&self) -> Waiting<'_> {
        let now = self.waiting.fetch_add(1, Relaxed) + 1;
        self.handles.get().pending.set(now as f64);
        Waiting(self)
    }

    pub(crate) fn waiting_now(&self) -> u64 {
        self.waiting.load(Relaxed)
    }

    pub(crate) fn checked_out(&self, waited: Duration) {
        self.handles.get().wait.record(waited);
    }

    pub(crate) fn timeout(&self) {
        let total = self.timeouts_total.fetch_add(1, Relaxed) + 1;
        self.handles.get().timeouts.absolute(total);
    }

    pub(crate) fn timeouts_now(&self) -> u64 {
        self.timeouts_total.load(Relaxed)
    }

    pub(crate) fn transaction(&self, outcome: &'static str) {
        metrics::counter!(catalog::TRANSACTIONS.name, "pool" => self.pool.clone(), "outcome" => outcome)
            .increment(1);
    }

    pub(crate) fn retry(&self, reason: &'static str) {
        metrics::counter!(catalog::TRANSACTION_RETRIES.name, "pool" => self.pool.clone(), "reason" => reason)
            .increment(1);
    }

    /// Makes the handles again if a recorder was installed since the pool was built.
    pub(crate) fn refresh(&self) {
        self.handles.refresh(|| Handles::new(&self.pool));
    }

    pub(crate) fn publish(&self, stats: &PoolStats, s: &bb8::Statistics) {
        let h = self.handles.get();
        h.active.set(stats.in_use as f64);
        h.idle.set(stats.idle as f64);
        h.pending.set(self.waiting.load(Relaxed) as f64);
        h.timeouts.absolute(self.timeouts_total.load(Relaxed));
        h.created.absolute(s.connections_created);
        let busy = self.abandoned[0].load(Relaxed);
        let in_tx = self.abandoned[1].load(Relaxed);
        let expired = self.expired.load(Relaxed);
        // bb8 counts the abandoned and expired ones (ours) as broken.
        h.closed[0].absolute(
            s.connections_closed_broken
                .saturating_sub(busy + in_tx + expired),
        );
        h.closed[2].absolute(s.connections_closed_max_lifetime + expired);
        h.closed[4].absolute(busy);
        h.closed[5].absolute(in_tx);
        h.closed[1].absolute(s.connections_closed_invalid);
        h.closed[3].absolute(s.connections_closed_idle_timeout);
    }
}
