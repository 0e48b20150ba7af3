//! Errors of the Eureka backend. Every message names the backend (`eureka:`); none contains a
//! password.

use std::time::Duration;

/// What went wrong talking to Eureka.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable.
    #[error("eureka: invalid configuration: {0}")]
    Config(String),
    /// The request could not be sent or its answer not read.
    #[error("eureka: {method} {url} failed: {reason}")]
    Transport {
        /// The HTTP method.
        method: &'static str,
        /// The URL (no credentials).
        url: String,
        /// What failed.
        reason: String,
    },
    /// No answer in time.
    #[error("eureka: {method} {url} timed out after {timeout:?}")]
    Timeout {
        /// The HTTP method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The bound that passed.
        timeout: Duration,
    },
    /// The server answered with an unexpected status.
    #[error("eureka: {method} {url} answered {status}: {body}")]
    Status {
        /// The HTTP method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The beginning of the body.
        body: String,
    },
    /// The answer is not the JSON Eureka documents (or is larger than allowed).
    #[error("eureka: {url}: malformed response: {reason}")]
    Malformed {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
}
