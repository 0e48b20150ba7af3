//! [`EndpointState`]: what calls report back about one endpoint, kept across snapshots.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::outcome::{FailureClass, Outcome};

const TRANSPORT_NOT_READY: u8 = 1;
const EJECTED: u8 = 2;
const UNHEALTHY: u8 = 4;

/// How many endpoint states in the process have a readiness bit set. While it is zero (the
/// common case) pickers skip the per-endpoint readiness check entirely.
static NOT_READY: AtomicU64 = AtomicU64::new(0);
/// Bumped on every readiness transition anywhere: pickers cache their count of ready endpoints
/// per snapshot and recount only when it moved.
static READINESS_EPOCH: AtomicU64 = AtomicU64::new(0);

/// Set once any endpoint state in the process gets an observer (observers are never removed):
/// until then [`EndpointState::is_observed`] answers without reading the state itself, so a
/// pick that only asks whether to report (round-robin, random) touches no endpoint's state —
/// with thousands of endpoints picked at random, that read is a cache miss per pick.
static ANY_OBSERVED: AtomicBool = AtomicBool::new(false);

/// `true` while some endpoint in the process is not ready (one relaxed load).
#[inline]
pub(crate) fn any_not_ready() -> bool {
    NOT_READY.load(Ordering::Relaxed) != 0
}

/// The current readiness epoch.
#[inline]
pub(crate) fn readiness_epoch() -> u64 {
    READINESS_EPOCH.load(Ordering::Acquire)
}

/// Nanoseconds since a process-wide origin (for the lock-free latency stamps).
fn now_nanos(now: Instant) -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    u64::try_from(now.saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX)
}

/// Told of every outcome recorded on an [`EndpointState`]: how outlier detection
/// ([`OutlierDetector`](crate::lb::outlier::OutlierDetector)) sees the calls of every balancer.
pub trait OutcomeObserver: Send + Sync + 'static {
    /// One call ended with `outcome` (called on the caller's thread: keep it short).
    fn observe(&self, outcome: Outcome);
}

/// Per-endpoint state shared by the balancer, the call guards and the transport.
///
/// One per endpoint, kept across snapshot updates while the instance stays in the set (same
/// identity and address); a removed and re-added instance starts fresh. All fields are atomics:
/// reading costs a load, and nothing here takes a lock.
///
/// * in-flight count: raised by a tracking [`CallGuard`](crate::lb::CallGuard) at pick, lowered
///   when it ends;
/// * latency: a peak-sensitive moving average (linkerd's and Finagle's PeakEWMA) of the
///   latencies [`record`](Self::record)ed; a failure never makes an endpoint look faster;
/// * consecutive failures (reset by a success);
/// * readiness bits: transport not ready, ejected, unhealthy. An endpoint with no bit set is
///   [ready](Self::is_ready); balancers skip the others while enough are ready;
/// * the time it joined (for slow start); endpoints of an endpointer's first snapshot count as
///   warm.
///
/// ```
/// use std::time::Duration;
/// use sdkit_core::lb::{EndpointState, FailureClass, Outcome};
///
/// let state = EndpointState::new();
/// assert!(state.is_ready());
/// state.set_transport_ready(false);
/// assert!(!state.is_ready());
/// state.set_transport_ready(true);
/// state.record(Outcome::Failure(FailureClass::Timeout), Duration::from_millis(5));
/// assert_eq!(state.consecutive_failures(), 1);
/// state.record(Outcome::Success, Duration::from_millis(5));
/// assert_eq!(state.consecutive_failures(), 0);
/// ```
pub struct EndpointState {
    /// Told of every outcome recorded here (outlier detection attaches one).
    observer: OnceLock<Arc<dyn OutcomeObserver>>,
    in_flight: AtomicU32,
    consecutive_failures: AtomicU32,
    flags: AtomicU8,
    /// Latency estimate in nanoseconds as `f64` bits; 0 = no observation yet.
    ewma: AtomicU64,
    /// When `ewma` was last updated ([`now_nanos`]).
    stamp: AtomicU64,
    joined_at: Option<Instant>,
}

/// Decay time of the latency estimate (linkerd's default).
pub const DEFAULT_DECAY: Duration = Duration::from_secs(10);

impl Default for EndpointState {
    fn default() -> Self {
        Self::new()
    }
}

impl EndpointState {
    /// Fresh state of an endpoint joining now (subject to slow start).
    pub fn new() -> Self {
        Self::joined(Some(Instant::now()))
    }

    /// Fresh state of an endpoint that needs no slow start.
    pub fn warm() -> Self {
        Self::joined(None)
    }

    fn joined(joined_at: Option<Instant>) -> Self {
        EndpointState {
            observer: OnceLock::new(),
            in_flight: AtomicU32::new(0),
            consecutive_failures: AtomicU32::new(0),
            flags: AtomicU8::new(0),
            ewma: AtomicU64::new(0),
            stamp: AtomicU64::new(0),
            joined_at,
        }
    }

    /// Calls in flight through tracking guards.
    #[inline]
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn end(&self) {
        // Never below zero, whatever the interleaving.
        let _ = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Failures recorded since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    /// When the endpoint joined the set (`None` for endpoints of the first snapshot).
    pub fn joined_at(&self) -> Option<Instant> {
        self.joined_at
    }

    /// `true` when no readiness bit is set (transport ready, not ejected, healthy).
    #[inline]
    pub fn is_ready(&self) -> bool {
        self.flags.load(Ordering::Relaxed) == 0
    }

    /// `false` while the transport reports its connection down.
    pub fn is_transport_ready(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & TRANSPORT_NOT_READY == 0
    }

    /// `true` while ejected (outlier detection).
    pub fn is_ejected(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & EJECTED != 0
    }

    /// `false` while a health check reports the endpoint unhealthy.
    pub fn is_healthy(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & UNHEALTHY == 0
    }

    /// A transport marks its connection up (`true`) or down (`false`).
    pub fn set_transport_ready(&self, ready: bool) {
        self.set_flag(TRANSPORT_NOT_READY, !ready);
    }

    /// Outlier detection ejects (`true`) or restores (`false`) the endpoint.
    pub fn set_ejected(&self, ejected: bool) {
        self.set_flag(EJECTED, ejected);
    }

    /// A health check marks the endpoint healthy or not.
    pub fn set_healthy(&self, healthy: bool) {
        self.set_flag(UNHEALTHY, !healthy);
    }

    fn set_flag(&self, bit: u8, on: bool) {
        let old = if on {
            self.flags.fetch_or(bit, Ordering::AcqRel)
        } else {
            self.flags.fetch_and(!bit, Ordering::AcqRel)
        };
        let new = if on { old | bit } else { old & !bit };
        if (old == 0) != (new == 0) {
            if new == 0 {
                NOT_READY.fetch_sub(1, Ordering::AcqRel);
            } else {
                NOT_READY.fetch_add(1, Ordering::AcqRel);
            }
        }
        if old != new {
            READINESS_EPOCH.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Records the outcome of one call and its latency: a success resets the consecutive
    /// failures, a failure counts one and feeds the latency estimate at least twice its current
    /// value (so a failing endpoint never looks fast), a cancelled call records nothing.
    pub fn record(&self, outcome: Outcome, latency: Duration) {
        self.record_at(outcome, latency, Instant::now());
    }

    /// Records an outcome without a latency: the consecutive failures, and the observer (outlier
    /// detection) if one is attached — what guards without a clock report.
    pub fn record_outcome(&self, outcome: Outcome) {
        if let Some(observer) = self.observer.get() {
            observer.observe(outcome);
        }
        match outcome {
            Outcome::Success => {
                if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
                    self.consecutive_failures.store(0, Ordering::Relaxed);
                }
            }
            Outcome::Failure(_) => {
                self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Cancelled => {}
        }
    }

    /// [`record`](Self::record) with the current time given.
    pub(crate) fn record_at(&self, outcome: Outcome, latency: Duration, now: Instant) {
        self.record_outcome(outcome);
        match outcome {
            Outcome::Success => self.observe(latency, now),
            Outcome::Failure(class) => {
                let penalty = match class {
                    FailureClass::Other => latency,
                    _ => latency.max(self.latency_at(now, DEFAULT_DECAY).saturating_mul(2)),
                };
                self.observe(penalty, now);
            }
            Outcome::Cancelled => {}
        }
    }

    /// Attaches `observer`, told of every outcome recorded from now on; `false` (and nothing
    /// changes) when one is already attached (one per endpoint state).
    pub fn observe_with(&self, observer: Arc<dyn OutcomeObserver>) -> bool {
        let attached = self.observer.set(observer).is_ok();
        if attached {
            ANY_OBSERVED.store(true, Ordering::Release);
        }
        attached
    }

    /// `true` when an observer is attached (guards of balancers without feedback then report).
    /// A pick racing the attachment may miss it, as it may miss the `OnceLock` itself: the
    /// observer sees the outcomes of calls picked after it was attached.
    #[inline]
    pub fn is_observed(&self) -> bool {
        ANY_OBSERVED.load(Ordering::Acquire) && self.observer.get().is_some()
    }

    /// Feeds one latency sample into the peak-EWMA estimate (decay [`DEFAULT_DECAY`]).
    fn observe(&self, latency: Duration, now: Instant) {
        let sample = latency.as_nanos() as f64;
        let now_ns = now_nanos(now);
        let previous = f64::from_bits(self.ewma.load(Ordering::Relaxed));
        let next = if previous == 0.0 || sample > previous {
            // Peak: jump up at once.
            sample
        } else {
            let elapsed = now_ns.saturating_sub(self.stamp.load(Ordering::Relaxed)) as f64;
            let w = (-elapsed / DEFAULT_DECAY.as_nanos() as f64).exp();
            previous * w + sample * (1.0 - w)
        };
        // Concurrent observers race benignly: one of their estimates wins.
        self.ewma.store(next.max(1.0).to_bits(), Ordering::Relaxed);
        self.stamp.store(now_ns, Ordering::Relaxed);
    }

    /// The latency estimate now (zero before any observation).
    pub fn latency(&self) -> Duration {
        self.latency_at(Instant::now(), DEFAULT_DECAY)
    }

    /// The estimate in nanoseconds at `now` with the given decay (0.0 before any observation).
    pub(crate) fn latency_nanos_at(&self, now: Instant, decay: Duration) -> f64 {
        let value = f64::from_bits(self.ewma.load(Ordering::Relaxed));
        if value == 0.0 {
            return 0.0;
        }
        // Decay toward zero while idle, so an endpoint that was slow once gets tried again.
        let elapsed = now_nanos(now).saturating_sub(self.stamp.load(Ordering::Relaxed)) as f64;
        value * (-elapsed / decay.as_nanos().max(1) as f64).exp()
    }

    fn latency_at(&self, now: Instant, decay: Duration) -> Duration {
        Duration::from_nanos(self.latency_nanos_at(now, decay) as u64)
    }
}

impl Drop for EndpointState {
    fn drop(&mut self) {
        if *self.flags.get_mut() != 0 {
            NOT_READY.fetch_sub(1, Ordering::AcqRel);
            READINESS_EPOCH.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl fmt::Debug for EndpointState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointState")
            .field("in_flight", &self.in_flight())
            .field("consecutive_failures", &self.consecutive_failures())
            .field("transport_ready", &self.is_transport_ready())
            .field("ejected", &self.is_ejected())
            .field("healthy", &self.is_healthy())
            .finish_non_exhaustive()
    }
}
