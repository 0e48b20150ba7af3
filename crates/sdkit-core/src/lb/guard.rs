//! What a pick hands back: the service and a [`CallGuard`] that reports the call's outcome.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crate::endpoint::{Endpoint, EndpointKey};
use crate::error::BoxError;
use crate::feedback::outcome::{FailureClass, Outcome};
use crate::feedback::state::EndpointState;

/// Reports the outcome of one call to the endpoint's [`EndpointState`].
///
/// A *tracking* guard (from least-loaded balancers) raised the endpoint's in-flight count at
/// pick and lowers it when it ends; it records the outcome and the latency since the pick. A
/// *detached* guard (from round-robin, random, weighted) does nothing at all: no clock read, no
/// atomic write. Ending a guard: [`success`](Self::success), [`failure`](Self::failure),
/// [`finish`](Self::finish); dropping it unfinished records [`Outcome::Cancelled`] (not a
/// failure).
///
/// ```
/// use std::sync::Arc;
/// use sdkit_core::lb::{CallGuard, EndpointState, FailureClass};
///
/// let state = Arc::new(EndpointState::new());
/// let guard = CallGuard::track(Arc::clone(&state));
/// assert_eq!(state.in_flight(), 1);
/// guard.failure(FailureClass::Timeout);
/// assert_eq!((state.in_flight(), state.consecutive_failures()), (0, 1));
/// drop(CallGuard::track(Arc::clone(&state))); // cancelled: no failure counted
/// assert_eq!((state.in_flight(), state.consecutive_failures()), (0, 1));
/// ```
#[must_use = "dropping the guard counts the call as cancelled"]
pub struct CallGuard {
    /// The state, and the start of the call when latency is recorded.
    tracked: Option<(Arc<EndpointState>, Option<Instant>)>,
    /// Reports the outcome only (no in-flight count, no clock): see [`CallGuard::outcomes`].
    reported: Option<Arc<EndpointState>>,
}

impl CallGuard {
    /// A guard that reports nothing.
    #[inline]
    pub const fn detached() -> Self {
        CallGuard {
            tracked: None,
            reported: None,
        }
    }

    /// The guard of a balancer without feedback: detached, unless an observer (outlier
    /// detection) watches `state` — then it reports the outcome alone (no in-flight count, no
    /// clock read).
    #[inline]
    pub fn outcomes(state: &Arc<EndpointState>) -> Self {
        CallGuard {
            tracked: None,
            reported: state.is_observed().then(|| Arc::clone(state)),
        }
    }

    /// A guard that counts one call in flight on `state` from now on and records its outcome
    /// and latency.
    pub fn track(state: Arc<EndpointState>) -> Self {
        Self::track_from(state, Instant::now())
    }

    /// Like [`track`](Self::track), the call having started at `start` (a balancer that read
    /// the clock to pick passes that reading).
    pub fn track_from(state: Arc<EndpointState>, start: Instant) -> Self {
        state.begin();
        CallGuard {
            tracked: Some((state, Some(start))),
            reported: None,
        }
    }

    /// A guard that counts one call in flight on `state` and records its outcome but no
    /// latency: no clock read (what least-in-flight balancing needs).
    pub fn track_untimed(state: Arc<EndpointState>) -> Self {
        state.begin();
        CallGuard {
            tracked: Some((state, None)),
            reported: None,
        }
    }

    /// `true` when the guard reports to an endpoint's state.
    pub fn is_tracking(&self) -> bool {
        self.tracked.is_some() || self.reported.is_some()
    }

    /// The call succeeded.
    pub fn success(self) {
        self.finish(Outcome::Success);
    }

    /// The call failed with `class`.
    pub fn failure(self, class: FailureClass) {
        self.finish(Outcome::Failure(class));
    }

    /// Ends the call with the outcome of `result` (errors classified by [`FailureClass::of`]).
    pub fn finish_result<T>(self, result: &Result<T, BoxError>) {
        if !self.is_tracking() {
            return;
        }
        match result {
            Ok(_) => self.success(),
            Err(error) => self.failure(FailureClass::of(error)),
        }
    }

    /// Ends the call with `outcome`.
    pub fn finish(mut self, outcome: Outcome) {
        self.end(outcome);
    }

    fn end(&mut self, outcome: Outcome) {
        if let Some((state, start)) = self.tracked.take() {
            state.end();
            match (start, outcome) {
                (_, Outcome::Cancelled) => {}
                (Some(start), _) => {
                    let now = Instant::now();
                    state.record_at(outcome, now.saturating_duration_since(start), now);
                }
                (None, _) => state.record_outcome(outcome),
            }
        } else if let Some(state) = self.reported.take() {
            state.record_outcome(outcome);
        }
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.end(Outcome::Cancelled);
    }
}

impl fmt::Debug for CallGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallGuard")
            .field("tracking", &self.is_tracking())
            .finish()
    }
}

/// One pick: the endpoint's service, the guard to end when the call ends, and the endpoint's
/// key (to avoid it on a retry).
#[derive(Debug)]
pub struct Picked<S> {
    /// The endpoint's service.
    pub service: S,
    /// Reports the call's outcome.
    pub guard: CallGuard,
    /// The picked endpoint.
    pub key: EndpointKey,
}

impl<S: Clone> Picked<S> {
    /// The pick of `endpoint` by a balancer with no feedback of its own (round-robin, random
    /// and their weighted forms): the guard reports outcomes only while something observes
    /// the endpoint's state (an outlier detector), and costs nothing otherwise.
    #[inline]
    pub(crate) fn reporting(endpoint: &Endpoint<S>) -> Self {
        Picked {
            service: endpoint.service().clone(),
            guard: CallGuard::outcomes(endpoint.state()),
            key: endpoint.key(),
        }
    }
}
