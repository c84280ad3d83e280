//! The one error type of the crate: a single human-readable line.

use std::fmt;

/// An error worth showing to the user as one line (the binary prints it and exits non-zero).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }

    /// Prefixes context (usually a file or option name) to an error.
    pub fn context(self, ctx: impl fmt::Display) -> Self {
        Error(format!("{ctx}: {}", self.0))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Result of pktgen operations.
pub type Result<T> = std::result::Result<T, Error>;

/// Adds "what we were doing" to I/O and other foreign errors.
pub trait Context<T> {
    /// Turns the error into an [`Error`] prefixed with `ctx`.
    fn context(self, ctx: impl fmt::Display) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, ctx: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error(format!("{ctx}: {e}")))
    }
}

/// Returns early with an [`Error`] built like `format!`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::Error::new(format!($($arg)*)))
    };
}
