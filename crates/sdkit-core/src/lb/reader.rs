//! A per-thread cached view of an [`EndpointSet`]: the pick path's snapshot load.
//!
//! Each balancer owns one [`Reader`]. For each thread that picks, the reader keeps (in a
//! `thread_local::ThreadLocal` owned by the reader, so it is freed with the balancer) an owned
//! handle to the snapshot it last used, the set's version at that time, the balancer's table
//! derived from that snapshot, and a little per-thread scratch ([`Local`]: a round-robin
//! position, a random state). A pick on an unchanged set costs one atomic load (the version)
//! and a lookup by thread; no reference count is touched and nothing shared is written.
//!
//! Why it is sound without `unsafe` here: the cached snapshot is an owned `Arc`, so it can
//! never be freed or torn while a pick reads it; at worst it is stale until the pick checks the
//! version, and a snapshot loaded after reading version `v` is at least as new as `v`. A thread
//! that stops picking keeps its last snapshot until the balancer is dropped.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use thread_local::ThreadLocal;

use crate::endpoint::Endpoints;
use crate::endpoint_set::EndpointSet;
use crate::feedback::state::readiness_epoch;

/// Per-thread, per-reader scratch.
pub(crate) struct Local {
    /// Round-robin position (thread `t` starts at `t`).
    pub(crate) counter: u32,
    /// SplitMix64 state.
    pub(crate) rng: u64,
    /// Set once this snapshot has no endpoint left in slow start.
    pub(crate) warm: bool,
    /// A table with options of its own (zone groups, a subset, a Maglev table of a chosen
    /// size) cached for this snapshot by `snapshot_cache`; cleared on every new snapshot.
    pub(crate) derived: Option<Arc<dyn Any + Send + Sync>>,
    ready_epoch: u64,
    ready_count: usize,
}

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function.
#[inline]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Local {
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

    /// The next 64 random bits (SplitMix64).
    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(GOLDEN_GAMMA);
        mix(self.rng)
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
            self.ready_count = endpoints.iter().filter(|e| e.state.is_ready()).count();
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
        if slot.version != version {
            slot.endpoints = self.set.snapshot();
            slot.version = version;
            slot.table = None;
            slot.local.new_snapshot();
        }
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
