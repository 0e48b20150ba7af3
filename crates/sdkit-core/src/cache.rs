//! The shared instance cache every backend publishes into.
//!
//! [`InstanceCache`] is go-kit's `internal/instance.Cache`, done right:
//!
//! * each published set is sorted by identity and duplicates (same [`Instance::id`]) are
//!   collapsed, keeping the first;
//! * a set equal to the current one is not re-published, nor is an error equal to the current
//!   error;
//! * an error never empties the set: the last good instances stay next to the error;
//! * fan-out has latest-value semantics: publishing never blocks, a slow subscriber skips
//!   intermediate states and sees the newest one, and a new subscriber sees the current state at
//!   once;
//! * after [`close`](InstanceCache::close) returns nothing more is published, and subscribers'
//!   [`next`](Subscription::next) ends after the last state.
//!
//! ```
//! use sdkit_core::{Instance, InstanceCache};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let cache = InstanceCache::new();
//! let mut sub = cache.subscribe();
//! cache.update(vec![Instance::from_addr("10.0.0.2:80"), Instance::from_addr("10.0.0.1:80")]);
//! let snapshot = sub.next().await.unwrap();
//! assert_eq!(snapshot.instances()[0].addr(), "10.0.0.1:80");
//!
//! // The same set again is not a change.
//! assert!(!cache.update(vec![Instance::from_addr("10.0.0.1:80"), Instance::from_addr("10.0.0.2:80")]));
//! # }
//! ```

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use crate::error::NoInstancesYet;
use crate::event::{Event, Snapshot, SourceError};
use crate::instance::Instance;
use crate::metrics::{InstancerMetrics, Labels};

type Slot = Option<Arc<Snapshot>>;

/// Sorted, de-duplicated, latest-value fan-out of a service's instance set. Cheap to clone:
/// clones share the same state.
#[derive(Clone, Debug)]
pub struct InstanceCache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Publishers serialise on this lock (subscribers never take it); `None` once closed.
    tx: Mutex<Option<watch::Sender<Slot>>>,
    /// A receiver kept to hand out new subscriptions, also after close.
    rx: watch::Receiver<Slot>,
    /// The service and backend, passed on to subscriptions (and so to endpointers).
    labels: Labels,
    metrics: InstancerMetrics,
}

impl Default for InstanceCache {
    fn default() -> Self {
        Self::new()
    }
}

impl InstanceCache {
    /// An empty cache: subscribers wait until the first event.
    pub fn new() -> Self {
        Self::labelled(Labels::default())
    }

    /// An empty cache whose [metrics](crate::metrics) (and those of the stages built on it)
    /// carry `labels`.
    pub fn labelled(labels: Labels) -> Self {
        let (tx, rx) = watch::channel(None);
        let metrics = InstancerMetrics::new(&labels);
        InstanceCache {
            inner: Arc::new(Inner {
                tx: Mutex::new(Some(tx)),
                rx,
                labels,
                metrics,
            }),
        }
    }

    /// The labels of this cache's metrics.
    pub fn labels(&self) -> &Labels {
        &self.inner.labels
    }

    fn sender(&self) -> MutexGuard<'_, Option<watch::Sender<Slot>>> {
        // A panic while holding this lock cannot leave the channel inconsistent.
        self.inner.tx.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes an event; returns `true` when subscribers were sent a new state.
    pub fn publish(&self, event: Event) -> bool {
        match event {
            Event::Instances(instances) => self.update(instances),
            Event::Error(error) => self.error(error),
        }
    }

    /// Publishes a complete instance set (sorted and de-duplicated here); returns `true` when it
    /// differs from the current state.
    pub fn update(&self, mut instances: Vec<Instance>) -> bool {
        normalize(&mut instances);
        let guard = self.sender();
        let Some(tx) = guard.as_ref() else {
            return false;
        };
        let unchanged = matches!(
            &*tx.borrow(),
            Some(current) if current.error.is_none() && *current.instances == *instances
        );
        self.inner.metrics.good(instances.len(), !unchanged);
        if unchanged {
            return false;
        }
        tx.send_replace(Some(Arc::new(Snapshot {
            instances: Arc::new(instances),
            error: None,
        })));
        true
    }

    /// Marks the current set stale with `error` (the instances are kept); returns `true` when
    /// subscribers were sent a new state.
    pub fn error(&self, error: SourceError) -> bool {
        let guard = self.sender();
        let Some(tx) = guard.as_ref() else {
            return false;
        };
        self.inner.metrics.error();
        let instances = match &*tx.borrow() {
            Some(current) if current.error.as_ref() == Some(&error) => return false,
            Some(current) => Arc::clone(&current.instances),
            None => Arc::new(Vec::new()),
        };
        tx.send_replace(Some(Arc::new(Snapshot {
            instances,
            error: Some(error),
        })));
        true
    }

    /// A subscription that yields the current state at once (if there is one), then each new
    /// distinct state.
    pub fn subscribe(&self) -> Subscription {
        let mut rx = self.inner.rx.clone();
        rx.mark_changed();
        Subscription {
            rx,
            labels: self.inner.labels.clone(),
        }
    }

    /// The current state, if any event was published.
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.inner.rx.borrow().clone()
    }

    /// Stops publishing: once this returns, no state is published any more, and subscriptions end
    /// after yielding the last state. Idempotent.
    pub fn close(&self) {
        drop(self.sender().take());
    }

    /// `true` once [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.sender().is_none()
    }

    /// The number of live subscriptions (plus the cache's own receiver).
    pub fn receiver_count(&self) -> usize {
        self.sender().as_ref().map_or(0, |tx| tx.receiver_count())
    }
}

/// Sorts by identity and collapses duplicates, keeping the first of each identity.
fn normalize(instances: &mut Vec<Instance>) {
    // Stable sort by identity, so "first" means first in the order the backend gave.
    if !instances.is_sorted_by(|a, b| a.id() < b.id()) {
        instances.sort_by(|a, b| a.id().cmp(b.id()));
        instances.dedup_by(|later, earlier| later.id() == earlier.id());
    }
}

/// [`Subscription::wait_for`] gave up: no state satisfied the condition in time.
#[derive(Debug, Clone)]
pub struct NotReached {
    /// How long the caller waited.
    pub waited: Duration,
    /// `true` when the source stopped before the deadline.
    pub stopped: bool,
    /// The last state seen, if any.
    pub last: Option<Arc<Snapshot>>,
}

impl std::fmt::Display for NotReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.stopped {
            f.write_str("the source stopped before the awaited state")?;
        } else {
            write!(
                f,
                "the awaited state did not arrive within {:?}",
                self.waited
            )?;
        }
        match &self.last {
            None => f.write_str("; nothing was published"),
            Some(s) => {
                let ids: Vec<&str> = s.instances().iter().map(Instance::id).collect();
                write!(f, "; last: {ids:?}")?;
                match s.error() {
                    Some(e) => write!(f, " (source error: {e})"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl std::error::Error for NotReached {}

/// A subscriber's view of an [`InstanceCache`]: the current state first, then each new state.
///
/// A slow subscriber never holds anybody up: it skips intermediate states and sees the newest.
#[derive(Debug)]
pub struct Subscription {
    rx: watch::Receiver<Slot>,
    labels: Labels,
}

impl Subscription {
    /// The labels of the instancer's [metrics](crate::metrics).
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// The next state not yet seen: the current one on the first call (waiting for the first
    /// event if there is none yet), then each new state. `None` once the source is stopped and
    /// the last state was seen.
    pub async fn next(&mut self) -> Option<Arc<Snapshot>> {
        loop {
            self.rx.changed().await.ok()?;
            if let Some(snapshot) = self.rx.borrow_and_update().clone() {
                return Some(snapshot);
            }
        }
    }

    /// The current state without waiting (it does not count as seen).
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.rx.borrow().clone()
    }

    /// Waits at most `timeout` for a first state and returns it (marking it seen, so that
    /// [`next`](Self::next) then yields the following state).
    ///
    /// # Errors
    ///
    /// [`NoInstancesYet`] when no state arrived in time or the source stopped before publishing.
    pub async fn ready(&mut self, timeout: Duration) -> Result<Arc<Snapshot>, NoInstancesYet> {
        // The state returned counts as seen: a later `next` waits for a newer one.
        if let Some(current) = self.rx.borrow_and_update().clone() {
            return Ok(current);
        }
        match tokio::time::timeout(timeout, self.next()).await {
            Ok(Some(snapshot)) => Ok(snapshot),
            Ok(None) | Err(_) => Err(NoInstancesYet { waited: timeout }),
        }
    }

    /// Waits at most `timeout` until the state satisfies `pred` — the current state first, then
    /// each new one — and returns that state.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sdkit_core::{Instance, InstanceCache};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = InstanceCache::new();
    /// let mut sub = cache.subscribe();
    /// cache.update(vec![Instance::from_addr("10.0.0.1:80")]);
    /// let two = tokio::spawn(async move { sub.wait_for(Duration::from_secs(5), |s| s.len() == 2).await });
    /// cache.update(vec![Instance::from_addr("10.0.0.1:80"), Instance::from_addr("10.0.0.2:80")]);
    /// assert_eq!(two.await.unwrap().unwrap().len(), 2);
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`NotReached`] with the last state seen, when the deadline passes or the source stops
    /// first.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&Snapshot) -> bool,
    ) -> Result<Arc<Snapshot>, NotReached> {
        let mut last = self.rx.borrow_and_update().clone();
        if let Some(current) = &last
            && pred(current)
        {
            return Ok(Arc::clone(current));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.next()).await {
                Ok(Some(snapshot)) if pred(&snapshot) => return Ok(snapshot),
                Ok(Some(snapshot)) => last = Some(snapshot),
                Ok(None) => {
                    return Err(NotReached {
                        waited: timeout,
                        stopped: true,
                        last,
                    });
                }
                Err(_) => {
                    return Err(NotReached {
                        waited: timeout,
                        stopped: false,
                        last,
                    });
                }
            }
        }
    }

    /// Turns the subscription into a [`Stream`](futures_util::Stream) of states.
    pub fn into_stream(self) -> impl futures_util::Stream<Item = Arc<Snapshot>> + Send + Unpin {
        Box::pin(futures_util::stream::unfold(self, |mut sub| async move {
            sub.next().await.map(|snapshot| (snapshot, sub))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: &str) -> Instance {
        Instance::new(id, format!("{id}:80"))
    }

    #[test]
    fn normalize_sorts_and_collapses_keeping_first() {
        let mut v = vec![
            inst("b"),
            Instance::new("a", "first:1"),
            Instance::new("a", "second:1"),
        ];
        normalize(&mut v);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].addr(), "first:1");
        assert_eq!(v[1].id(), "b");
    }

    #[test]
    fn close_is_idempotent_and_final() {
        let cache = InstanceCache::new();
        assert!(cache.update(vec![inst("a")]));
        cache.close();
        cache.close();
        assert!(cache.is_closed());
        assert!(!cache.update(vec![inst("b")]));
        assert!(!cache.error(SourceError::new("x")));
        assert_eq!(cache.current().unwrap().instances()[0].id(), "a");
    }
}
