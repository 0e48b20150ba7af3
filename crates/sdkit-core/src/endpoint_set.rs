//! [`EndpointSet`]: the lock-free, cheaply cloned view of the current [`Endpoints`] snapshot.
//!
//! A publisher (the [`Endpointer`](crate::Endpointer)) swaps in whole snapshots; readers load
//! the current one without locks. Besides the snapshot itself the set keeps a version counter
//! that readers check with a single atomic load, so a reader that caches a snapshot (as the
//! balancers do, per thread) pays one load per pick while the set is unchanged.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::endpoint::{Endpoint, Endpoints};
use crate::instance::Instance;
use crate::metrics::Labels;

struct Shared<S> {
    current: ArcSwap<Endpoints<S>>,
    /// Serialises publishers (never pickers); `true` once closed by stop.
    closed: Mutex<bool>,
    /// Counts published snapshots; 0 until the first. Stored (release) after the swap.
    version: AtomicU64,
    /// The same count, for async waiters.
    notify: watch::Sender<u64>,
    /// The labels of the [metrics](crate::metrics) of the stages built on this set.
    labels: Labels,
}

/// A cheap, cloneable, lock-free view of an endpointer's current endpoints: what balancers hold.
pub struct EndpointSet<S> {
    shared: Arc<Shared<S>>,
}

impl<S> Clone for EndpointSet<S> {
    fn clone(&self) -> Self {
        EndpointSet {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S> fmt::Debug for EndpointSet<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointSet")
            .field("len", &self.shared.current.load().len())
            .field("version", &self.version())
            .finish()
    }
}

impl<S> EndpointSet<S> {
    pub(crate) fn new() -> Self {
        Self::labelled(Labels::default())
    }

    pub(crate) fn labelled(labels: Labels) -> Self {
        EndpointSet {
            shared: Arc::new(Shared {
                current: ArcSwap::from_pointee(Endpoints::empty()),
                closed: Mutex::new(false),
                version: AtomicU64::new(0),
                notify: watch::channel(0).0,
                labels,
            }),
        }
    }

    /// A set that never changes (tests, benchmarks, `static` use without an instancer).
    /// Duplicate identities keep the first.
    pub fn fixed(endpoints: impl IntoIterator<Item = (Instance, S)>) -> Self {
        Self::from_endpoints(
            endpoints
                .into_iter()
                .map(|(instance, service)| Endpoint::new(instance, service)),
        )
    }

    /// A set that never changes, from ready-made endpoints (for example clones of endpoints
    /// from another set, which keep their [state](Endpoint::state)).
    pub fn from_endpoints(endpoints: impl IntoIterator<Item = Endpoint<S>>) -> Self {
        let set = EndpointSet::new();
        let mut items: Vec<Endpoint<S>> = endpoints.into_iter().collect();
        items.sort_by(|a, b| a.instance().id().cmp(b.instance().id()));
        items.dedup_by(|later, earlier| later.instance().id() == earlier.instance().id());
        drop(set.publish(Endpoints::new(items, None)));
        set
    }

    /// The labels of the [metrics](crate::metrics) of the balancers and outlier detector built
    /// on this set (the instancer's, when an endpointer made it).
    pub fn labels(&self) -> &Labels {
        &self.shared.labels
    }

    /// The current snapshot, without touching a reference count.
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Endpoints<S>>> {
        self.shared.current.load()
    }

    /// The current snapshot as an owned handle.
    pub fn snapshot(&self) -> Arc<Endpoints<S>> {
        self.shared.current.load_full()
    }

    /// How many snapshots were published (0 before the first): one atomic load. A snapshot
    /// loaded after reading version `v` is at least as new as `v`.
    #[inline]
    pub fn version(&self) -> u64 {
        self.shared.version.load(Ordering::Acquire)
    }

    /// `true` when both handles view the same set.
    pub fn same_set(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Resolves once a snapshot newer than `version` (from [`version`](Self::version)) is
    /// published — at once if one already was, so no change between reading the version and
    /// waiting is lost — or never, once the endpointer is gone.
    ///
    /// ```
    /// # use sdkit_core::{EndpointSet, Instance};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let set = EndpointSet::fixed([(Instance::from_addr("10.0.0.1:80"), ())]);
    /// let seen = set.version();
    /// // … look at set.load() …
    /// # let seen = seen - 1;
    /// set.changed_since(seen).await; // returns at once: a newer snapshot exists
    /// # }
    /// ```
    pub async fn changed_since(&self, version: u64) {
        let mut rx = self.shared.notify.subscribe();
        if rx.wait_for(|v| *v > version).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves once the set holds at least one endpoint (at once if it does), or never, once
    /// the endpointer is gone.
    pub async fn non_empty(&self) {
        let mut rx = self.shared.notify.subscribe();
        if rx.wait_for(|_| !self.load().is_empty()).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves once the first snapshot is published (at once if it was).
    pub(crate) async fn first_published(&self) {
        let mut rx = self.shared.notify.subscribe();
        if rx.wait_for(|v| *v > 0).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Publishes a snapshot unless closed; returns the previous one, to drop outside the
    /// publishers' lock (pickers never take it).
    pub(crate) fn publish(&self, endpoints: Endpoints<S>) -> Option<Arc<Endpoints<S>>> {
        self.replace(endpoints, false)
    }

    /// Publishes an empty set and refuses every later publication.
    pub(crate) fn close(&self) {
        drop(self.replace(Endpoints::empty(), true));
    }

    fn replace(&self, endpoints: Endpoints<S>, close: bool) -> Option<Arc<Endpoints<S>>> {
        let previous = {
            let mut closed = self
                .shared
                .closed
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if *closed {
                return None;
            }
            *closed = close;
            let previous = self.shared.current.swap(Arc::new(endpoints));
            // Release after the swap: a reader that sees the new version then loads a snapshot
            // at least this new.
            let version = self.shared.version.fetch_add(1, Ordering::AcqRel) + 1;
            self.shared.notify.send_replace(version);
            previous
        };
        Some(previous)
    }
}
