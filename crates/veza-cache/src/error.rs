//! Errors: a bad configuration, and the shared error of a failed load.

use std::fmt;

use veza_core::{Classify, ErrorKind};

/// A configuration value is out of range; the message says which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub(crate) &'static str);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid cache config: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Classify for ConfigError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}
