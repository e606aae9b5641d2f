//! [`Error`]: what went wrong with a request, classified for retry and status decisions.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use veza_core::{Classify, ErrorKind};

/// A shared, cloneable error source (errors are cloned when coalesced requests share a result).
pub type Source = Arc<dyn StdError + Send + Sync + 'static>;

/// Which time limit expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// Opening the TCP connection (and TLS handshake) took longer than `connect_timeout`.
    Connect,
    /// No byte of the response head or body arrived for `read_timeout`.
    Read,
    /// The whole exchange, retries included, took longer than the request's total timeout.
    Total,
}

impl TimeoutKind {
    fn as_str(self) -> &'static str {
        match self {
            TimeoutKind::Connect => "connect",
            TimeoutKind::Read => "read",
            TimeoutKind::Total => "total",
        }
    }
}

/// A request failure.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// The request cannot be sent as given: bad URI, unsupported scheme, bad header.
    InvalidRequest(String),
    /// The client configuration is wrong; the message says how.
    InvalidConfig(String),
    /// No connection could be opened: refused, unreachable, a DNS failure that may pass (no
    /// answer in time), TLS handshake.
    Connect(Source),
    /// The host name does not exist (DNS NXDOMAIN, or no address for it): asking again
    /// later gets the same answer, so it is not retried.
    UnknownHost(Source),
    /// The upstream broke the protocol: a malformed or over-long response head, an invalid
    /// status line. Not retried: the same upstream answers the same way.
    Protocol(Source),
    /// A time limit expired.
    Timeout {
        /// Which limit.
        kind: TimeoutKind,
        /// Its value.
        after: Duration,
    },
    /// The connection failed during the exchange (reset, closed before the response ended,
    /// protocol error).
    Transport(Source),
    /// The response body (as sent, before decompression) is larger than `max_body_size`.
    BodyTooLarge {
        /// The configured limit, in bytes.
        limit: u64,
    },
    /// The decompressed body is larger than `max_decoded_size` (a compression bomb, or a
    /// response bigger than the service is prepared to hold).
    DecodedTooLarge {
        /// The configured limit, in bytes.
        limit: u64,
        /// The content coding that expanded past it.
        encoding: &'static str,
    },
    /// The response's status is a client or server error (from
    /// [`Response::error_for_status`](crate::Response::error_for_status)).
    Status(http::StatusCode),
    /// A body could not be read or written as JSON (feature `json`).
    Json(Source),
    /// The host's circuit is open after failures in a row (`Config::circuit_breaker`): the
    /// request was not sent.
    CircuitOpen {
        /// The host (and port).
        host: String,
        /// How long until a probe may go out.
        retry_in: Duration,
    },
    /// More redirects than `max_redirects` (a loop, or a chain too long).
    TooManyRedirects {
        /// The configured limit.
        limit: u32,
    },
    /// The body could not be decompressed: corrupt data, or a coding this build cannot decode.
    Decode {
        /// The content coding named by the response.
        encoding: String,
        /// What the decoder said.
        source: Source,
    },
}

impl Error {
    /// Wraps an error source.
    pub(crate) fn source_of(e: impl StdError + Send + Sync + 'static) -> Source {
        Arc::new(e)
    }

    /// Whether a request that failed this way never reached the server's application, or may
    /// safely be sent again because the connection broke before a response (for idempotent
    /// methods only: the client checks the method).
    pub fn is_connection_error(&self) -> bool {
        match self {
            Error::Connect(_) => true,
            Error::Timeout { kind, .. } => *kind == TimeoutKind::Connect,
            Error::Transport(source) => transport_is_retryable(source.as_ref()),
            _ => false,
        }
    }

    /// Whether this is a time-out, of any kind.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }
}

/// A broken exchange is safe to repeat (for an idempotent request) when the connection closed,
/// reset or was cancelled before a complete response.
fn transport_is_retryable(e: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled() || h.is_closed())
        {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as Io;
            if matches!(
                io.kind(),
                Io::ConnectionReset | Io::ConnectionAborted | Io::BrokenPipe | Io::UnexpectedEof
            ) {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// What the system resolver said, when an error chain holds a failed name lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The name does not exist, or has no address (EAI_NONAME, EAI_NODATA).
    NotFound,
    /// Any other failure (EAI_AGAIN: no answer in time, a server failure).
    Failed,
}

/// Finds a failed name lookup in an error chain. The standard library reports getaddrinfo's
/// failures as uncategorised I/O errors carrying `gai_strerror`'s text, so the text is what
/// tells NXDOMAIN from a time-out.
pub(crate) fn failed_lookup(e: &(dyn StdError + 'static)) -> Option<Lookup> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            let msg = io.to_string();
            if msg.contains("failed to lookup address information") {
                let not_found = [
                    "Name or service not known",
                    "No address associated with hostname",
                    "nodename nor servname provided",
                    "Name does not resolve",
                ]
                .iter()
                .any(|m| msg.contains(m));
                return Some(if not_found {
                    Lookup::NotFound
                } else {
                    Lookup::Failed
                });
            }
        }
        cur = err.source();
    }
    None
}

/// Whether an error chain holds hyper's verdict that the response head was malformed or too
/// large.
pub(crate) fn is_protocol_violation(e: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>()
            && (h.is_parse() || h.is_parse_status())
        {
            return true;
        }
        cur = err.source();
    }
    false
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidRequest(why) => write!(f, "invalid request: {why}"),
            Error::InvalidConfig(why) => write!(f, "invalid http client config: {why}"),
            Error::Connect(e) => write!(f, "cannot connect: {}", chain(e.as_ref())),
            Error::UnknownHost(e) => write!(f, "unknown host: {}", chain(e.as_ref())),
            Error::Protocol(e) => write!(f, "upstream broke the protocol: {}", chain(e.as_ref())),
            Error::Timeout { kind, after } => {
                write!(f, "{} timeout after {after:?}", kind.as_str())
            }
            Error::Transport(e) => write!(f, "connection failed: {}", chain(e.as_ref())),
            Error::BodyTooLarge { limit } => {
                write!(f, "response body larger than the {limit} byte limit")
            }
            Error::DecodedTooLarge { limit, encoding } => write!(
                f,
                "{encoding} response body expands past the {limit} byte limit"
            ),
            Error::Decode { encoding, source } => {
                write!(f, "cannot decode {encoding} response body: {source}")
            }
            Error::Status(status) => write!(f, "upstream answered {status}"),
            Error::Json(e) => write!(f, "json: {e}"),
            Error::TooManyRedirects { limit } => write!(f, "more than {limit} redirects"),
            Error::CircuitOpen { host, retry_in } => write!(
                f,
                "circuit open for {host} after repeated failures; next try in {} ms",
                retry_in.as_millis()
            ),
        }
    }
}

/// The messages of an error and its sources, joined: hyper's own message is often generic
/// ("client error (Connect)") and the cause is further down.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = s.source();
    }
    out
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::Connect(e)
            | Error::UnknownHost(e)
            | Error::Protocol(e)
            | Error::Transport(e)
            | Error::Json(e)
            | Error::Decode { source: e, .. } => Some(e.as_ref()),
            _ => None,
        }
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidRequest(_) | Error::InvalidConfig(_) => ErrorKind::InvalidInput,
            Error::Connect(_) | Error::Transport(_) | Error::CircuitOpen { .. } => {
                ErrorKind::Unavailable
            }
            Error::UnknownHost(_) => ErrorKind::NotFound,
            Error::Protocol(_) => ErrorKind::Internal,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::BodyTooLarge { .. }
            | Error::DecodedTooLarge { .. }
            | Error::Decode { .. }
            | Error::Json(_)
            | Error::TooManyRedirects { .. } => ErrorKind::Internal,
            Error::Status(status) => status_kind(*status),
        }
    }
}

/// What an error status means for the caller: 404 and 410 not found; 408 and 504 time-outs;
/// 429 overload; 502 and 503 unavailable (these last four are retryable); other 4xx the
/// request's fault; other 5xx the upstream's.
fn status_kind(status: http::StatusCode) -> ErrorKind {
    match status.as_u16() {
        404 | 410 => ErrorKind::NotFound,
        408 | 504 => ErrorKind::Timeout,
        429 => ErrorKind::Overloaded,
        502 | 503 => ErrorKind::Unavailable,
        400..=499 => ErrorKind::InvalidInput,
        _ => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_classify_for_retries() {
        let kind = |s: u16| Error::Status(http::StatusCode::from_u16(s).unwrap()).kind();
        assert_eq!(kind(404), ErrorKind::NotFound);
        assert_eq!(kind(429), ErrorKind::Overloaded);
        assert_eq!(kind(503), ErrorKind::Unavailable);
        assert_eq!(kind(504), ErrorKind::Timeout);
        assert_eq!(kind(400), ErrorKind::InvalidInput);
        assert_eq!(kind(500), ErrorKind::Internal);
        assert!(Error::Status(http::StatusCode::SERVICE_UNAVAILABLE).is_retryable());
        assert!(!Error::Status(http::StatusCode::BAD_REQUEST).is_retryable());
        assert_eq!(
            Error::Status(http::StatusCode::NOT_FOUND).to_string(),
            "upstream answered 404 Not Found"
        );
    }

    #[test]
    fn classes_and_messages() {
        let t = Error::Timeout {
            kind: TimeoutKind::Read,
            after: Duration::from_millis(5),
        };
        assert_eq!(t.kind(), ErrorKind::Timeout);
        assert!(t.is_retryable());
        assert_eq!(t.to_string(), "read timeout after 5ms");
        let big = Error::DecodedTooLarge {
            limit: 10,
            encoding: "gzip",
        };
        assert_eq!(big.kind(), ErrorKind::Internal);
        assert!(!big.is_retryable());
        assert!(big.to_string().contains("gzip"));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let tr = Error::Transport(Error::source_of(io));
        assert!(tr.is_connection_error());
        assert_eq!(tr.kind(), ErrorKind::Unavailable);
        let other = Error::Transport(Error::source_of(std::io::Error::other("tls alert")));
        assert!(!other.is_connection_error());
    }

    #[test]
    fn name_lookups_are_told_apart_by_the_resolver_text() {
        let gai =
            |m: &str| std::io::Error::other(format!("failed to lookup address information: {m}"));
        let nx = gai("Name or service not known");
        assert_eq!(failed_lookup(&nx), Some(Lookup::NotFound));
        let nodata = gai("No address associated with hostname");
        assert_eq!(failed_lookup(&nodata), Some(Lookup::NotFound));
        let again = gai("Temporary failure in name resolution");
        assert_eq!(failed_lookup(&again), Some(Lookup::Failed));
        assert_eq!(failed_lookup(&std::io::Error::other("refused")), None);
        let unknown = Error::UnknownHost(Error::source_of(nx));
        assert_eq!(unknown.kind(), ErrorKind::NotFound);
        assert!(!unknown.is_retryable());
        assert!(!unknown.is_connection_error());
    }
}
