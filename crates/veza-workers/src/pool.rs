//! [`WorkerPool`]: the threads, submission, shutdown, statistics and health.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use veza_core::publish::{Late, Publish};
use veza_core::{BoxFuture, Health, HealthCheck, Observe, QueueStats};

use crate::config::{Builder, Config, Priority};
use crate::error::{BuildError, SubmitError};
use crate::handle::{JobHandle, UnstartedJob, with_handle};
use crate::metrics::{Counters, PoolMetrics};
use crate::queue::{Envelope, Job, Queue, Reserve};
use crate::worker::{self, Finish};

/// What the workers and the pool share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) queue: Queue,
    pub(crate) counters: Counters,
    pub(crate) metrics: Late<PoolMetrics>,
}

/// Publishes the exact counters and the current gauges, making the handles again first if a
/// recorder was installed since (called at each scrape, and by the workers as they go).
impl Publish for Shared {
    fn publish(&self) {
        self.metrics.refresh(|| PoolMetrics::new(&self.config.name));
        self.metrics
            .get()
            .publish(&self.counters, self.queue.len_by_priority());
    }
}

/// A fixed set of worker threads draining a bounded, prioritised queue of jobs.
///
/// A cheap handle: clones share the same threads and queue (one `Arc`), so a clone goes into
/// each task, thread or axum state that submits work. [`shutdown`](WorkerPool::shutdown) and
/// its variants act on the pool every clone sees; dropping the last clone is a graceful
/// shutdown.
///
/// See the [crate docs](crate) for the priority rule, shutdown and metrics.
#[derive(Clone)]
pub struct WorkerPool {
    shared: Arc<Shared>,
    owner: Arc<Owner>,
}

/// What the last clone of a pool shuts down: the threads.
struct Owner {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    thread_ids: Vec<ThreadId>,
}

impl WorkerPool {
    /// Starts a pool with `config`.
    pub fn new(config: Config) -> Result<WorkerPool, BuildError> {
        config.validate()?;
        let shared = Arc::new(Shared {
            queue: Queue::new(config.capacity, config.workers),
            counters: Counters::new(config.workers),
            metrics: Late::new(|| PoolMetrics::new(&config.name)),
            config,
        });
        veza_core::publish::register(&shared);
        let mut threads = Vec::with_capacity(shared.config.workers);
        for index in 0..shared.config.workers {
            let mut builder =
                std::thread::Builder::new().name(format!("{}-worker-{index}", shared.config.name));
            if let Some(size) = shared.config.stack_size {
                builder = builder.stack_size(size);
            }
            let worker_shared = shared.clone();
            match builder.spawn(move || worker::run(&worker_shared, index)) {
                Ok(handle) => threads.push(handle),
                Err(err) => {
                    shared.queue.close();
                    threads.into_iter().for_each(|h| drop(h.join()));
                    return Err(BuildError::Spawn(err));
                }
            }
        }
        let thread_ids = threads.iter().map(|h| h.thread().id()).collect();
        Ok(WorkerPool {
            owner: Arc::new(Owner {
                shared: shared.clone(),
                threads: Mutex::new(threads),
                thread_ids,
            }),
            shared,
        })
    }

    /// A builder, starting from the default configuration.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// The configuration the pool runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Submission at `priority`: `pool.priority(Priority::High).submit(job)`.
    pub fn priority(&self, priority: Priority) -> Submitter<'_> {
        Submitter {
            pool: self,
            priority,
        }
    }

    fn normal(&self) -> Submitter<'_> {
        self.priority(Priority::Normal)
    }

    /// Runs `job` at normal priority, fire-and-forget; blocks while the queue is full.
    pub fn execute<F>(&self, job: F) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.normal().execute(job)
    }

    /// Like [`execute`](WorkerPool::execute), but hands the job back at once when the queue is
    /// full.
    pub fn try_execute<F>(&self, job: F) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.normal().try_execute(job)
    }

    /// Runs `job` at normal priority and returns a handle to its value; blocks while the queue
    /// is full. Do not call it on an async runtime's thread: use
    /// [`submit_async`](WorkerPool::submit_async).
    pub fn submit<F, T>(&self, job: F) -> Result<JobHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.normal().submit(job)
    }

    /// Like [`submit`](WorkerPool::submit), but hands the job back at once when the queue is
    /// full.
    pub fn try_submit<F, T>(&self, job: F) -> Result<JobHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.normal().try_submit(job)
    }

    /// Like [`submit`](WorkerPool::submit), waiting at most `timeout` for room.
    pub fn submit_timeout<F, T>(
        &self,
        job: F,
        timeout: Duration,
    ) -> Result<JobHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.normal().submit_timeout(job, timeout)
    }

    /// Like [`submit`](WorkerPool::submit), but waits for room without blocking the thread:
    /// for async code. Dropping the future before it resolves drops the job unsubmitted.
    pub fn submit_async<F, T>(
        &self,
        job: F,
    ) -> impl Future<Output = Result<JobHandle<T>, SubmitError<F>>> + Send + '_
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.normal().submit_async(job)
    }

    /// Graceful shutdown: refuses new jobs, runs every accepted job, then joins the workers.
    ///
    /// Called from one of this pool's own jobs, it closes the pool and returns without waiting
    /// (a worker cannot wait for itself); the workers still finish every accepted job.
    pub fn shutdown(&self) {
        self.owner.shutdown();
    }

    /// Graceful shutdown with a deadline: refuses new jobs and runs accepted ones until
    /// `timeout`; jobs not started by then are handed back, as by
    /// [`shutdown_now`](WorkerPool::shutdown_now). Returns an empty vector when everything ran.
    /// Jobs running at the deadline are not interrupted; dropping the pool waits for them.
    pub fn shutdown_timeout(&self, timeout: Duration) -> Vec<UnstartedJob> {
        // `Duration::MAX` (no limit) and its like: thirty years, not a panic.
        let deadline = veza_core::duration::after(Instant::now(), timeout);
        self.shared.queue.close();
        if !self.owner.on_own_worker() {
            let mut threads = self
                .owner
                .threads
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            while Instant::now() < deadline && threads.iter().any(|h| !h.is_finished()) {
                std::thread::sleep(Duration::from_millis(1).min(deadline - Instant::now()));
            }
            if threads.iter().all(JoinHandle::is_finished) {
                threads.drain(..).for_each(|h| drop(h.join()));
                return Vec::new();
            }
        }
        self.shutdown_now()
    }

    /// Immediate shutdown: refuses new jobs, lets running jobs finish, and hands back every job
    /// that had not started. Their handles resolve to `Cancelled` if the jobs are dropped.
    /// Does not wait for running jobs; dropping the pool does.
    pub fn shutdown_now(&self) -> Vec<UnstartedJob> {
        self.shared.queue.abort();
        let unstarted = self.shared.queue.drain();
        self.shared
            .counters
            .cancelled
            .fetch_add(unstarted.len() as u64, std::sync::atomic::Ordering::Relaxed);
        unstarted.into_iter().map(UnstartedJob::new).collect()
    }

    /// Whether the pool refuses new jobs.
    pub fn is_closed(&self) -> bool {
        self.shared.queue.is_closed()
    }
}

impl Owner {
    fn shutdown(&self) {
        self.shared.queue.close();
        if self.on_own_worker() {
            return;
        }
        // Held while joining, so that a concurrent caller returns only once all is done.
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        for handle in threads.drain(..) {
            let _ = handle.join(); // workers catch job panics; they do not panic themselves
        }
    }

    fn on_own_worker(&self) -> bool {
        self.thread_ids.contains(&std::thread::current().id())
    }
}

impl Drop for Owner {
    /// Dropping the last clone of the pool is a graceful [`shutdown`](WorkerPool::shutdown):
    /// every accepted job runs before `drop` returns (unless it is dropped by one of its own
    /// jobs, which cannot wait for itself: then the workers finish the queue in the
    /// background).
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerPool")
            .field("name", &self.shared.config.name)
            .field("workers", &self.shared.config.workers)
            .field("capacity", &self.shared.config.capacity)
            .field("queued", &self.shared.queue.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Observe for WorkerPool {
    type Snapshot = QueueStats;

    fn snapshot(&self) -> QueueStats {
        let c = &self.shared.counters;
        self.shared.publish();
        let mut stats = QueueStats::default();
        stats.workers = self.shared.config.workers as u64;
        stats.busy = c.busy() as u64;
        stats.capacity = self.shared.queue.capacity() as u64;
        stats.depth = self.shared.queue.len() as u64;
        stats.depth_by_priority = self.shared.queue.len_by_priority().map(|d| d as u64);
        stats.submitted = c.total_submitted();
        stats.completed = c.total_completed();
        stats.rejected = c.total_rejected();
        stats.panicked = c.total_panicked();
        stats
    }
}

impl HealthCheck for WorkerPool {
    fn name(&self) -> &str {
        &self.shared.config.name
    }

    /// Unhealthy once shut down; degraded while the queue is 90% full or more.
    fn check(&self) -> BoxFuture<'_, Health> {
        let health = if self.is_closed() {
            Health::unhealthy("worker pool is shut down")
        } else {
            let (depth, capacity) = (self.shared.queue.len(), self.shared.queue.capacity());
            if depth * 10 >= capacity * 9 {
                Health::degraded(format!("worker pool queue {depth}/{capacity} full"))
            } else {
                Health::Healthy
            }
        };
        Box::pin(std::future::ready(health))
    }
}

/// Submission at one priority, from [`WorkerPool::priority`].
#[derive(Debug, Clone, Copy)]
pub struct Submitter<'a> {
    pool: &'a WorkerPool,
    priority: Priority,
}

/// How long a submission may wait for room.
#[derive(Clone, Copy)]
enum Wait {
    No,
    Forever,
    Until(Instant),
}

impl<'a> Submitter<'a> {
    /// See [`WorkerPool::execute`].
    pub fn execute<F>(&self, job: F) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.enqueue(job, Wait::Forever, |f| {
            (Box::new(move |_: &mut Finish<'_>| f()) as Job, ())
        })
    }

    /// See [`WorkerPool::try_execute`].
    pub fn try_execute<F>(&self, job: F) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.enqueue(job, Wait::No, |f| {
            (Box::new(move |_: &mut Finish<'_>| f()) as Job, ())
        })
    }

    /// See [`WorkerPool::submit`].
    pub fn submit<F, T>(&self, job: F) -> Result<JobHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.enqueue(job, Wait::Forever, with_handle)
    }

    /// See [`WorkerPool::try_submit`].
    pub fn try_submit<F, T>(&self, job: F) -> Result<JobHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.enqueue(job, Wait::No, with_handle)
    }

    /// See [`WorkerPool::submit_timeout`].
    pub fn submit_timeout<F, T>(
        &self,
        job: F,
        timeout: Duration,
    ) -> Result<JobHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // A timeout past what the clock can add (`Duration::MAX`) waits as `submit` does.
        let wait = Instant::now()
            .checked_add(timeout)
            .map_or(Wait::Forever, Wait::Until);
        self.enqueue(job, wait, with_handle)
    }

    /// See [`WorkerPool::submit_async`].
    pub fn submit_async<F, T>(
        self,
        job: F,
    ) -> impl Future<Output = Result<JobHandle<T>, SubmitError<F>>> + Send + 'a
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let mut job = Some(job);
        std::future::poll_fn(move |cx| {
            let queue = &self.pool.shared.queue;
            let outcome = queue.reserve_or_register(cx.waker());
            if outcome == Reserve::Full {
                return Poll::Pending;
            }
            let job = job.take().expect("polled after completion");
            Poll::Ready(self.finish(job, outcome, with_handle))
        })
    }

    fn enqueue<F, R>(
        &self,
        job: F,
        wait: Wait,
        wrap: impl FnOnce(F) -> (Job, R),
    ) -> Result<R, SubmitError<F>> {
        let queue = &self.pool.shared.queue;
        let outcome = match wait {
            Wait::No => queue.try_reserve(),
            Wait::Forever => queue.reserve_blocking(None),
            Wait::Until(deadline) => queue.reserve_blocking(Some(deadline)),
        };
        self.finish(job, outcome, wrap)
    }

    /// Queues `job` if room was reserved, else hands it back with the reason.
    fn finish<F, R>(
        &self,
        job: F,
        outcome: Reserve,
        wrap: impl FnOnce(F) -> (Job, R),
    ) -> Result<R, SubmitError<F>> {
        let shared = &self.pool.shared;
        let err = match outcome {
            Reserve::Ok => {
                let timed = shared.counters.submitted();
                let (job, ret) = wrap(job);
                shared.queue.push(Envelope {
                    job,
                    priority: self.priority,
                    enqueued: timed.then(Instant::now),
                });
                return Ok(ret);
            }
            Reserve::Full => SubmitError::Full(job),
            Reserve::Closed => SubmitError::Closed(job),
            Reserve::Timeout => SubmitError::Timeout(job),
        };
        shared.counters.rejected(err.reason());
        Err(err)
    }
}
