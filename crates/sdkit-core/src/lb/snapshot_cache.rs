//! A table derived from one endpoint snapshot with a balancer's own options (a Maglev table of
//! a chosen size, a subset for a client index, zone groups): built once per snapshot and per
//! balancer, shared by its threads, and cached per thread in the reader's scratch so that a pick
//! on an unchanged set touches no shared memory.
//!
//! (`Endpoints::derived` shares one table per type across every balancer of a snapshot, which
//! is right for tables that depend on the snapshot alone; these depend on options too.)

use std::any::Any;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwapOption;

use super::reader::Local;
use crate::endpoint::Endpoints;
use crate::endpoint_set::EndpointSet;

struct Built<S, T> {
    /// Held so that the snapshot's address cannot be reused while it keys the table.
    snapshot: Arc<Endpoints<S>>,
    table: Arc<T>,
}

/// See the [module docs](self).
pub(crate) struct SnapshotCache<S, T> {
    current: ArcSwapOption<Built<S, T>>,
    /// Serialises builds so that a burst of picks after an update builds once.
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

impl<S, T: Any + Send + Sync> SnapshotCache<S, T> {
    /// Runs `f` with the table for `endpoints` (the snapshot the reader handed out for `set`)
    /// and this thread's scratch. `build` gets the previous table, if any, to carry options
    /// over (a table size kept with hysteresis).
    #[inline]
    pub(crate) fn with<R>(
        &self,
        set: &EndpointSet<S>,
        endpoints: &Endpoints<S>,
        local: &mut Local,
        build: impl FnOnce(&Endpoints<S>, Option<&T>) -> T,
        f: impl FnOnce(&T, &mut Local) -> R,
    ) -> R {
        // The reader clears `derived` whenever it moves to a new snapshot.
        let table = match local.derived.take().map(|t| t.downcast::<T>()) {
            Some(Ok(table)) => table,
            _ => self.table_for(set, endpoints, build),
        };
        let result = f(&table, local);
        local.derived = Some(table);
        result
    }

    #[cold]
    fn table_for(
        &self,
        set: &EndpointSet<S>,
        endpoints: &Endpoints<S>,
        build: impl FnOnce(&Endpoints<S>, Option<&T>) -> T,
    ) -> Arc<T> {
        let same = |built: &Built<S, T>| std::ptr::eq(Arc::as_ptr(&built.snapshot), endpoints);
        if let Some(built) = self.current.load().as_ref().filter(|b| same(b)) {
            return Arc::clone(&built.table);
        }
        // A poisoned lock only means another builder panicked; the cache itself is fine.
        let _building = self.building.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = self.current.load_full();
        if let Some(built) = previous.as_ref().filter(|b| same(b)) {
            return Arc::clone(&built.table);
        }
        let table = Arc::new(build(endpoints, previous.as_ref().map(|b| &*b.table)));
        // Share it when `endpoints` is still the set's current snapshot (the usual case); a
        // thread that raced an update keeps its table to itself.
        let snapshot = set.snapshot();
        if std::ptr::eq(Arc::as_ptr(&snapshot), endpoints) {
            self.current.store(Some(Arc::new(Built {
                snapshot,
                table: Arc::clone(&table),
            })));
        }
        table
    }
}
