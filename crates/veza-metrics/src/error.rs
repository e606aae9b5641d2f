//! Errors of this crate.

use std::fmt;

use veza_core::{Classify, ErrorKind};

/// Why the metrics could not be set up or served.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Another global recorder was installed first.
    AlreadyInstalled,
    /// The exporter's configuration was refused (a bucket list, say).
    Config(String),
    /// The endpoint could not listen on its address.
    Bind(std::net::SocketAddr, std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::AlreadyInstalled => {
                f.write_str("a global metrics recorder is already installed")
            }
            Error::Config(why) => write!(f, "invalid metrics configuration: {why}"),
            Error::Bind(addr, err) => write!(f, "cannot listen on {addr}: {err}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind(_, err) => Some(err),
            _ => None,
        }
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::AlreadyInstalled | Error::Config(_) => ErrorKind::InvalidInput,
            Error::Bind(_, _) => ErrorKind::Unavailable,
        }
    }
}
