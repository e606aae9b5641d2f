//! [`Error`]: what went wrong, classified, with the server's own message.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use veza_core::{Classify, ErrorKind};

/// A pool or query failure.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// No connection became free within the checkout timeout.
    Timeout {
        /// How long the caller waited.
        waited: Duration,
        /// Connections open and idle at that moment.
        open: u32,
        /// Of which idle.
        idle: u32,
    },
    /// Opening a connection failed: refused, unreachable, bad credentials, unknown database.
    /// Carries the driver's error, with the server's message when it sent one.
    Connect(Arc<tokio_postgres::Error>),
    /// A statement failed.
    Query(Arc<tokio_postgres::Error>),
    /// The configuration is wrong; the message says how.
    InvalidConfig(String),
    /// A pagination cursor is malformed or was altered; the message says how.
    InvalidCursor(String),
    /// The caller's input cannot be sent as given (a COPY row with the wrong number of
    /// values); the message says how. Nothing was written.
    InvalidInput(String),
    /// The pool was closed ([`Pool::close`](crate::Pool::close)): no more checkouts.
    Closed,
}

impl Error {
    /// The SQLSTATE code the server sent, if any (`"28P01"`, `"40001"`...).
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Connect(e) | Error::Query(e) => {
                e.code().map(tokio_postgres::error::SqlState::code)
            }
            _ => None,
        }
    }

    /// Whether the error means the connection is unusable (SQLSTATE class 08, 57P01..57P03,
    /// or a closed socket): such a connection is dropped, never returned to the pool.
    pub fn breaks_connection(&self) -> bool {
        match self {
            Error::Query(e) | Error::Connect(e) => breaks(e),
            _ => false,
        }
    }
}

/// Whether a driver error leaves the connection unusable.
pub(crate) fn breaks(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            let c = code.code();
            c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03")
        }
        // An I/O failure without a server message.
        None => e.as_db_error().is_none() && std::error::Error::source(e).is_some(),
    }
}

/// Whether the driver refused to connect because of its own configuration (a password the
/// server asks for and the URL lacks, an unparsable setting, an authentication method it
/// cannot do). tokio-postgres keeps its error kinds private; their fixed texts tell them apart.
fn is_client_config(e: &tokio_postgres::Error) -> bool {
    let text = e.to_string();
    [
        "invalid configuration",
        "invalid connection string",
        "authentication error",
    ]
    .iter()
    .any(|k| text.starts_with(k))
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout { waited, open, idle } => write!(
                f,
                "no database connection free after {waited:?} ({open} open, {idle} idle)"
            ),
            Error::Connect(e) => write!(f, "cannot connect to the database: {}", detail(e)),
            Error::Query(e) => write!(f, "database query failed: {}", detail(e)),
            Error::InvalidConfig(why) => write!(f, "invalid database pool config: {why}"),
            Error::InvalidCursor(why) => write!(f, "invalid page cursor: {why}"),
            Error::InvalidInput(why) => write!(f, "invalid input: {why}"),
            Error::Closed => f.write_str("the database pool is closed"),
        }
    }
}

/// The most useful text of a driver error: the server's message and code, or the I/O cause.
fn detail(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    match std::error::Error::source(e) {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Connect(e) | Error::Query(e) => Some(&**e),
            _ => None,
        }
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Closed => ErrorKind::Closed,
            Error::InvalidConfig(_) | Error::InvalidCursor(_) | Error::InvalidInput(_) => {
                ErrorKind::InvalidInput
            }
            Error::Connect(e) => match e.code().map(tokio_postgres::error::SqlState::code) {
                // Authentication and unknown role or database: retrying will not help.
                Some(c) if c.starts_with("28") || c == "3D000" => ErrorKind::InvalidInput,
                // too_many_connections (the server's or the role's limit): busy, not down.
                Some("53300") => ErrorKind::Overloaded,
                None if is_client_config(e) => ErrorKind::InvalidInput,
                _ => ErrorKind::Unavailable,
            },
            Error::Query(e) => match e.code().map(tokio_postgres::error::SqlState::code) {
                _ if breaks(e) => ErrorKind::Unavailable,
                // query_canceled (statement_timeout), lock_not_available.
                Some("57014" | "55P03") => ErrorKind::Timeout,
                // Serialization failure and deadlock: try the transaction again.
                Some("40001" | "40P01") => ErrorKind::Overloaded,
                Some("53300") => ErrorKind::Overloaded, // too_many_connections
                Some(c) if c.starts_with("22") || c.starts_with("23") || c.starts_with("42") => {
                    ErrorKind::InvalidInput
                }
                _ => ErrorKind::Internal,
            },
        }
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Error::Query(Arc::new(e))
    }
}
