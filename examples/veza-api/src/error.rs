//! [`ApiError`]: every failure as a status code and a JSON body, through `veza_core::Classify`.
//!
//! What a client reads is written for the client. A failure of the database or of the code
//! (anything a client cannot fix) is answered with a generic message and a request id; its
//! details (the database's own text, which names tables, constraints and values) go to the
//! operator's log under the same id, never to the client.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use veza_core::{Classify, ErrorKind};

/// A request failure.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// Why, for the client.
    pub message: String,
    /// What happened, for the operator's log (`None`: the message says it all).
    detail: Option<String>,
    /// Seconds for `Retry-After`.
    retry_after: Option<u32>,
    /// Whether the connection must close after the answer (a body left unread).
    close: bool,
}

impl ApiError {
    /// A client error with `status`.
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            detail: None,
            retry_after: None,
            close: false,
        }
    }

    /// A failure the client cannot fix: `message` for the client, `detail` for the log only.
    pub fn hidden(status: u16, message: &str, detail: impl Into<String>) -> ApiError {
        ApiError {
            detail: Some(detail.into()),
            ..ApiError::new(status, message)
        }
    }

    /// Adds `Retry-After: secs` to the answer.
    pub fn retry_after(mut self, secs: u32) -> ApiError {
        self.retry_after = Some(secs);
        self
    }

    /// Closes the connection after the answer.
    pub fn closing(mut self) -> ApiError {
        self.close = true;
        self
    }

    /// `Retry-After`, when set.
    pub fn retry_after_secs(&self) -> Option<u32> {
        self.retry_after
    }

    /// Whether the connection closes after the answer.
    pub fn closes(&self) -> bool {
        self.close
    }

    /// What happened, for logs and health checks: the hidden detail, or the message.
    pub fn detail(&self) -> &str {
        self.detail.as_deref().unwrap_or(&self.message)
    }

    /// Whether the client's answer leaves something out, to be logged under a request id.
    pub fn is_hidden(&self) -> bool {
        self.detail.is_some()
    }

    /// A driver error: unique violations are conflicts, the rest goes through `Classify`.
    pub fn db(e: tokio_postgres::Error) -> ApiError {
        if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
            return ApiError::new(409, "already exists");
        }
        if e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) {
            return ApiError::new(404, "no such user");
        }
        let kind = if e.is_closed() {
            ErrorKind::Unavailable
        } else {
            ErrorKind::Internal
        };
        ApiError::of_kind(kind, format!("database: {e}"))
    }

    /// Any classified error: the status from its class, a generic message, its text logged.
    pub fn classified(e: &(impl Classify + fmt::Display)) -> ApiError {
        ApiError::of_kind(e.kind(), e.to_string())
    }

    fn of_kind(kind: ErrorKind, detail: String) -> ApiError {
        let message = match kind {
            ErrorKind::Timeout => "a dependency took too long, retry",
            ErrorKind::Overloaded => "busy, retry",
            ErrorKind::Unavailable | ErrorKind::Closed => "a dependency is unavailable, retry",
            ErrorKind::InvalidInput => "a value was refused",
            ErrorKind::NotFound => "not found",
            _ => "internal error",
        };
        let e = ApiError::hidden(kind.http_status(), message, detail);
        if kind.is_retryable() {
            e.retry_after(1)
        } else {
            e
        }
    }
}

/// A new request id: 16 hex digits, unique in the process and unlikely to repeat across
/// restarts (the process's start mixes into every id).
pub fn request_id() -> String {
    use std::hash::{BuildHasher, RandomState};
    static SEED: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}", SEED.get_or_init(RandomState::new).hash_one(n))
}

impl From<veza_dbpool::Error> for ApiError {
    fn from(e: veza_dbpool::Error) -> ApiError {
        match e.sqlstate() {
            Some("23505") => ApiError::new(409, "already exists"),
            Some("23503") => ApiError::new(404, "no such user"),
            // Data exceptions and other constraints: a value the client sent.
            Some(s) if s.starts_with("22") || s.starts_with("23") => {
                ApiError::of_kind(ErrorKind::InvalidInput, e.to_string())
            }
            // Any other refusal (a syntax error, an unknown table) is the service's own bug.
            _ if e.kind() == ErrorKind::InvalidInput => {
                ApiError::of_kind(ErrorKind::Internal, e.to_string())
            }
            _ => ApiError::classified(&e),
        }
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> ApiError {
        use deadpool_postgres::PoolError;
        match e {
            PoolError::Backend(e) => ApiError::db(e),
            PoolError::Timeout(_) => ApiError::of_kind(ErrorKind::Timeout, format!("pool: {e}")),
            PoolError::Closed => ApiError::of_kind(ErrorKind::Closed, format!("pool: {e}")),
            _ => ApiError::of_kind(ErrorKind::Unavailable, format!("pool: {e}")),
        }
    }
}

impl From<reqwest::Error> for ApiError {
    fn from(e: reqwest::Error) -> ApiError {
        ApiError::upstream(e.is_timeout(), &e)
    }
}

impl From<veza_httpopt::Error> for ApiError {
    fn from(e: veza_httpopt::Error) -> ApiError {
        ApiError::upstream(e.is_timeout(), &e)
    }
}

impl ApiError {
    /// An upstream failure is a bad gateway, whatever its class (504 when it timed out).
    fn upstream(timed_out: bool, e: &dyn fmt::Display) -> ApiError {
        let (status, message) = if timed_out {
            (504, "upstream took too long")
        } else {
            (502, "upstream failed")
        };
        ApiError::hidden(status, message, format!("upstream: {e}"))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.detail())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_text_stays_in_the_log() {
        let e = ApiError::classified(&ErrorKind::Internal);
        assert_eq!(e.status, 500);
        assert_eq!(e.message, "internal error");
        assert!(e.is_hidden());
        let busy = ApiError::classified(&ErrorKind::Overloaded);
        assert_eq!((busy.status, busy.retry_after_secs()), (503, Some(1)));
        assert_ne!(request_id(), request_id());
    }
}
