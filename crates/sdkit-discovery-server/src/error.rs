//! Errors of building and running a server.

use std::io;

/// A configuration value is out of range.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An identity field is empty or too long.
    #[error("{field} must be 1 to {max} bytes long")]
    Label {
        /// The field (`env`, `zone`, `region`, `hostname`).
        field: &'static str,
        /// The bound (from the field limits).
        max: usize,
    },
    /// A duration that must be positive is zero.
    #[error("{0} must be greater than zero")]
    ZeroDuration(&'static str),
    /// The token is empty.
    #[error("the token must not be empty")]
    EmptyToken,
    /// `token_reads` without a token.
    #[error("token_reads needs a token")]
    TokenReadsWithoutToken,
    /// A ratio outside `0.0..=1.0`.
    #[error("{0} must be between 0.0 and 1.0")]
    Ratio(&'static str),
}

/// Serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listener's address could not be read.
    #[error("listener address: {0}")]
    Io(#[from] io::Error),
    /// The server's own instance could not be registered (a capacity limit of 0?).
    #[error("registering the server itself: {0}")]
    SelfRegistration(String),
}
