//! Errors of the Consul backend.
//!
//! Every message starts with `consul:` and says what went wrong, so an error event read far from
//! its source still names the backend. Tokens never appear in them.

use std::time::Duration;

/// What went wrong talking to Consul.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable (bad address, unreadable CA file, …).
    #[error("consul: invalid configuration: {0}")]
    Config(String),
    /// Connecting or talking HTTP failed.
    #[error("consul: {what}: transport error: {source}")]
    Transport {
        /// The request, e.g. `GET /v1/health/service/web`.
        what: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No answer within the HTTP timeout.
    #[error("consul: {what}: no answer within {timeout:?}")]
    Timeout {
        /// The request.
        what: String,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// Consul answered with a non-success status.
    #[error("consul: {what}: HTTP {status}: {body}")]
    Status {
        /// The request.
        what: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the body (bounded, for diagnostics).
        body: String,
    },
    /// The answer could not be understood (malformed JSON, unexpected shape, too large).
    #[error("consul: {what}: malformed response: {detail}")]
    Malformed {
        /// The request.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// An answer listed more instances than
    /// [`InstancerConfig::max_instances`](crate::InstancerConfig::max_instances) allows; the
    /// last good set is kept.
    #[error(
        "consul: {service}: {count} instances, more than the cap of {max} (max_instances); keeping the last good set"
    )]
    TooManyInstances {
        /// The service.
        service: String,
        /// The entries in the answer.
        count: usize,
        /// The cap.
        max: usize,
    },
}

impl Error {
    /// The HTTP status, when Consul answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// `true` for 429 (rate limited) and 503 (no leader, overloaded): Consul asks to back off.
    pub fn is_throttle(&self) -> bool {
        matches!(self.status(), Some(429 | 503))
    }
}
