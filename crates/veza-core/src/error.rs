//! Error classes shared by every crate: [`ErrorKind`] and the [`Classify`] trait.

use std::fmt;

/// A boxed error that can cross threads, the common currency for errors from user code
/// (loaders, jobs, callbacks).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The class of a failure, independent of the crate that produced it.
///
/// The classes are chosen for the two decisions a service makes about an error: what to answer
/// its own caller (see [`ErrorKind::http_status`]) and whether trying again can help (see
/// [`ErrorKind::is_retryable`]). New classes may be added in a minor release, so match with a
/// wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum ErrorKind {
    /// The operation did not finish within its deadline.
    Timeout,
    /// The component is at capacity (a full queue, a pool with no free connection); the same
    /// request may succeed later.
    Overloaded,
    /// A dependency cannot be reached or refused the connection (database down, DNS failure).
    Unavailable,
    /// The component was shut down or closed and accepts no more work.
    Closed,
    /// The request itself is wrong (bad configuration, malformed input, a value too large);
    /// retrying the same request fails the same way.
    InvalidInput,
    /// The requested item does not exist.
    NotFound,
    /// A bug or an unexpected failure (a panicking job, a broken invariant, an unclassified
    /// error from a dependency).
    Internal,
}

impl ErrorKind {
    /// Every class, in declaration order.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::Timeout,
        ErrorKind::Overloaded,
        ErrorKind::Unavailable,
        ErrorKind::Closed,
        ErrorKind::InvalidInput,
        ErrorKind::NotFound,
        ErrorKind::Internal,
    ];

    /// A short, stable, snake_case name, fit for a metric label or a log field.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Closed => "closed",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Internal => "internal",
        }
    }

    /// Whether the same operation, tried again later, can succeed.
    ///
    /// `Timeout`, `Overloaded` and `Unavailable` are transient; the others are not. Whether a
    /// retry is *safe* (idempotence) is the caller's decision, not the error's.
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Timeout | ErrorKind::Overloaded | ErrorKind::Unavailable
        )
    }

    /// The HTTP status a server should answer when this failure stops a request.
    ///
    /// | kind | status |
    /// |---|---|
    /// | `Timeout` | 504 Gateway Timeout |
    /// | `Overloaded`, `Unavailable`, `Closed` | 503 Service Unavailable |
    /// | `InvalidInput` | 400 Bad Request |
    /// | `NotFound` | 404 Not Found |
    /// | `Internal` | 500 Internal Server Error |
    pub const fn http_status(self) -> u16 {
        match self {
            ErrorKind::Timeout => 504,
            ErrorKind::Overloaded | ErrorKind::Unavailable | ErrorKind::Closed => 503,
            ErrorKind::InvalidInput => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::Internal => 500,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Implemented by every error type of the Veza crates: says which [`ErrorKind`] it is.
///
/// Implement it for your own errors too, and one function maps them all to responses.
pub trait Classify {
    /// The class of this failure.
    fn kind(&self) -> ErrorKind;

    /// Whether trying the same operation again can succeed; see [`ErrorKind::is_retryable`].
    fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }
}

impl Classify for ErrorKind {
    fn kind(&self) -> ErrorKind {
        *self
    }
}

impl Classify for std::io::Error {
    /// Classifies I/O errors by their [`std::io::ErrorKind`]: time-outs, refused or reset
    /// connections and the like are transient; bad input is not.
    fn kind(&self) -> ErrorKind {
        use std::io::ErrorKind as Io;
        match self.kind() {
            Io::TimedOut | Io::WouldBlock => ErrorKind::Timeout,
            Io::ConnectionRefused
            | Io::ConnectionReset
            | Io::ConnectionAborted
            | Io::NotConnected
            | Io::AddrNotAvailable
            | Io::BrokenPipe
            | Io::UnexpectedEof
            | Io::Interrupted => ErrorKind::Unavailable,
            Io::NotFound => ErrorKind::NotFound,
            Io::InvalidInput | Io::InvalidData => ErrorKind::InvalidInput,
            _ => ErrorKind::Internal,
        }
    }
}

impl<T: Classify + ?Sized> Classify for &T {
    fn kind(&self) -> ErrorKind {
        (**self).kind()
    }
}

impl<T: Classify + ?Sized> Classify for Box<T> {
    fn kind(&self) -> ErrorKind {
        (**self).kind()
    }
}

impl<T: Classify + ?Sized> Classify for std::sync::Arc<T> {
    fn kind(&self) -> ErrorKind {
        (**self).kind()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_snake_case() {
        let mut names: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert!(
            names
                .iter()
                .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn only_transient_kinds_are_retryable() {
        let retryable: Vec<_> = ErrorKind::ALL
            .iter()
            .filter(|k| ErrorKind::is_retryable(**k))
            .collect();
        assert_eq!(
            retryable,
            [
                &ErrorKind::Timeout,
                &ErrorKind::Overloaded,
                &ErrorKind::Unavailable
            ]
        );
    }

    #[test]
    fn statuses_follow_the_documented_table() {
        let statuses: Vec<_> = ErrorKind::ALL.iter().map(|k| k.http_status()).collect();
        assert_eq!(statuses, [504, 503, 503, 503, 400, 404, 500]);
    }

    #[test]
    fn io_errors_are_classified() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(Classify::kind(&refused), ErrorKind::Unavailable);
        assert!(refused.is_retryable());
        let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
        assert_eq!(Classify::kind(&timed_out), ErrorKind::Timeout);
        let bad = std::io::Error::from(std::io::ErrorKind::InvalidData);
        assert!(!bad.is_retryable());
    }

    #[test]
    fn wrappers_forward_the_kind() {
        let boxed: Box<ErrorKind> = Box::new(ErrorKind::Closed);
        let shared = std::sync::Arc::new(ErrorKind::NotFound);
        assert_eq!(boxed.kind(), ErrorKind::Closed);
        assert_eq!(shared.kind(), ErrorKind::NotFound);
        fn kind_of<C: Classify>(c: C) -> ErrorKind {
            c.kind()
        }
        let by_ref: &ErrorKind = &ErrorKind::Timeout;
        assert_eq!(kind_of(by_ref), ErrorKind::Timeout);
    }
}
