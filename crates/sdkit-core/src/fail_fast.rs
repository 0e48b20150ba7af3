//! Fail-fast: once no endpoint has been ready for a while, calls fail at once instead of
//! waiting for their deadline (linkerd's failfast, 3 s by default).
//!
//! An endpoint counts as ready when its transport is up (see
//! [`EndpointState::is_transport_ready`](crate::lb::EndpointState::is_transport_ready)); an
//! empty set has none. Ejected or unhealthy endpoints still count: the balancers' panic mode
//! calls them when nothing better exists. [`FailFast::check`] is what a caller asks before an
//! attempt: `Ok` while some endpoint is ready or the outage is younger than the limit, else a
//! [`FailFastError`]. It recovers on the first check that finds a ready endpoint.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use sdkit_core::fail_fast::FailFast;
//! use sdkit_core::{EndpointSet, Instance};
//!
//! let set = EndpointSet::fixed([(Instance::from_addr("10.0.0.1:80"), ())]);
//! let fail_fast = FailFast::new(set.clone(), Duration::from_secs(3));
//! let t0 = Instant::now();
//! set.load().get(0).unwrap().state().set_transport_ready(false);
//! assert!(fail_fast.check_at(t0).is_ok()); // the outage starts
//! assert!(fail_fast.check_at(t0 + Duration::from_secs(3)).is_err()); // 3 s later: fail fast
//! set.load().get(0).unwrap().state().set_transport_ready(true);
//! assert!(fail_fast.check_at(t0 + Duration::from_secs(4)).is_ok()); // recovered at once
//! ```

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::endpoint_set::EndpointSet;

/// The clock: Tokio's (paused-time tests drive it), as the rest of the call path.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Linkerd's default: fail fast after 3 s without a ready endpoint.
pub const DEFAULT_FAIL_FAST_AFTER: Duration = Duration::from_secs(3);

/// Calls fail at once: no endpoint has been ready for at least the fail-fast time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no endpoint ready for {unready_for:?} (fail-fast after {after:?})")]
pub struct FailFastError {
    /// How long no endpoint has been ready.
    pub unready_for: Duration,
    /// The configured limit.
    pub after: Duration,
}

/// Tracks how long an endpoint set has had no ready endpoint. See the [module docs](self).
pub struct FailFast<S> {
    set: EndpointSet<S>,
    after: Duration,
    /// Since when no endpoint was ready, as seen by the checks.
    unready_since: Mutex<Option<Instant>>,
    /// `unready_since.is_some()`, readable without the lock: the common check (an endpoint is
    /// ready, and was at the last check) takes no lock.
    unready: AtomicBool,
}

impl<S> fmt::Debug for FailFast<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailFast")
            .field("after", &self.after)
            .field("unready_since", &*self.lock())
            .finish()
    }
}

impl<S> FailFast<S> {
    /// Fails fast once `set` has had no ready endpoint for `after`.
    pub fn new(set: EndpointSet<S>, after: Duration) -> Self {
        FailFast {
            set,
            after,
            unready_since: Mutex::new(None),
            unready: AtomicBool::new(false),
        }
    }

    /// The fail-fast time.
    pub fn after(&self) -> Duration {
        self.after
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.unready_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// `true` when some endpoint of the set is ready now (stops at the first).
    pub fn any_ready(&self) -> bool {
        self.set
            .load()
            .iter()
            .any(|e| e.state().is_transport_ready())
    }

    /// Whether a call may go ahead now.
    ///
    /// # Errors
    ///
    /// [`FailFastError`] once no endpoint has been ready for the fail-fast time.
    pub fn check(&self) -> Result<(), FailFastError> {
        self.check_at(now())
    }

    /// [`check`](Self::check) at `now`.
    ///
    /// # Errors
    ///
    /// [`FailFastError`] once no endpoint has been ready for the fail-fast time.
    pub fn check_at(&self, now: Instant) -> Result<(), FailFastError> {
        let ready = self.any_ready();
        if ready && !self.unready.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut since = self.lock();
        if ready {
            *since = None;
            self.unready.store(false, Ordering::Release);
            return Ok(());
        }
        self.unready.store(true, Ordering::Release);
        let start = *since.get_or_insert(now);
        let unready_for = now.saturating_duration_since(start);
        if unready_for >= self.after {
            Err(FailFastError {
                unready_for,
                after: self.after,
            })
        } else {
            Ok(())
        }
    }

    /// `true` while calls fail fast (as of the last check).
    pub fn is_failing_fast(&self) -> bool {
        self.lock()
            .is_some_and(|since| now().saturating_duration_since(since) >= self.after)
    }
}
