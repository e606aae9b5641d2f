//! [`RuntimeCollector`]: a tokio runtime's figures in the scrape: alive tasks, workers, the
//! global queue, each worker's busy time and parks, and the busy ratio since the last scrape.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use veza_core::catalog::runtime as catalog;

use crate::family::{Collector, Family};

/// Reads a tokio runtime's metrics (the stable ones) at scrape time. [`MetricsBuilder`]
/// adds one for the runtime it is built in; add others with
/// [`MetricsBuilder::collector`].
///
/// [`MetricsBuilder`]: crate::MetricsBuilder
/// [`MetricsBuilder::collector`]: crate::MetricsBuilder::collector
#[derive(Debug)]
pub struct RuntimeCollector {
    runtime: tokio::runtime::Handle,
    /// The total busy time and when it was read, for the ratio.
    last: Mutex<Option<(Duration, Instant)>>,
}

impl RuntimeCollector {
    /// A collector for `runtime` (`tokio::runtime::Handle::current()` for the one you are in).
    pub fn new(runtime: tokio::runtime::Handle) -> RuntimeCollector {
        RuntimeCollector {
            runtime,
            last: Mutex::new(None),
        }
    }
}

impl Collector for RuntimeCollector {
    fn collect(&self, out: &mut Vec<Family>) {
        let m = self.runtime.metrics();
        let workers = m.num_workers();
        out.push(Family::single(
            &catalog::TASKS_ALIVE,
            m.num_alive_tasks() as f64,
        ));
        out.push(Family::single(&catalog::WORKERS, workers as f64));
        out.push(Family::single(
            &catalog::GLOBAL_QUEUE_DEPTH,
            m.global_queue_depth() as f64,
        ));
        // Per-worker times and counts need 64-bit atomics (tokio's `cfg_64bit_metrics`).
        #[cfg(target_has_atomic = "64")]
        self.per_worker(&m, workers, out);
    }
}

impl RuntimeCollector {
    #[cfg(target_has_atomic = "64")]
    fn per_worker(
        &self,
        m: &tokio::runtime::RuntimeMetrics,
        workers: usize,
        out: &mut Vec<Family>,
    ) {
        let mut busy = Family::new(&catalog::WORKER_BUSY);
        let mut parks = Family::new(&catalog::WORKER_PARKS);
        let mut total = Duration::ZERO;
        let mut label = itoa::Buffer::new();
        for worker in 0..workers {
            let b = m.worker_total_busy_duration(worker);
            total = total.saturating_add(b);
            let name = label.format(worker);
            busy.push(&[name], b.as_secs_f64());
            parks.push(&[name], m.worker_park_count(worker) as f64);
        }
        out.push(busy);
        out.push(parks);
        let now = Instant::now();
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((before, at)) = last.replace((total, now)) {
            let elapsed = now.saturating_duration_since(at).as_secs_f64() * workers as f64;
            if elapsed > 0.0 {
                let ratio = total.saturating_sub(before).as_secs_f64() / elapsed;
                out.push(Family::single(&catalog::BUSY_RATIO, ratio.clamp(0.0, 1.0)));
            }
        }
    }
}
