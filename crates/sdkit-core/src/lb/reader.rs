//! A per-thread cached view of an [`EndpointSet`]: the pick path's snapshot load.
//!
//! Each balancer owns one [`Reader`]. For each thread that picks, the reader keeps (in a
//! `thread_local::ThreadLocal` owned by the reader, so it is freed with the balancer) an owned
//! handle to the snapshot it last used, the set's version at that time, the balancer's table
//! derived from that snapshot, and a little per-thread scratch ([`Local`]: a round-robin
//! position, a random state). A pick on an unchanged set costs one atomic load (the version)
//! and a lookup by thread; no reference count is touched and nothing shared is written.
//!
//! A caller that owns a handle (a [`BalancedService`](crate::BalancedService), a loop that
//! picks) can keep the same view itself, in a [`PickCache`]: then a pick on an unchanged set
//! costs the version load and a compare — no lookup by thread, no `RefCell` — which is what a
//! bare slice index costs. The cache fills from this thread's view (one reference count), so a
//! handle never loads the snapshot from the set itself.
//!
//! Why it is sound without `unsafe` here: every cached snapshot (per thread or per handle) is an
//! owned `Arc`, so it can never be freed or torn while a pick reads it; at worst it is stale
//! until the pick checks the version, and a snapshot loaded after reading version `v` is at
//! least as new as `v`. A thread that stops picking keeps its last snapshot until the balancer
//! is dropped; a handle keeps its own until it is dropped or picks again.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use thread_local::ThreadLocal;

use super::context::{NO_CONTEXT, PickContext};
use super::guard::Picked;
use super::stable_hash::mix;
use crate::endpoint::Endpoints;
use crate::endpoint_set::EndpointSet;
use crate::error::NoEndpoints;
use crate::feedback::state::readiness_epoch;

/// Per-thread, per-reader scratch.
pub(crate) struct Local {
    /// Round-robin position (thread `t` starts at `t`).
    pub(crate) counter: u32,
    /// Random state (see [`Local::next_u64`]).
    pub(crate) rng: u64,
    /// Set once this snapshot has no endpoint left in slow start.
    pub(crate) warm: bool,
    /// A table with options of its own (zone groups, a subset, a Maglev table of a chosen
    /// size) cached for this snapshot by `snapshot_cache`; cleared on every new snapshot.
    pub(crate) derived: Option<Arc<dyn Any + Send + Sync>>,
    ready_epoch: u64,
    ready_count: usize,
}

impl Local {
    /// The scratch of a new [`PickCache`] filled from this thread's: the handle takes this
    /// thread's next round-robin position (so handles filled one after another start on
    /// different endpoints) and a random state of its own drawn from this thread's sequence.
    fn for_handle(&mut self) -> Local {
        let counter = self.counter;
        self.counter = counter.wrapping_add(1);
        Local {
            counter,
            rng: self.next_u64(),
            warm: false,
            derived: None,
            ready_epoch: u64::MAX,
            ready_count: 0,
        }
    }

    fn new(thread: u32, seed: u64) -> Self {
        Local {
            counter: thread,
            rng: if thread == 0 {
                seed
            } else {
                mix(seed ^ mix(u64::from(thread)))
            },
            warm: false,
            derived: None,
            ready_epoch: u64::MAX,
            ready_count: 0,
        }
    }

    fn new_snapshot(&mut self) {
        self.warm = false;
        self.derived = None;
        self.ready_epoch = u64::MAX;
    }

    /// The next 64 random bits: wyrand (Wang Yi's generator from wyhash: a Weyl sequence
    /// through one 64×64→128-bit multiply, where SplitMix64 takes two multiplies and three
    /// shifts; it passes BigCrush and PractRand, and a balancer's draw is on every pick).
    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.rng) * u128::from(self.rng ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// A uniform index below `len` (Lemire's multiply-shift; `len` > 0).
    #[inline]
    pub(crate) fn below(&mut self, len: usize) -> usize {
        ((u128::from(self.next_u64()) * len as u128) >> 64) as usize
    }

    /// A uniform float in [0, 1).
    #[inline]
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// How many endpoints of `endpoints` are ready, recounted only when readiness moved.
    pub(crate) fn ready_count<S>(&mut self, endpoints: &Endpoints<S>) -> usize {
        let epoch = readiness_epoch();
        if self.ready_epoch != epoch {
            self.ready_count = endpoints.iter().filter(|e| e.state().is_ready()).count();
            self.ready_epoch = epoch;
        }
        self.ready_count
    }
}

/// One thread's view.
struct Slot<S, T> {
    version: u64,
    endpoints: Arc<Endpoints<S>>,
    table: Option<Arc<T>>,
    local: Local,
}

impl<S, T> Slot<S, T> {
    /// Moves to the set's current snapshot unless `version` (just read) is the cached one.
    #[inline]
    fn refresh(&mut self, set: &EndpointSet<S>, version: u64) {
        if self.version != version {
            self.endpoints = set.snapshot();
            self.version = version;
            self.table = None;
            self.local.new_snapshot();
        }
    }
}

/// A balancer's cached view of an [`EndpointSet`], with its per-snapshot table of type `T`
/// (`()` for balancers without one). See the [module docs](self).
pub(crate) struct Reader<S: Send + Sync, T: Send + Sync = ()> {
    set: EndpointSet<S>,
    slots: ThreadLocal<RefCell<Slot<S, T>>>,
    build: fn(&Endpoints<S>) -> T,
    threads: AtomicU32,
    seed: u64,
}

impl<S: Send + Sync, T: Send + Sync> fmt::Debug for Reader<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.set, f)
    }
}

fn no_table<S>(_: &Endpoints<S>) {}

impl<S: Send + Sync + 'static> Reader<S, ()> {
    /// A reader of `set` without a derived table; `seed` seeds the per-thread random states.
    pub(crate) fn new(set: EndpointSet<S>, seed: u64) -> Self {
        Reader::with_table(set, seed, no_table::<S>)
    }
}

impl<S: Send + Sync + 'static, T: Any + Send + Sync> Reader<S, T> {
    /// A reader of `set` whose balancer derives a `T` from each snapshot with `build` (built
    /// once per snapshot, shared by every thread and every balancer of that kind).
    pub(crate) fn with_table(
        set: EndpointSet<S>,
        seed: u64,
        build: fn(&Endpoints<S>) -> T,
    ) -> Self {
        Reader {
            set,
            slots: ThreadLocal::new(),
            build,
            threads: AtomicU32::new(0),
            seed,
        }
    }

    /// The set read.
    pub(crate) fn set(&self) -> &EndpointSet<S> {
        &self.set
    }

    fn fresh(&self) -> Slot<S, T> {
        let version = self.set.version();
        Slot {
            version,
            endpoints: self.set.snapshot(),
            table: None,
            local: Local::new(self.threads.fetch_add(1, Ordering::Relaxed), self.seed),
        }
    }

    /// Runs `f` on the current snapshot, its table and this thread's scratch.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&Endpoints<S>, &T, &mut Local) -> R) -> R {
        let version = self.set.version();
        let cell = self.slots.get_or(|| RefCell::new(self.fresh()));
        // Re-entered on this thread (a service's `clone` picking from this balancer): a
        // one-off view.
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return self.uncached(f);
        };
        let slot = &mut *slot;
        slot.refresh(&self.set, version);
        let table = match &slot.table {
            Some(table) => table,
            None => slot.table.insert(slot.endpoints.derived(self.build)),
        };
        f(&slot.endpoints, table, &mut slot.local)
    }

    #[cold]
    fn uncached<R>(&self, f: impl FnOnce(&Endpoints<S>, &T, &mut Local) -> R) -> R {
        let mut slot = self.fresh();
        let table = slot.endpoints.derived(self.build);
        f(&slot.endpoints, &table, &mut slot.local)
    }
}

impl<S: Send + Sync + 'static> Reader<S, ()> {
    /// Runs `f` on the current snapshot and `cache`'s scratch: the pick path of a caller that
    /// owns a [`PickCache`]. An unchanged set costs the version load and a compare.
    #[inline]
    pub(crate) fn with_cache<R>(
        &self,
        cache: &mut PickCache<S>,
        f: impl FnOnce(&Endpoints<S>, &mut Local) -> R,
    ) -> R {
        let version = self.set.version();
        let fresh = matches!(&cache.view,
            Some(view) if view.version == version && view.set.same_set(&self.set));
        // The slow paths return nothing: `f` runs on one path only, so its result (a `Picked`
        // with its guard) stays in registers.
        if (fresh || self.refill(cache))
            && let Some(view) = &mut cache.view
        {
            return f(&view.endpoints, &mut view.local);
        }
        self.with_thread(f)
    }

    /// Fills `cache` from this thread's view, or refreshes it when stale (keeping its
    /// position); `false` when the pick is to go through this thread's view instead: on the
    /// cache's first pick (a handle cloned per request and used once costs what a pick without
    /// a cache costs), or when this thread's view is in use (a re-entrant pick).
    #[cold]
    #[inline(never)]
    fn refill(&self, cache: &mut PickCache<S>) -> bool {
        if !std::mem::replace(&mut cache.used, true) {
            return false;
        }
        let version = self.set.version();
        let cell = self.slots.get_or(|| RefCell::new(self.fresh()));
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return false;
        };
        slot.refresh(&self.set, version);
        let (set, local) = match cache.view.take() {
            Some(mut view) if view.set.same_set(&self.set) => {
                view.local.new_snapshot();
                (view.set, view.local)
            }
            _ => (self.set.clone(), slot.local.for_handle()),
        };
        cache.view = Some(View {
            set,
            version: slot.version,
            endpoints: Arc::clone(&slot.endpoints),
            local,
        });
        true
    }

    #[cold]
    #[inline(never)]
    fn with_thread<R>(&self, f: impl FnOnce(&Endpoints<S>, &mut Local) -> R) -> R {
        self.with(|endpoints, (), local| f(endpoints, local))
    }
}

/// The picks of a balancer without a table that chooses an index into a non-empty snapshot
/// (round-robin, random): through this thread's view or a caller's cache, with or without a
/// context.
impl<S: Clone + Send + Sync + 'static> Reader<S, ()> {
    #[inline]
    pub(crate) fn pick(
        &self,
        index: impl FnOnce(&Endpoints<S>, &mut Local, &PickContext<'_>) -> usize,
    ) -> Result<S, NoEndpoints> {
        self.with(|endpoints, (), local| service(endpoints, local, index))
    }

    #[inline]
    pub(crate) fn pick_with(
        &self,
        cx: &PickContext<'_>,
        index: impl FnOnce(&Endpoints<S>, &mut Local, &PickContext<'_>) -> usize,
    ) -> Result<Picked<S>, NoEndpoints> {
        self.with(|endpoints, (), local| picked(endpoints, local, cx, index))
    }

    #[inline]
    pub(crate) fn pick_cached(
        &self,
        cache: &mut PickCache<S>,
        index: impl FnOnce(&Endpoints<S>, &mut Local, &PickContext<'_>) -> usize,
    ) -> Result<S, NoEndpoints> {
        self.with_cache(cache, |endpoints, local| service(endpoints, local, index))
    }

    #[inline]
    pub(crate) fn pick_with_cached(
        &self,
        cache: &mut PickCache<S>,
        cx: &PickContext<'_>,
        index: impl FnOnce(&Endpoints<S>, &mut Local, &PickContext<'_>) -> usize,
    ) -> Result<Picked<S>, NoEndpoints> {
        self.with_cache(cache, |endpoints, local| {
            picked(endpoints, local, cx, index)
        })
    }
}

/// The service at the index chosen without a context (nothing avoided).
#[inline]
fn service<S: Clone>(
    endpoints: &Endpoints<S>,
    local: &mut Local,
    index: impl FnOnce(&Endpoints<S>, &mut Local, &PickContext<'_>) -> usize,
) -> Result<S, NoEndpoints> {
    if endpoints.is_empty() {
        return Err(NoEndpoints);
    }
    let i = index(endpoints, local, NO_CONTEXT);
    Ok(endpoints.as_slice()[i].service().clone())
}

/// The endpoint at the index chosen for `cx`, with its guard.
#[inline]
fn picked<S: Clone>(
    endpoints: &Endpoints<S>,
    local: &mut Local,
    cx: &PickContext<'_>,
    index: impl FnOnce(&Endpoints<S>, &mut Local, &PickContext<'_>) -> usize,
) -> Result<Picked<S>, NoEndpoints> {
    if endpoints.is_empty() {
        return Err(NoEndpoints);
    }
    let i = index(endpoints, local, cx);
    Ok(Picked::reporting(&endpoints.as_slice()[i]))
}

/// A caller-owned cache for picks from round-robin and random balancers, for callers that own
/// a handle: [`Balancer::pick_cached`](super::Balancer::pick_cached) and
/// [`pick_with_cached`](super::Balancer::pick_with_cached) with it cost what indexing a slice
/// costs while the set is unchanged (one atomic load), where [`pick`](super::Balancer::pick)
/// also looks up the calling thread's view. [`BalancedService`](crate::BalancedService) keeps
/// one per handle.
///
/// The cache holds the snapshot it last picked from (an owned handle: it can never be freed
/// or torn under a pick) and its own round-robin position and random state, so picks through
/// it write nothing shared. It fills on its second pick (a handle used once costs no more than
/// a plain pick) and follows every update of the set. Cloning gives an empty cache (a clone
/// starts at a new position rather than repeating the original's picks). Balancers without a
/// cached path (weighted, least-loaded, hashing) ignore it.
///
/// ```
/// use sdkit_core::lb::{Balancer, PickCache, RoundRobin};
/// use sdkit_core::{EndpointSet, Instance};
///
/// let set = EndpointSet::fixed([
///     (Instance::from_addr("10.0.0.1:80"), "a"),
///     (Instance::from_addr("10.0.0.2:80"), "b"),
/// ]);
/// let rr = RoundRobin::new(set);
/// let mut cache = PickCache::new();
/// let picks: Vec<_> = (0..4).map(|_| rr.pick_cached(&mut cache).unwrap()).collect();
/// assert_eq!(picks, ["a", "b", "a", "b"]);
/// ```
pub struct PickCache<S> {
    view: Option<View<S>>,
    /// Set by the first pick through this cache.
    used: bool,
}

/// A handle's view: the set it belongs to (kept alive, so it cannot be mistaken for another),
/// the version read before loading the snapshot, the snapshot, the handle's scratch.
struct View<S> {
    set: EndpointSet<S>,
    version: u64,
    endpoints: Arc<Endpoints<S>>,
    local: Local,
}

impl<S> PickCache<S> {
    /// An empty cache.
    pub const fn new() -> Self {
        PickCache {
            view: None,
            used: false,
        }
    }
}

impl<S> Default for PickCache<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Clone for PickCache<S> {
    /// An empty cache: see the [type docs](PickCache).
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<S> fmt::Debug for PickCache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PickCache")
            .field("version", &self.view.as_ref().map(|v| v.version))
            .finish_non_exhaustive()
    }
}
