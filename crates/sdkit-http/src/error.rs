//! Errors: what a caller of the [`Client`](crate::Client) sees, and what one attempt on one
//! instance ends with.
//!
//! A call fails with an [`Error`]. When attempts were made, [`Error::Attempts`] carries the
//! core's [`RetryError`] with every attempt's error, each an [`AttemptError`] naming the instance
//! and what went wrong ([`AttemptFailure`]). Registry URLs in these errors are the redacted form
//! (no token or password).

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use http::StatusCode;
use sdkit_core::lb::FailureClass;
use sdkit_core::retry::RetryError;

/// The error of a call through the [`Client`](crate::Client) or the
/// [`NameResolver`](crate::NameResolver) middleware.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request's host is not a registered service name (it is never looked up in DNS).
    #[error("no target configured for service `{name}` (registered: {registered})")]
    UnknownService {
        /// The host of the request.
        name: String,
        /// The registered names, comma-separated (or `none`).
        registered: String,
    },
    /// The service's registry gave no instance within the caller's timeout.
    #[error("service `{service}` ({registry}): no instance ready within {}{}",
        sdkit_core::duration::format(*waited),
        source_error.as_ref().map(|e| format!("; the registry is failing: {e}")).unwrap_or_default())]
    NoInstances {
        /// The service name.
        service: String,
        /// The registry, redacted.
        registry: String,
        /// How long the call waited.
        waited: Duration,
        /// The registry's error while it is failing.
        source_error: Option<String>,
    },
    /// Every attempt failed (or the budget ran out); the retry error keeps each attempt's error.
    #[error("service `{service}` ({registry}): {source}")]
    Attempts {
        /// The service name.
        service: String,
        /// The registry, redacted.
        registry: String,
        /// Every attempt's error.
        #[source]
        source: RetryError,
    },
    /// The request cannot be sent as written (no host, a scheme other than http/https, a name
    /// registered twice…).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The service's registry refused its configuration.
    #[error("service `{service}` ({registry}): {message}")]
    Source {
        /// The service name.
        service: String,
        /// The registry, redacted.
        registry: String,
        /// What the backend said.
        message: String,
    },
    /// The HTTP client could not be built (TLS roots, …).
    #[error("building the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
    /// A request sent as is (an unknown name with
    /// [`UnknownNames::Passthrough`](crate::UnknownNames::Passthrough)) failed.
    #[error(transparent)]
    Reqwest(#[from] reqwest::Error),
}

impl Error {
    /// Every attempt's error, when attempts were made.
    pub fn attempts(&self) -> &[sdkit_core::BoxError] {
        match self {
            Error::Attempts { source, .. } => source.errors(),
            _ => &[],
        }
    }
}

/// What went wrong in one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptFailure {
    /// Connecting (TCP or TLS) failed: nothing of the request was sent.
    Connect,
    /// No response headers within the attempt timeout.
    Timeout,
    /// The connection failed after the request may have been sent.
    Transport,
    /// The instance answered with a server error (5xx).
    Status(StatusCode),
    /// The body was already sent by an earlier attempt and cannot be replayed.
    BodyNotReplayable,
}

/// `true` for the answers that say "try another instance": 502, 503, 504.
pub fn is_retryable_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
}

impl AttemptFailure {
    /// The core's failure class: what the balancer's guard records.
    pub fn class(self) -> FailureClass {
        match self {
            AttemptFailure::Connect => FailureClass::ConnectFailed,
            AttemptFailure::Timeout => FailureClass::Timeout,
            AttemptFailure::Status(status) if is_retryable_status(status) => {
                FailureClass::Unavailable
            }
            AttemptFailure::Status(_) => FailureClass::ServerError,
            AttemptFailure::Transport | AttemptFailure::BodyNotReplayable => FailureClass::Other,
        }
    }

    /// `true` when nothing of the request reached the instance: retrying is safe for any method.
    pub fn nothing_sent(self) -> bool {
        matches!(self, AttemptFailure::Connect)
    }
}

impl fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptFailure::Connect => f.write_str("connect failed"),
            AttemptFailure::Timeout => f.write_str("timed out"),
            AttemptFailure::Transport => f.write_str("connection failed"),
            AttemptFailure::Status(status) => write!(f, "HTTP {status}"),
            AttemptFailure::BodyNotReplayable => f.write_str("body cannot be replayed"),
        }
    }
}

/// One failed attempt on one instance. A 5xx answer is kept inside (so that the caller still
/// receives the response when no retry follows).
#[derive(Debug)]
pub struct AttemptError {
    addr: String,
    failure: AttemptFailure,
    detail: Option<String>,
    retryable: bool,
    response: Mutex<Option<reqwest::Response>>,
}

impl AttemptError {
    pub(crate) fn new(addr: &str, failure: AttemptFailure, detail: Option<String>) -> Self {
        AttemptError {
            addr: addr.to_owned(),
            failure,
            detail,
            retryable: false,
            response: Mutex::new(None),
        }
    }

    pub(crate) fn status(addr: &str, response: reqwest::Response) -> Self {
        AttemptError {
            addr: addr.to_owned(),
            failure: AttemptFailure::Status(response.status()),
            detail: None,
            retryable: false,
            response: Mutex::new(Some(response)),
        }
    }

    /// The attempt error inside `error` (itself, or anywhere in its `source()` chain: the
    /// endpoint wraps it in a [`Classified`](sdkit_core::lb::Classified) for the balancer).
    pub fn find(error: &sdkit_core::BoxError) -> Option<&AttemptError> {
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(&**error);
        while let Some(e) = current {
            if let Some(attempt) = e.downcast_ref::<AttemptError>() {
                return Some(attempt);
            }
            current = e.source();
        }
        None
    }

    /// The instance's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// What went wrong.
    pub fn failure(&self) -> AttemptFailure {
        self.failure
    }

    /// `true` when the call layer decided this attempt may be retried on another instance (the
    /// rules are in [`attempt`](crate::attempt)).
    pub fn retryable(&self) -> bool {
        self.retryable
    }

    pub(crate) fn set_retryable(&mut self, retryable: bool) {
        self.retryable = retryable;
    }

    /// Takes the 5xx response out (once).
    pub(crate) fn take_response(&self) -> Option<reqwest::Response> {
        self.response
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.addr, self.failure)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for AttemptError {}

/// The error and its causes on one line (reqwest's and hyper's own messages are terse).
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
