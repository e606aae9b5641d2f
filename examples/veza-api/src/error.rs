//! [`ApiError`]: every failure as a status code and a JSON body, through `veza_core::Classify`.

use std::fmt;

use veza_core::{Classify, ErrorKind};

/// A request failure.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// Why, for the client.
    pub message: String,
}

impl ApiError {
    /// A client error with `status`.
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
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
        ApiError::new(kind.http_status(), format!("database: {e}"))
    }

    /// Any classified error.
    pub fn classified(e: &(impl Classify + fmt::Display)) -> ApiError {
        ApiError::new(e.kind().http_status(), e.to_string())
    }
}

impl From<veza_dbpool::Error> for ApiError {
    fn from(e: veza_dbpool::Error) -> ApiError {
        match e.sqlstate() {
            Some("23505") => ApiError::new(409, "already exists"),
            Some("23503") => ApiError::new(404, "no such user"),
            _ => ApiError::classified(&e),
        }
    }
}

impl From<veza_httpopt::Error> for ApiError {
    fn from(e: veza_httpopt::Error) -> ApiError {
        // An upstream failure is a bad gateway, whatever its class.
        let status = if e.is_timeout() { 504 } else { 502 };
        ApiError::new(status, format!("upstream: {e}"))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}
