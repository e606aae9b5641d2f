//! The worker thread: take a job by the priority rule, run it behind `catch_unwind`, count it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crate::metrics::{PUBLISH_EVERY, SAMPLE_EVERY, WorkerSlot};
use crate::pool::Shared;
use crate::queue::{Envelope, Fairness};

/// The body of worker `index`: runs until the pool is closed and drained, or aborted.
pub(crate) fn run(shared: &Arc<Shared>, index: usize) {
    let slot = &shared.counters.workers[index];
    let mut fairness = Fairness::new(shared.config.starvation_limit);
    let mut ran: u64 = 0;
    loop {
        if shared.queue.is_aborted() {
            break;
        }
        if let Some(envelope) = shared.queue.take(&mut fairness) {
            run_one(shared, slot, envelope, ran);
            ran += 1;
            if ran % PUBLISH_EVERY == 0 {
                shared.publish();
            }
            continue;
        }
        if shared.queue.is_closed() {
            if shared.queue.len() == 0 {
                break;
            }
            // A submitter reserved room before the close and has not pushed yet.
            std::thread::yield_now();
            continue;
        }
        shared.publish();
        shared.queue.wait_for_work();
    }
    shared.publish();
}

fn run_one(shared: &Shared, slot: &WorkerSlot, envelope: Envelope, ran: u64) {
    slot.busy.store(true, Relaxed);
    let metrics = &shared.metrics;
    if let Some(enqueued) = envelope.enqueued {
        metrics.queue_wait.record(enqueued.elapsed());
    }
    let timed = shared.counters.time_all.load(Relaxed) || ran % SAMPLE_EVERY == 0;
    let started = timed.then(Instant::now);
    let outcome = catch_unwind(AssertUnwindSafe(envelope.job));
    if let Some(started) = started {
        let took = started.elapsed();
        metrics.run_time.record(took);
        shared.counters.observed_run_time(took);
    }
    if let Err(payload) = outcome {
        WorkerSlot::bump(&slot.panicked);
        // Dropping a payload runs arbitrary code, which may panic again: keep the worker alive.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
    }
    WorkerSlot::bump(&slot.completed);
    slot.busy.store(false, Relaxed);
}
