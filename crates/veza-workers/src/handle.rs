//! What a submission gives back: a [`JobHandle`] to wait for the value, and the
//! [`UnstartedJob`]s an immediate shutdown hands back.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::config::Priority;
use crate::error::{JobError, panic_message};
use crate::queue::{Envelope, Job};
use crate::worker::Finish;

type Outcome<T> = Result<T, JobError>;

/// Wraps `f` so that its value, or its panic message, reaches the returned handle. A panic is
/// re-raised after being reported, so the worker counts it.
pub(crate) fn with_handle<F, T>(f: F) -> (Job, JobHandle<T>)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let job = move |done: &mut Finish<'_>| match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => {
            done.finish(false); // counted before the handle can see the value
            let _ = tx.send(Ok(value)); // the handle may have been dropped: fine
        }
        Err(payload) => {
            done.finish(true);
            let _ = tx.send(Err(JobError::Panicked(panic_message(&*payload))));
            resume_unwind(payload);
        }
    };
    (Box::new(job), JobHandle { rx })
}

/// The result of a submitted job, to wait for with [`join`](JobHandle::join) or `.await`.
///
/// Dropping the handle does not cancel the job: it runs, and its value is dropped.
#[must_use = "dropping a handle discards the job's value; use `execute` for fire-and-forget"]
pub struct JobHandle<T> {
    rx: oneshot::Receiver<Outcome<T>>,
}

impl<T> JobHandle<T> {
    /// Blocks the thread until the job has run; its value, or why there is none.
    ///
    /// Do not call it on an async runtime's thread: `.await` the handle instead.
    pub fn join(self) -> Result<T, JobError> {
        self.rx.recv().unwrap_or(Err(JobError::Cancelled))
    }

    /// Like [`join`](JobHandle::join), giving up after `timeout`: `None` if the job has not
    /// finished by then (the handle stays usable).
    pub fn join_timeout(&self, timeout: Duration) -> Option<Result<T, JobError>> {
        match self.rx.recv_timeout(timeout) {
            Ok(outcome) => Some(outcome),
            Err(oneshot::RecvTimeoutError::Timeout) => None,
            Err(oneshot::RecvTimeoutError::Disconnected) => Some(Err(JobError::Cancelled)),
        }
    }

    /// Whether the job has finished (or was cancelled), so that `join` will not block.
    pub fn is_finished(&self) -> bool {
        self.rx.has_message() || self.rx.is_closed()
    }
}

impl<T> fmt::Debug for JobHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl<T> IntoFuture for JobHandle<T> {
    type Output = Result<T, JobError>;
    type IntoFuture = JobFuture<T>;

    fn into_future(self) -> JobFuture<T> {
        JobFuture {
            rx: self.rx.into_future(),
        }
    }
}

/// A [`JobHandle`] being awaited: resolves to the job's value, or why there is none.
#[must_use = "futures do nothing unless awaited"]
pub struct JobFuture<T> {
    rx: oneshot::AsyncReceiver<Outcome<T>>,
}

impl<T> Future for JobFuture<T> {
    type Output = Result<T, JobError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(JobError::Cancelled)))
    }
}

impl<T> fmt::Debug for JobFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobFuture").finish_non_exhaustive()
    }
}

/// A job that an immediate shutdown took out of the queue before any worker started it.
///
/// Run it elsewhere with [`run`](UnstartedJob::run), or drop it: its handle, if any, then
/// resolves to [`JobError::Cancelled`].
pub struct UnstartedJob {
    envelope: Envelope,
}

impl UnstartedJob {
    pub(crate) fn new(envelope: Envelope) -> Self {
        UnstartedJob { envelope }
    }

    /// The priority it was submitted with.
    pub fn priority(&self) -> Priority {
        self.envelope.priority
    }

    /// Runs the job on the current thread. A panic in the job propagates to the caller (after
    /// reaching the job's handle, if it has one).
    pub fn run(self) {
        (self.envelope.job)(&mut Finish::uncounted());
    }
}

impl fmt::Debug for UnstartedJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnstartedJob")
            .field("priority", &self.envelope.priority)
            .finish_non_exhaustive()
    }
}
