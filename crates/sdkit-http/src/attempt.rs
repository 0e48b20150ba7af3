//! Attempts: one call's request, replayed safely on other instances.
//!
//! A call keeps its request as a template. A request whose body is in memory (or absent) is
//! *replayable*: each attempt sends a copy. A streaming body is sent once; a later attempt would
//! have nothing to send, so such a call is never retried.
//!
//! Whether a failed attempt is retried (on another instance) follows the safe default:
//!
//! | failure | retried when |
//! |---|---|
//! | connect failed (nothing sent) | the body is replayable, whatever the method |
//! | timeout, connection lost after sending | the method is idempotent and the body replayable |
//! | 502, 503, 504 | the method is idempotent, the body replayable, status retries on |
//! | other 5xx | never |
//!
//! Idempotent methods are those of RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use http::Method;
use sdkit_core::retry::Decision;
use sdkit_core::{BoxError, NoEndpoints};

pub use crate::error::is_retryable_status;
use crate::error::{AttemptError, AttemptFailure};

/// Which instance answered a call, and what the attempts before it met. Found in the
/// response's extensions (`response.extensions().get::<Served>()`).
#[derive(Debug, Clone)]
pub struct Served {
    /// The answering instance's identity.
    pub id: Arc<str>,
    /// The answering instance's address.
    pub addr: Arc<str>,
    /// Attempts made, this one included.
    pub attempts: u32,
    /// The addresses of the instances whose attempts failed before, in order.
    pub failed: Vec<Arc<str>>,
}

/// `true` for RFC 9110's idempotent methods.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Whether a failed attempt may be retried, per the table in the [module docs](self).
pub fn may_retry(
    failure: AttemptFailure,
    idempotent: bool,
    replayable: bool,
    retry_statuses: bool,
) -> bool {
    replayable
        && match failure {
            AttemptFailure::Connect => true,
            AttemptFailure::Timeout | AttemptFailure::Transport => idempotent,
            AttemptFailure::Status(status) => {
                idempotent && retry_statuses && is_retryable_status(status)
            }
            AttemptFailure::BodyNotReplayable => false,
        }
}

/// The retry policy of every call: an attempt error retries when the call layer marked it
/// retryable; "no endpoints" retries (the retry waits within its budget); anything else stops.
pub(crate) fn policy(_attempt: u32, error: &BoxError) -> Decision {
    if let Some(attempt) = AttemptError::find(error) {
        return if attempt.retryable() {
            Decision::Retry
        } else {
            Decision::Stop(None)
        };
    }
    if error.is::<NoEndpoints>() {
        Decision::Retry
    } else {
        Decision::Stop(None)
    }
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("attempts", &self.attempts())
            .field("idempotent", &self.shared.idempotent)
            .field("replayable", &self.shared.replayable)
            .finish_non_exhaustive()
    }
}

struct Shared {
    template: Mutex<Option<reqwest::Request>>,
    replayable: bool,
    idempotent: bool,
    retry_statuses: bool,
    attempts: AtomicU32,
    failed: Mutex<Vec<Arc<str>>>,
}

/// One call: the request template and what its attempts met. Cheap to clone (the retry clones
/// it per attempt). Made by the [`Client`](crate::Client); an [`Endpoint`](crate::Endpoint)
/// serves one attempt of it.
#[derive(Clone)]
pub struct Call {
    shared: Arc<Shared>,
}

impl Call {
    pub(crate) fn new(request: reqwest::Request, retry_statuses: bool) -> Call {
        let replayable = request.body().is_none_or(|b| b.as_bytes().is_some());
        let idempotent = is_idempotent(request.method());
        Call {
            shared: Arc::new(Shared {
                template: Mutex::new(Some(request)),
                replayable,
                idempotent,
                retry_statuses,
                attempts: AtomicU32::new(0),
                failed: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The request for the next attempt: a copy when replayable, else the request itself once.
    pub(crate) fn next_request(&self) -> Option<reqwest::Request> {
        self.shared.attempts.fetch_add(1, Ordering::Relaxed);
        let mut template = self
            .shared
            .template
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.shared.replayable {
            template.as_ref().and_then(reqwest::Request::try_clone)
        } else {
            template.take()
        }
    }

    /// Attempts made so far.
    pub(crate) fn attempts(&self) -> u32 {
        self.shared.attempts.load(Ordering::Relaxed)
    }

    /// Records a failed attempt and decides whether it may be retried.
    pub(crate) fn failed(&self, addr: &Arc<str>, error: &mut AttemptError) {
        self.shared
            .failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(addr));
        let retry = may_retry(
            error.failure(),
            self.shared.idempotent,
            self.shared.replayable,
            self.shared.retry_statuses,
        );
        error.set_retryable(retry);
    }

    /// The record put in the response's extensions.
    pub(crate) fn served(&self, id: &Arc<str>, addr: &Arc<str>) -> Served {
        let failed = self
            .shared
            .failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Served {
            id: Arc::clone(id),
            addr: Arc::clone(addr),
            attempts: self.attempts(),
            failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn only_safe_failures_are_retried() {
        use AttemptFailure::*;
        let s503 = Status(StatusCode::SERVICE_UNAVAILABLE);
        let s500 = Status(StatusCode::INTERNAL_SERVER_ERROR);
        // (failure, idempotent, replayable, statuses) → retry
        let table = [
            (Connect, false, true, true, true),
            (Connect, true, false, true, false),
            (Timeout, true, true, true, true),
            (Timeout, false, true, true, false),
            (Transport, true, true, true, true),
            (Transport, false, true, true, false),
            (s503, true, true, true, true),
            (s503, true, true, false, false),
            (s503, false, true, true, false),
            (s500, true, true, true, false),
            (BodyNotReplayable, true, true, true, false),
        ];
        for (failure, idempotent, replayable, statuses, expected) in table {
            assert_eq!(
                may_retry(failure, idempotent, replayable, statuses),
                expected,
                "{failure:?} idempotent={idempotent} replayable={replayable} statuses={statuses}"
            );
        }
    }

    #[test]
    fn idempotent_methods_follow_rfc_9110() {
        for m in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
            assert!(is_idempotent(&m.parse().unwrap()), "{m}");
        }
        for m in ["POST", "PATCH", "CONNECT"] {
            assert!(!is_idempotent(&m.parse().unwrap()), "{m}");
        }
    }
}
