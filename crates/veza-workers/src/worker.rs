//! The worker thread: take a job by the priority rule, run it behind `catch_unwind`, count it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use veza_core::publish::Publish as _;

use crate::metrics::{PUBLISH_EVERY, SAMPLE_EVERY, WorkerSlot};
use crate::pool::Shared;
use crate::queue::{Envelope, Fairness};

/// Room of taken jobs is given back to submitters at least every this many jobs.
const RELEASE_EVERY: usize = 16;

/// The body of worker `index`: runs until the pool is closed and drained, or aborted.
///
/// The room of the jobs it takes goes back to the queue in batches (see `Queue::took`): after
/// `RELEASE_EVERY` jobs, at once when a submitter sleeps waiting for room, and before the
/// worker waits for work or exits. Submitters that find the count full add up the held room,
/// so the capacity stays exact.
pub(crate) fn run(shared: &Arc<Shared>, index: usize) {
    let slot = &shared.counters.workers[index];
    let queue = &shared.queue;
    let mut fairness = Fairness::new(shared.config.starvation_limit);
    let mut ran: u64 = 0;
    loop {
        if queue.is_aborted() {
            break;
        }
        if let Some(envelope) = queue.take(&mut fairness) {
            queue.took(index, RELEASE_EVERY);
            run_one(shared, slot, envelope, ran);
            ran += 1;
            if ran % PUBLISH_EVERY == 0 {
                shared.publish();
            }
            continue;
        }
        queue.give_back(index);
        if queue.is_closed() {
            if shared.queue.len() == 0 {
                break;
            }
            // A submitter reserved room before the close and has not pushed yet.
            std::thread::yield_now();
            continue;
        }
        shared.publish();
        queue.wait_for_work();
    }
    queue.give_back(index);
    shared.publish();
}

fn run_one(shared: &Shared, slot: &WorkerSlot, envelope: Envelope, ran: u64) {
    slot.busy.store(true, Relaxed);
    if let Some(enqueued) = envelope.enqueued {
        shared.metrics.get().queue_wait.record(enqueued.elapsed());
    }
    let timed = shared.counters.time_all.load(Relaxed) || ran % SAMPLE_EVERY == 0;
    let mut finish = Finish(Some(Counting {
        shared,
        slot,
        started: timed.then(Instant::now),
    }));
    #[cfg(feature = "tracing")]
    let span = tracing::debug_span!(
        "workers.job",
        pool = %shared.config.name,
        priority = envelope.priority.as_str(),
    )
    .entered();
    let outcome = catch_unwind(AssertUnwindSafe(|| (envelope.job)(&mut finish)));
    finish.finish(outcome.is_err());
    #[cfg(feature = "tracing")]
    drop(span);
    if let Err(payload) = outcome {
        #[cfg(feature = "tracing")]
        tracing::error!(
            target: "veza_workers::panic",
            pool = %shared.config.name,
            panic = %crate::error::panic_message(&*payload),
            "job panicked",
        );
        // Dropping a payload runs arbitrary code, which may panic again: keep the worker alive.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
    }
}

/// Counts a job as done, once: called by the job itself before it hands its value to a handle
/// (so that the statistics include the job when its handle resolves), else by the worker.
pub(crate) struct Finish<'a>(Option<Counting<'a>>);

pub(crate) struct Counting<'a> {
    shared: &'a Shared,
    slot: &'a WorkerSlot,
    started: Option<Instant>,
}

impl Finish<'_> {
    /// For a job run outside the pool (an unstarted job handed back): nothing to count.
    pub(crate) fn uncounted() -> Finish<'static> {
        Finish(None)
    }

    /// Records the job's run time, completion and panic; later calls do nothing.
    pub(crate) fn finish(&mut self, panicked: bool) {
        let Some(c) = self.0.take() else { return };
        if let Some(started) = c.started {
            let took = started.elapsed();
            c.shared.metrics.get().run_time.record(took);
            c.shared.counters.observed_run_time(took);
        }
        if panicked {
            WorkerSlot::bump(&c.slot.panicked);
        }
        WorkerSlot::bump(&c.slot.completed);
        c.slot.busy.store(false, Relaxed);
    }
}
