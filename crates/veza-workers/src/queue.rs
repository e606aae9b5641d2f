//! The bounded, prioritised queue: one crossbeam channel per priority, a shared count that
//! bounds all of them together, and the waiting room for submitters when it is full.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use crossbeam_utils::{Backoff, CachePadded};

use crate::config::Priority;
use crate::worker::Finish;

/// A type-erased job as the workers see it. It calls [`Finish::finish`] before it hands its
/// value to a waiting handle, so the pool's counters already include it when the handle
/// resolves.
pub(crate) type Job = Box<dyn FnOnce(&mut Finish<'_>) + Send + 'static>;

/// A job in the queue.
pub(crate) struct Envelope {
    pub(crate) job: Job,
    pub(crate) priority: Priority,
    /// Set for the jobs whose queue wait is measured (see `Timing`).
    pub(crate) enqueued: Option<Instant>,
}

/// The outcome of trying to reserve room for one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reserve {
    Ok,
    Full,
    Closed,
    Timeout,
}

/// The queue shared by submitters and workers.
pub(crate) struct Queue {
    senders: [Sender<Envelope>; 3],
    receivers: [Receiver<Envelope>; 3],
    capacity: usize,
    /// Room in use: jobs reserved or queued, plus jobs taken by workers whose room they have
    /// not given back yet (`held`). The queue's real length is `queued - Σ held`, and that is
    /// what the capacity bounds.
    queued: CachePadded<AtomicUsize>,
    /// Per worker: jobs taken whose room is not given back yet. Written by its worker only.
    held: Box<[CachePadded<AtomicUsize>]>,
    closed: AtomicBool,
    aborted: AtomicBool,
    /// Idle workers, parked until a job arrives or the pool closes.
    sleepers: Sleepers,
    room: Room,
}

impl Queue {
    pub(crate) fn new(capacity: usize, workers: usize) -> Queue {
        let (s0, r0) = crossbeam_channel::bounded(capacity);
        let (s1, r1) = crossbeam_channel::bounded(capacity);
        let (s2, r2) = crossbeam_channel::bounded(capacity);
        Queue {
            senders: [s0, s1, s2],
            receivers: [r0, r1, r2],
            capacity,
            queued: CachePadded::new(AtomicUsize::new(0)),
            held: (0..workers).map(|_| CachePadded::default()).collect(),
            closed: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
            sleepers: Sleepers::default(),
            room: Room::default(),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Jobs waiting to start (reserved ones included).
    pub(crate) fn len(&self) -> usize {
        let queued = self.queued.load(SeqCst);
        queued.saturating_sub(self.held_total())
    }

    fn held_total(&self) -> usize {
        self.held.iter().map(|h| h.load(SeqCst)).sum()
    }

    /// Jobs waiting at each priority, `[high, normal, low]`.
    pub(crate) fn len_by_priority(&self) -> [usize; 3] {
        [0, 1, 2].map(|i| self.receivers[i].len())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted.load(Relaxed)
    }

    /// Reserves room for one job without waiting.
    ///
    /// The closed flag is read again after the reservation: with both in one sequentially
    /// consistent order, a reservation that saw the pool open is visible to every worker that
    /// later sees it closed, so graceful shutdown waits for that job.
    pub(crate) fn try_reserve(&self) -> Reserve {
        self.reserve_once(true)
    }

    /// One reservation attempt. With `exact`, room held by workers (taken jobs whose room is
    /// not given back yet) counts as free; without, only the shared count is read, which
    /// avoids the workers' busy cache lines while a submitter spins for room.
    fn reserve_once(&self, exact: bool) -> Reserve {
        if self.closed.load(SeqCst) {
            return Reserve::Closed;
        }
        let mut current = self.queued.load(SeqCst);
        loop {
            // A stale held count only makes the queue look fuller; a give-back changes
            // `queued` and so fails the exchange.
            if current >= self.capacity
                && (!exact || current.saturating_sub(self.held_total()) >= self.capacity)
            {
                return Reserve::Full;
            }
            match self
                .queued
                .compare_exchange_weak(current, current + 1, SeqCst, SeqCst)
            {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        if self.closed.load(SeqCst) {
            self.release();
            return Reserve::Closed;
        }
        Reserve::Ok
    }

    /// Reserves room for one job, waiting until `deadline` (`None`: as long as it takes).
    ///
    /// Like crossbeam's channels, it first spins and yields for a short while (workers free a
    /// slot every job), and only then registers and sleeps: parking on every full queue would
    /// cost a wake-up system call per job.
    pub(crate) fn reserve_blocking(&self, deadline: Option<Instant>) -> Reserve {
        let backoff = Backoff::new();
        loop {
            // While spinning, the shared count alone, and ask workers to give room back now:
            // reading their busy held counts on every attempt would cost more than waiting
            // a few jobs. Once spinning is over, held room counts as free (a worker may be in
            // a long job and give nothing back for a while).
            match self.reserve_once(backoff.is_completed()) {
                Reserve::Full => {}
                other => return other,
            }
            if !backoff.is_completed() {
                if !self.room.wanted.load(Relaxed) {
                    self.room.wanted.store(true, Relaxed);
                }
                backoff.snooze();
                continue;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Reserve::Timeout;
            }
            let guard = self.room.lock();
            self.room.waiting.fetch_add(1, SeqCst);
            let outcome = match self.try_reserve() {
                Reserve::Full => self.room.wait(guard, deadline),
                other => Some(other),
            };
            self.room.waiting.fetch_sub(1, SeqCst);
            if let Some(outcome) = outcome {
                return outcome;
            }
        }
    }

    /// Registers `waker` to be woken when room may be available, then tries once more.
    pub(crate) fn reserve_or_register(&self, waker: &Waker) -> Reserve {
        match self.try_reserve() {
            Reserve::Full => {}
            other => return other,
        }
        {
            let mut wakers = self.room.lock();
            if !wakers.iter().any(|w| w.will_wake(waker)) {
                wakers.push(waker.clone());
                self.room.waiting.fetch_add(1, SeqCst);
            }
        }
        self.try_reserve()
    }

    /// Gives back a reservation that will not be used.
    pub(crate) fn release(&self) {
        self.queued.fetch_sub(1, SeqCst);
        self.room.notify_if_waiting();
    }

    /// Worker `worker` took a job: its room is held until `give_back`, which happens at once
    /// when a submitter sleeps waiting for room, else after `batch` jobs.
    pub(crate) fn took(&self, worker: usize, batch: usize) {
        let held = &self.held[worker];
        let n = held.load(Relaxed) + 1;
        // SeqCst pairs with a sleeping submitter's `waiting` increment: either it sees this
        // job's room, or this worker sees it waiting.
        held.store(n, SeqCst);
        if n >= batch || self.room.waiting.load(SeqCst) > 0 || self.room.wanted.load(Relaxed) {
            self.give_back(worker);
        }
    }

    /// Gives back the room of the jobs worker `worker` took.
    pub(crate) fn give_back(&self, worker: usize) {
        let held = &self.held[worker];
        let n = held.load(Relaxed);
        if self.room.wanted.load(Relaxed) {
            self.room.wanted.store(false, Relaxed);
        }
        if n > 0 {
            // Zero first: in between, the queue looks fuller than it is, never emptier.
            held.store(0, SeqCst);
            self.queued.fetch_sub(n, SeqCst);
            self.room.notify_if_waiting();
        }
    }

    /// Queues a job for which room was reserved.
    pub(crate) fn push(&self, envelope: Envelope) {
        let sender = &self.senders[envelope.priority.index()];
        // Cannot fail: each channel holds `capacity` jobs, at most `capacity` are reserved, and
        // the receivers live as long as the senders.
        if sender.try_send(envelope).is_err() {
            unreachable!("a reserved slot always fits in its channel");
        }
        // The send above is a sequentially consistent exchange: either an idle worker sees
        // the job when it checks after announcing itself, or we see it announced here.
        self.sleepers.wake_one();
    }

    /// Takes the next job following the priority rule, or `None` when all queues are empty.
    ///
    /// The job's room is not given back: a worker calls `took`, so that a busy worker gives
    /// back room in batches (one contended write per batch, not per job).
    pub(crate) fn take(&self, fairness: &mut Fairness) -> Option<Envelope> {
        fairness.pick(&self.receivers)
    }

    /// Waits until a job may be available or the pool is closed: spins and yields briefly
    /// (jobs often come in bursts), then parks until a submitter or `close` unparks it.
    pub(crate) fn wait_for_work(&self) {
        let backoff = Backoff::new();
        while !backoff.is_completed() {
            if self.has_work() || self.is_closed() {
                return;
            }
            backoff.snooze();
        }
        let me = std::thread::current();
        self.sleepers.add(&me);
        if self.has_work() || self.is_closed() {
            self.sleepers.remove(&me);
            return;
        }
        std::thread::park();
        self.sleepers.remove(&me); // after a spurious wake-up; a waker already removed us
    }

    fn has_work(&self) -> bool {
        self.receivers.iter().any(|r| !r.is_empty())
    }

    /// Refuses new jobs and wakes idle workers and waiting submitters.
    pub(crate) fn close(&self) {
        self.closed.store(true, SeqCst);
        self.sleepers.wake_all();
        self.room.notify();
    }

    /// Closes and tells workers to stop taking jobs.
    pub(crate) fn abort(&self) {
        self.aborted.store(true, SeqCst);
        self.close();
    }

    /// Removes every queued job, waiting for reservations in flight to land or be released.
    /// Call after `close`.
    pub(crate) fn drain(&self) -> Vec<Envelope> {
        let mut out = Vec::new();
        let mut strict = Fairness::new(None);
        loop {
            while let Some(envelope) = self.take(&mut strict) {
                out.push(envelope);
                self.release();
            }
            if self.len() == 0 {
                return out;
            }
            std::thread::yield_now();
        }
    }
}

/// Idle workers, parked. `count` lets submitters skip the lock when nobody sleeps.
#[derive(Default)]
struct Sleepers {
    count: AtomicUsize,
    threads: Mutex<Vec<std::thread::Thread>>,
}

impl Sleepers {
    fn lock(&self) -> MutexGuard<'_, Vec<std::thread::Thread>> {
        self.threads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, me: &std::thread::Thread) {
        let mut threads = self.lock();
        threads.push(me.clone());
        self.count.fetch_add(1, SeqCst);
    }

    fn remove(&self, me: &std::thread::Thread) {
        let mut threads = self.lock();
        if let Some(i) = threads.iter().position(|t| t.id() == me.id()) {
            threads.swap_remove(i);
            self.count.fetch_sub(1, SeqCst);
        }
    }

    fn wake_one(&self) {
        if self.count.load(SeqCst) == 0 {
            return;
        }
        let thread = {
            let mut threads = self.lock();
            let thread = threads.pop();
            if thread.is_some() {
                self.count.fetch_sub(1, SeqCst);
            }
            thread
        };
        if let Some(thread) = thread {
            thread.unpark();
        }
    }

    fn wake_all(&self) {
        let threads = std::mem::take(&mut *self.lock());
        self.count.fetch_sub(threads.len(), SeqCst);
        threads.iter().for_each(std::thread::Thread::unpark);
    }
}

/// Where submitters wait for room: threads on a condition variable, tasks by waker.
#[derive(Default)]
struct Room {
    /// A submitter spins for room: workers give back what they hold at their next job.
    wanted: CachePadded<AtomicBool>,
    waiting: AtomicUsize,
    wakers: Mutex<Vec<Waker>>,
    ready: Condvar,
}

impl Room {
    fn lock(&self) -> MutexGuard<'_, Vec<Waker>> {
        self.wakers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a notification; `Some(Timeout)` once the deadline has passed.
    fn wait(
        &self,
        guard: MutexGuard<'_, Vec<Waker>>,
        deadline: Option<Instant>,
    ) -> Option<Reserve> {
        match deadline {
            None => drop(self.ready.wait(guard)),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    return Some(Reserve::Timeout);
                }
                drop(self.ready.wait_timeout(guard, deadline - now));
            }
        }
        None
    }

    fn notify_if_waiting(&self) {
        if self.waiting.load(SeqCst) > 0 {
            self.notify();
        }
    }

    fn notify(&self) {
        let wakers = std::mem::take(&mut *self.lock());
        self.waiting.fetch_sub(wakers.len(), SeqCst);
        self.ready.notify_all();
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// A worker's priority rule, with its guard against starvation.
///
/// Workers take the highest-priority job. For each lower priority, a worker counts the jobs it
/// took from higher priorities while that priority had jobs waiting; when the count reaches the
/// limit, the worker's next job comes from that priority (the lowest such one first) and the
/// count restarts. A priority whose queue is found empty restarts its count too.
pub(crate) struct Fairness {
    limit: Option<u32>,
    /// Jobs taken over normal (index 1) and low (index 2) while they waited.
    passed_over: [u32; 3],
}

impl Fairness {
    pub(crate) fn new(limit: Option<u32>) -> Fairness {
        Fairness {
            limit,
            passed_over: [0; 3],
        }
    }

    fn pick(&mut self, queues: &[Receiver<Envelope>; 3]) -> Option<Envelope> {
        if let Some(limit) = self.limit {
            for level in [2, 1] {
                if self.passed_over[level] >= limit {
                    self.passed_over[level] = 0;
                    if let Ok(envelope) = queues[level].try_recv() {
                        self.count_passed_over(queues, level);
                        return Some(envelope);
                    }
                }
            }
        }
        for (level, queue) in queues.iter().enumerate() {
            // High is usually empty: `is_empty` is two loads, while `try_recv` on an empty
            // channel also pays a fence. The other levels are tried directly.
            if level == 0 && queue.is_empty() {
                continue;
            }
            if let Ok(envelope) = queue.try_recv() {
                if self.limit.is_some() {
                    self.count_passed_over(queues, level);
                }
                return Some(envelope);
            }
        }
        None
    }

    /// A job was taken at `level`: every lower level that has jobs waiting was passed over.
    fn count_passed_over(&mut self, queues: &[Receiver<Envelope>; 3], level: usize) {
        for (queue, passed) in queues.iter().zip(&mut self.passed_over).skip(level + 1) {
            if queue.is_empty() {
                *passed = 0;
            } else {
                *passed += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(priority: Priority, tag: u32, log: &std::sync::Arc<Mutex<Vec<u32>>>) -> Envelope {
        let log = log.clone();
        Envelope {
            job: Box::new(move |_: &mut Finish<'_>| log.lock().unwrap().push(tag)),
            priority,
            enqueued: None,
        }
    }

    fn run_all(queue: &Queue, fairness: &mut Fairness) {
        while let Some(e) = queue.take(fairness) {
            queue.release();
            (e.job)(&mut Finish::uncounted());
        }
    }

    #[test]
    fn strict_priority_takes_high_then_normal_then_low() {
        let queue = Queue::new(16, 1);
        let log = std::sync::Arc::new(Mutex::new(Vec::new()));
        for (p, tag) in [
            (Priority::Low, 3),
            (Priority::Normal, 2),
            (Priority::High, 1),
        ] {
            assert_eq!(queue.try_reserve(), Reserve::Ok);
            queue.push(envelope(p, tag, &log));
        }
        run_all(&queue, &mut Fairness::new(None));
        assert_eq!(*log.lock().unwrap(), [1, 2, 3]);
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn the_guard_serves_every_level_within_the_limit() {
        let queue = Queue::new(64, 1);
        let log = std::sync::Arc::new(Mutex::new(Vec::new()));
        for i in 0..20 {
            assert_eq!(queue.try_reserve(), Reserve::Ok);
            queue.push(envelope(Priority::High, 100 + i, &log));
        }
        for (p, tag) in [(Priority::Normal, 2), (Priority::Low, 3)] {
            assert_eq!(queue.try_reserve(), Reserve::Ok);
            queue.push(envelope(p, tag, &log));
        }
        run_all(&queue, &mut Fairness::new(Some(4)));
        let log = log.lock().unwrap();
        // After 4 high jobs passed both over, low goes first (lowest first), then normal.
        assert_eq!(&log[..6], [100, 101, 102, 103, 3, 2]);
        assert_eq!(log.len(), 22);
    }

    #[test]
    fn capacity_bounds_all_priorities_together() {
        let queue = Queue::new(2, 1);
        assert_eq!(queue.try_reserve(), Reserve::Ok);
        assert_eq!(queue.try_reserve(), Reserve::Ok);
        assert_eq!(queue.try_reserve(), Reserve::Full);
        queue.release();
        assert_eq!(queue.try_reserve(), Reserve::Ok);
        queue.close();
        assert_eq!(queue.try_reserve(), Reserve::Closed);
    }

    #[test]
    fn room_held_by_a_worker_still_counts_as_free() {
        let queue = Queue::new(2, 1);
        let log = std::sync::Arc::new(Mutex::new(Vec::new()));
        for tag in [1, 2] {
            assert_eq!(queue.try_reserve(), Reserve::Ok);
            queue.push(envelope(Priority::Normal, tag, &log));
        }
        assert_eq!(queue.try_reserve(), Reserve::Full);
        let job = queue.take(&mut Fairness::new(None)).unwrap();
        queue.took(0, 16); // held, not given back
        assert_eq!(queue.len(), 1);
        assert_eq!(
            queue.try_reserve(),
            Reserve::Ok,
            "the taken job's room is free"
        );
        assert_eq!(queue.try_reserve(), Reserve::Full);
        queue.give_back(0);
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.try_reserve(), Reserve::Full);
        (job.job)(&mut Finish::uncounted());
    }

    #[test]
    fn a_blocked_reservation_times_out_or_sees_the_close() {
        let queue = std::sync::Arc::new(Queue::new(1, 1));
        assert_eq!(queue.try_reserve(), Reserve::Ok);
        let deadline = Instant::now() + std::time::Duration::from_millis(30);
        assert_eq!(queue.reserve_blocking(Some(deadline)), Reserve::Timeout);
        let q = queue.clone();
        let waiter = std::thread::spawn(move || q.reserve_blocking(None));
        std::thread::sleep(std::time::Duration::from_millis(20));
        queue.close();
        assert_eq!(waiter.join().unwrap(), Reserve::Closed);
    }
}
