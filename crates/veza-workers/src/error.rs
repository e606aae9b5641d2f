//! Errors: a refused submission hands the job back ([`SubmitError`]); a job that did not
//! produce a value says why ([`JobError`]); a pool that could not start says why
//! ([`BuildError`]).

use std::fmt;

use veza_core::{Classify, ErrorKind};

/// A job the pool did not accept, handed back untouched.
#[derive(PartialEq, Eq)]
#[non_exhaustive]
pub enum SubmitError<F> {
    /// The queue is at capacity (`try_*` methods).
    Full(F),
    /// The pool is shut down.
    Closed(F),
    /// The queue stayed at capacity until the timeout (`submit_timeout`).
    Timeout(F),
}

impl<F> SubmitError<F> {
    /// The job, to run elsewhere or submit again.
    pub fn into_inner(self) -> F {
        match self {
            SubmitError::Full(f) | SubmitError::Closed(f) | SubmitError::Timeout(f) => f,
        }
    }

    /// `"full"`, `"closed"` or `"timeout"`: the `reason` label of the rejection metric.
    pub fn reason(&self) -> &'static str {
        match self {
            SubmitError::Full(_) => "full",
            SubmitError::Closed(_) => "closed",
            SubmitError::Timeout(_) => "timeout",
        }
    }
}

impl<F> fmt::Debug for SubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            SubmitError::Full(_) => "Full",
            SubmitError::Closed(_) => "Closed",
            SubmitError::Timeout(_) => "Timeout",
        };
        write!(f, "{name}(..)")
    }
}

impl<F> fmt::Display for SubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubmitError::Full(_) => "worker pool queue is full",
            SubmitError::Closed(_) => "worker pool is shut down",
            SubmitError::Timeout(_) => "timed out waiting for room in the worker pool queue",
        })
    }
}

impl<F> std::error::Error for SubmitError<F> {}

impl<F> Classify for SubmitError<F> {
    fn kind(&self) -> ErrorKind {
        match self {
            SubmitError::Full(_) => ErrorKind::Overloaded,
            SubmitError::Closed(_) => ErrorKind::Closed,
            SubmitError::Timeout(_) => ErrorKind::Timeout,
        }
    }
}

/// Why a job's handle has no value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobError {
    /// The job panicked; the message is the panic's payload when it was a string.
    Panicked(String),
    /// The job never ran: it was handed back by an immediate shutdown and then dropped.
    Cancelled,
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Panicked(msg) => write!(f, "job panicked: {msg}"),
            JobError::Cancelled => f.write_str("job was cancelled before it started"),
        }
    }
}

impl std::error::Error for JobError {}

impl Classify for JobError {
    fn kind(&self) -> ErrorKind {
        match self {
            JobError::Panicked(_) => ErrorKind::Internal,
            JobError::Cancelled => ErrorKind::Closed,
        }
    }
}

/// Why a pool could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// A configuration value is out of range.
    InvalidConfig(&'static str),
    /// The operating system refused a worker thread.
    Spawn(std::io::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::InvalidConfig(why) => write!(f, "invalid worker pool config: {why}"),
            BuildError::Spawn(err) => write!(f, "could not start a worker thread: {err}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Spawn(err) => Some(err),
            BuildError::InvalidConfig(_) => None,
        }
    }
}

impl Classify for BuildError {
    fn kind(&self) -> ErrorKind {
        match self {
            BuildError::InvalidConfig(_) => ErrorKind::InvalidInput,
            BuildError::Spawn(_) => ErrorKind::Unavailable,
        }
    }
}

/// The message of a panic payload: the `&str` or `String` it carries, else a placeholder.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submit_errors_hand_the_job_back_and_classify() {
        let err = SubmitError::Full(7);
        assert_eq!(err.kind(), ErrorKind::Overloaded);
        assert_eq!(err.reason(), "full");
        assert_eq!(err.into_inner(), 7);
        assert_eq!(SubmitError::Closed(()).kind(), ErrorKind::Closed);
        assert_eq!(SubmitError::Timeout(()).kind(), ErrorKind::Timeout);
        assert_eq!(
            SubmitError::Closed(()).to_string(),
            "worker pool is shut down"
        );
    }

    #[test]
    fn panic_messages_are_extracted() {
        assert_eq!(panic_message(&"boom"), "boom");
        assert_eq!(panic_message(&String::from("bang")), "bang");
        assert_eq!(panic_message(&42_u8), "non-string panic payload");
    }
}
