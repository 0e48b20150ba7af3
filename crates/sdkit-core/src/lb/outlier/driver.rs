//! [`OutlierDetector`]: the detector bound to an endpoint set — outcomes in (lock-free), readiness
//! bits out, a task for the interval and the returns.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::config::{FailureClasses, OutlierConfig};
use super::detector::{Change, Counters, Detector, Reason};
use crate::endpoint::{EndpointKey, Endpoints};
use crate::endpoint_set::EndpointSet;
use crate::lb::{EndpointState, Outcome, OutcomeObserver, PANIC_THRESHOLD_PERCENT};
use crate::metrics::OutlierMetrics;

/// What outlier detection did: the hook for logs and metrics
/// ([`OutlierDetector::spawn_with`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutlierEvent {
    /// An endpoint was ejected.
    Ejected {
        /// Its instance identity.
        id: Arc<str>,
        /// Why.
        reason: Reason,
        /// For how long.
        duration: Duration,
    },
    /// An endpoint's ejection ran out.
    Returned {
        /// Its instance identity.
        id: Arc<str>,
    },
    /// Fewer than [`PANIC_THRESHOLD_PERCENT`] % of the endpoints are ready (`entered`), so the
    /// balancers ignore readiness; or that ended.
    PanicMode {
        /// `true` when panic mode starts, `false` when it ends.
        entered: bool,
        /// Ready endpoints.
        ready: usize,
        /// All endpoints.
        total: usize,
    },
}

type Listener = Arc<dyn Fn(&OutlierEvent) + Send + Sync>;

struct Tracked {
    state: Arc<EndpointState>,
    id: Arc<str>,
}

struct Inner {
    detector: Detector<EndpointKey>,
    endpoints: HashMap<EndpointKey, Tracked>,
    panicking: bool,
}

struct Shared {
    inner: Mutex<Inner>,
    classes: FailureClasses,
    threshold: Option<u32>,
    /// Wakes the task when a streak ejection set a new expiry.
    wake: Notify,
    listener: Option<Listener>,
    metrics: OutlierMetrics,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `changes` to the endpoints' readiness bits; returns the events to report.
    fn apply(
        &self,
        inner: &mut Inner,
        changes: Vec<Change<EndpointKey>>,
        now: Instant,
    ) -> Vec<OutlierEvent> {
        let mut events = Vec::with_capacity(changes.len());
        for change in changes {
            match change {
                Change::Ejected { key, until, reason } => {
                    if let Some(t) = inner.endpoints.get(&key) {
                        t.state.set_ejected(true);
                        let duration = until.saturating_duration_since(now);
                        tracing::warn!(instance = %t.id, ?reason, ?duration, "outlier detection: ejected");
                        events.push(OutlierEvent::Ejected {
                            id: Arc::clone(&t.id),
                            reason,
                            duration,
                        });
                    }
                }
                Change::Returned { key } => {
                    if let Some(t) = inner.endpoints.get(&key) {
                        t.state.set_ejected(false);
                        tracing::info!(instance = %t.id, "outlier detection: returned");
                        events.push(OutlierEvent::Returned {
                            id: Arc::clone(&t.id),
                        });
                    }
                }
            }
        }
        if !events.is_empty() {
            let ejected = inner
                .endpoints
                .keys()
                .filter(|k| inner.detector.is_ejected(k))
                .count();
            self.metrics.ejected_now(ejected);
            let total = inner.endpoints.len();
            let ready = inner
                .endpoints
                .values()
                .filter(|t| t.state.is_ready())
                .count();
            let panicking = total > 0 && ready * 100 < total * PANIC_THRESHOLD_PERCENT;
            if panicking != inner.panicking {
                inner.panicking = panicking;
                if panicking {
                    tracing::warn!(
                        ready,
                        total,
                        "fewer than {PANIC_THRESHOLD_PERCENT} % of endpoints ready: panic mode, readiness ignored"
                    );
                } else {
                    tracing::info!(ready, total, "panic mode over: enough endpoints ready");
                }
                events.push(OutlierEvent::PanicMode {
                    entered: panicking,
                    ready,
                    total,
                });
            }
        }
        events
    }

    fn emit(&self, events: &[OutlierEvent]) {
        for event in events {
            match event {
                OutlierEvent::Ejected { .. } => self.metrics.ejection(),
                OutlierEvent::PanicMode { entered, .. } => self.metrics.panic(*entered),
                OutlierEvent::Returned { .. } => {}
            }
        }
        if let Some(listener) = &self.listener {
            for event in events {
                listener(event);
            }
        }
    }
}

/// Feeds one endpoint's outcomes to its counters; the slow path (a failure streak reaching the
/// threshold) takes the detector's lock.
struct Observer {
    key: EndpointKey,
    counters: Arc<Counters>,
    shared: Weak<Shared>,
    classes: FailureClasses,
    threshold: u32,
}

impl OutcomeObserver for Observer {
    #[inline]
    fn observe(&self, outcome: Outcome) {
        let success = match outcome {
            Outcome::Success => true,
            Outcome::Failure(class) if self.classes.contains(class) => false,
            Outcome::Failure(_) | Outcome::Cancelled => return,
        };
        if self.counters.record(success) >= self.threshold {
            self.streak();
        }
    }
}

impl Observer {
    #[cold]
    fn streak(&self) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let now = now();
        let events = {
            let mut inner = shared.lock();
            let Some(change) = inner.detector.on_failure_streak(&self.key, now) else {
                return;
            };
            shared.apply(&mut inner, vec![change], now)
        };
        shared.wake.notify_one();
        shared.emit(&events);
    }
}

/// The clock: Tokio's, so that paused-time tests drive it.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Passive outlier detection over an endpoint set, for every balancer reading it. See the
/// [module docs](super).
///
/// Spawning attaches an observer to each endpoint's [`EndpointState`] (every outcome a call
/// guard or a transport records reaches it) and starts a task that evaluates the interval rules
/// and returns ejected endpoints when their time runs out. Ejection sets the endpoint's
/// `ejected` readiness bit, which every balancer honours. Dropping the detector stops it and
/// returns every ejected endpoint.
///
/// One detector per endpoint set: an endpoint state takes one observer for its lifetime, so a
/// second detector over the same set (or a detector started after another was dropped) does
/// not see the endpoints the first one watched (it logs a warning); keep one detector next to
/// the endpointer for as long as it lives.
pub struct OutlierDetector {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl fmt::Debug for OutlierDetector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutlierDetector")
            .field("config", self.shared.lock().detector.config())
            .field("ejected", &self.ejected())
            .finish()
    }
}

impl OutlierDetector {
    /// Starts outlier detection over `set` (on the current Tokio runtime).
    pub fn spawn<S: Send + Sync + 'static>(set: &EndpointSet<S>, config: OutlierConfig) -> Self {
        Self::build(set, config, None)
    }

    /// Like [`spawn`](Self::spawn), reporting every ejection, return and panic-mode change to
    /// `listener` (called on the thread that caused it; keep it short).
    pub fn spawn_with<S, L>(set: &EndpointSet<S>, config: OutlierConfig, listener: L) -> Self
    where
        S: Send + Sync + 'static,
        L: Fn(&OutlierEvent) + Send + Sync + 'static,
    {
        Self::build(set, config, Some(Arc::new(listener)))
    }

    fn build<S: Send + Sync + 'static>(
        set: &EndpointSet<S>,
        config: OutlierConfig,
        listener: Option<Listener>,
    ) -> Self {
        let shared = Arc::new(Shared {
            classes: config.failure_classes(),
            threshold: config.consecutive_failures(),
            inner: Mutex::new(Inner {
                detector: Detector::new(config, rand::random()),
                endpoints: HashMap::new(),
                panicking: false,
            }),
            wake: Notify::new(),
            listener,
            metrics: OutlierMetrics::new(set.labels()),
        });
        // The version before the snapshot: a change published before the task first runs is
        // not lost (the task's first wait returns at once).
        let seen = set.version();
        sync(&shared, &set.load());
        let task = tokio::spawn(run(set.clone(), Arc::downgrade(&shared), seen));
        OutlierDetector { shared, task }
    }

    /// Identities of the endpoints ejected now.
    pub fn ejected(&self) -> Vec<Arc<str>> {
        let inner = self.shared.lock();
        let mut ids: Vec<Arc<str>> = inner
            .endpoints
            .iter()
            .filter(|(key, _)| inner.detector.is_ejected(key))
            .map(|(_, t)| Arc::clone(&t.id))
            .collect();
        ids.sort();
        ids
    }

    /// Whether the endpoint with identity `id` is ejected now.
    pub fn is_ejected(&self, id: &str) -> bool {
        self.shared.lock().detector.is_ejected(&EndpointKey::of(id))
    }
}

impl Drop for OutlierDetector {
    fn drop(&mut self) {
        self.task.abort();
        let inner = self.shared.lock();
        for t in inner.endpoints.values() {
            t.state.set_ejected(false);
        }
        self.shared.metrics.ejected_now(0);
        self.shared.metrics.panic(false);
    }
}

/// Brings the detector's endpoints in line with `endpoints`: unchanged endpoints (same key, same
/// state) keep their history; new or renewed ones start fresh with an observer attached.
fn sync<S>(shared: &Arc<Shared>, endpoints: &Endpoints<S>) {
    let mut inner = shared.lock();
    let inner = &mut *inner;
    let mut fresh = Vec::new();
    let mut kept: HashMap<EndpointKey, Tracked> = HashMap::with_capacity(endpoints.len());
    for e in endpoints.iter() {
        match inner.endpoints.remove(&e.key()) {
            Some(t) if Arc::ptr_eq(&t.state, e.state()) => {
                kept.insert(e.key(), t);
            }
            _ => fresh.push(e),
        }
    }
    // Gone or renewed: no longer ours.
    for t in inner.endpoints.values() {
        t.state.set_ejected(false);
    }
    inner.detector.update(kept.keys().copied());
    inner
        .detector
        .update(kept.keys().copied().chain(fresh.iter().map(|e| e.key())));
    for e in fresh {
        if let (Some(counters), Some(threshold)) = (
            inner.detector.counters(&e.key()),
            Some(shared.threshold.unwrap_or(u32::MAX)),
        ) {
            let observer = Observer {
                key: e.key(),
                counters: Arc::clone(counters),
                shared: Arc::downgrade(shared),
                classes: shared.classes,
                threshold,
            };
            if !e.state().observe_with(Arc::new(observer)) {
                tracing::warn!(
                    instance = e.instance().id(),
                    "outlier detection: the endpoint already reports to another detector"
                );
            }
        }
        kept.insert(
            e.key(),
            Tracked {
                state: Arc::clone(e.state()),
                id: Arc::from(e.instance().id()),
            },
        );
    }
    inner.endpoints = kept;
}

/// The task: follows the set (from version `seen`, the one the detector last synced to), ticks
/// every interval, returns endpoints when their time is up.
async fn run<S: Send + Sync + 'static>(set: EndpointSet<S>, shared: Weak<Shared>, mut seen: u64) {
    let interval = match shared.upgrade() {
        Some(s) => s.lock().detector.config().interval(),
        None => return,
    };
    let mut next_tick = tokio::time::Instant::now() + interval;
    loop {
        let (expiry, wake) = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let expiry = shared.lock().detector.next_expiry();
            (expiry, Arc::clone(&shared))
        };
        let sleep_expiry = async {
            match expiry {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        let tick = tokio::select! {
            () = set.changed_since(seen) => {
                seen = set.version();
                let endpoints = set.load();
                sync(&wake, &endpoints);
                continue;
            }
            () = wake.wake.notified() => continue,
            () = sleep_expiry => false,
            () = tokio::time::sleep_until(next_tick) => true,
        };
        let now = now();
        let events = {
            let mut inner = wake.lock();
            let changes = if tick {
                inner.detector.tick(now)
            } else {
                inner.detector.expire(now)
            };
            wake.apply(&mut inner, changes, now)
        };
        wake.emit(&events);
        if tick {
            next_tick += interval;
        }
    }
}
