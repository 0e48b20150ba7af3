//! A value derived from one endpoint snapshot (a hash table, a subset, zone groups), built
//! once per snapshot and read without locks on every pick.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use crate::endpointer::{EndpointSet, Endpoints};

/// The derived value with the snapshot it was built from. Holding the snapshot keeps its
/// address from being reused, so pointer identity is a sound version check.
pub(crate) struct Derived<S, T> {
    snapshot: Arc<Endpoints<S>>,
    pub(crate) value: T,
}

/// See the [module docs](self).
pub(crate) struct SnapshotCache<S, T> {
    current: ArcSwapOption<Derived<S, T>>,
    /// Serialises rebuilds so that a burst of picks after an update builds once.
    building: Mutex<()>,
}

impl<S, T> std::fmt::Debug for SnapshotCache<S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotCache")
            .field("built", &self.current.load().is_some())
            .finish()
    }
}

impl<S, T> Default for SnapshotCache<S, T> {
    fn default() -> Self {
        SnapshotCache {
            current: ArcSwapOption::empty(),
            building: Mutex::new(()),
        }
    }
}

impl<S, T> Derived<S, T> {
    /// The snapshot the value was built from: pick from it, not from a fresh load, so that
    /// value and endpoints always agree.
    #[inline]
    pub(crate) fn endpoints(&self) -> &Endpoints<S> {
        &self.snapshot
    }
}

impl<S, T> SnapshotCache<S, T> {
    /// The value for the set's current snapshot, built by `build` (given the previous value,
    /// if any) when the cached one belongs to an older snapshot. The fast path is two atomic
    /// loads and a pointer comparison; a rebuild always uses the newest snapshot, so picks
    /// racing an update never rebuild for an older one.
    #[inline]
    pub(crate) fn get(
        &self,
        set: &EndpointSet<S>,
        build: impl FnOnce(&Endpoints<S>, Option<&T>) -> T,
    ) -> arc_swap::Guard<Option<Arc<Derived<S, T>>>> {
        let current = self.current.load();
        if let Some(derived) = current.as_ref() {
            if Arc::ptr_eq(&derived.snapshot, &set.load()) {
                return current;
            }
        }
        drop(current);
        self.rebuild(set, build)
    }

    #[cold]
    fn rebuild(
        &self,
        set: &EndpointSet<S>,
        build: impl FnOnce(&Endpoints<S>, Option<&T>) -> T,
    ) -> arc_swap::Guard<Option<Arc<Derived<S, T>>>> {
        // A poisoned lock only means another builder panicked; the cache itself is fine.
        let _building = self
            .building
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let snapshot = set.snapshot();
        let previous = self.current.load_full();
        if let Some(derived) = previous.as_ref() {
            if Arc::ptr_eq(&derived.snapshot, &snapshot) {
                return self.current.load();
            }
        }
        let value = build(&snapshot, previous.as_ref().map(|d| &d.value));
        self.current
            .store(Some(Arc::new(Derived { snapshot, value })));
        self.current.load()
    }
}
