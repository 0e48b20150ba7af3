//! A per-thread cached view of an [`EndpointSet`]: the pick path's snapshot load.
//!
//! Each balancer owns one [`Reader`]. On each thread the reader keeps, in a small thread-local
//! table, an owned handle to the snapshot it last used together with the set's version at
//! that time, and a little per-thread scratch ([`Local`]: a round-robin counter, a random
//! state, the balancer's table derived from the snapshot). A pick on an unchanged set costs
//! one atomic load (the version) and a lookup in that table; no reference count is touched
//! and nothing shared is written.
//!
//! Why it is sound without `unsafe`: the cached snapshot is an owned `Arc`, so it can never be
//! freed or torn while a pick reads it; at worst it is stale until the pick checks the version,
//! and a snapshot loaded after reading version `v` is at least as new as `v`.
//!
//! Memory: a thread keeps the snapshot of each reader it picked from until the version moves
//! and it picks again, until the reader is dropped and the thread next picks from a reader it
//! has not cached, or until the thread exits; at most [`MAX_SLOTS`] readers per thread.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::state::readiness_epoch;
use crate::endpoint::Endpoints;
use crate::endpoint_set::EndpointSet;

/// Readers cached per thread; the least recently added is evicted beyond this.
pub(crate) const MAX_SLOTS: usize = 16;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

struct Token {
    id: u64,
    alive: AtomicBool,
    threads: AtomicU32,
    seed: u64,
}

/// Per-thread, per-reader scratch.
pub(crate) struct Local {
    /// Round-robin position (thread `t` starts at `t`).
    pub(crate) counter: u32,
    /// SplitMix64 state.
    pub(crate) rng: u64,
    /// The balancer's table for the current snapshot (cleared on a new snapshot).
    pub(crate) derived: Option<Arc<dyn Any + Send + Sync>>,
    /// Set once this snapshot has no endpoint left in slow start.
    pub(crate) warm: bool,
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
    fn new(token: &Token) -> Self {
        let thread = token.threads.fetch_add(1, Ordering::Relaxed);
        Local {
            counter: thread,
            rng: if thread == 0 {
                token.seed
            } else {
                mix(token.seed ^ mix(u64::from(thread)))
            },
            derived: None,
            warm: false,
            ready_epoch: u64::MAX,
            ready_count: 0,
        }
    }

    fn new_snapshot(&mut self) {
        self.derived = None;
        self.warm = false;
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

    /// Runs `f` with the table of type `T` derived from `endpoints` (built once per snapshot,
    /// cached here per thread: no reference count is touched once cached).
    #[inline]
    pub(crate) fn with_derived<S, T, R>(
        &mut self,
        endpoints: &Endpoints<S>,
        build: impl FnOnce(&Endpoints<S>) -> T,
        f: impl FnOnce(&T, &mut Local) -> R,
    ) -> R
    where
        T: Any + Send + Sync,
    {
        let table = match self.derived.take() {
            Some(table) if table.is::<T>() => table,
            _ => endpoints.derived(build) as Arc<dyn Any + Send + Sync>,
        };
        let result = match table.downcast_ref::<T>() {
            Some(t) => f(t, self),
            // Unreachable: the table was just checked or built as a `T`.
            None => unreachable!("derived table of the wrong type"),
        };
        self.derived = Some(table);
        result
    }
}

struct Slot {
    id: u64,
    version: u64,
    endpoints: Arc<dyn Any + Send + Sync>,
    token: Arc<Token>,
    local: Local,
}

thread_local! {
    static SLOTS: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
}

/// A balancer's cached view of an [`EndpointSet`]. See the [module docs](self).
pub(crate) struct Reader<S> {
    set: EndpointSet<S>,
    token: Arc<Token>,
}

impl<S> fmt::Debug for Reader<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.set, f)
    }
}

impl<S> Drop for Reader<S> {
    fn drop(&mut self) {
        self.token.alive.store(false, Ordering::Relaxed);
    }
}

impl<S: Send + Sync + 'static> Reader<S> {
    /// A reader of `set`; `seed` seeds the per-thread random states.
    pub(crate) fn new(set: EndpointSet<S>, seed: u64) -> Self {
        Reader {
            set,
            token: Arc::new(Token {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                alive: AtomicBool::new(true),
                threads: AtomicU32::new(0),
                seed,
            }),
        }
    }

    /// The set read.
    pub(crate) fn set(&self) -> &EndpointSet<S> {
        &self.set
    }

    /// Runs `f` on the current snapshot and this thread's scratch.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&Endpoints<S>, &mut Local) -> R) -> R {
        let version = self.set.version();
        let mut f = Some(f);
        let cached = SLOTS.try_with(|slots| {
            // Re-entered (a service's clone picking from a balancer): take the slow path.
            let mut slots = slots.try_borrow_mut().ok()?;
            let index = match slots.iter().position(|s| s.id == self.token.id) {
                Some(index) => index,
                None => self.insert(&mut slots),
            };
            let slot = &mut slots[index];
            if slot.version != version {
                slot.endpoints = self.set.snapshot();
                slot.version = version;
                slot.local.new_snapshot();
            }
            let endpoints = slot.endpoints.downcast_ref::<Endpoints<S>>()?;
            let f = f.take()?;
            Some(f(endpoints, &mut slot.local))
        });
        match (cached, f) {
            (Ok(Some(result)), _) => result,
            (_, Some(f)) => self.uncached(f),
            // Unreachable: `f` is only taken right before it runs and returns `Some`.
            (_, None) => unreachable!("pick closure consumed without a result"),
        }
    }

    #[cold]
    fn insert(&self, slots: &mut Vec<Slot>) -> usize {
        slots.retain(|s| s.token.alive.load(Ordering::Relaxed));
        if slots.len() >= MAX_SLOTS {
            slots.remove(0);
        }
        slots.push(Slot {
            id: self.token.id,
            // Never a real version: the first use loads the snapshot.
            version: u64::MAX,
            endpoints: Arc::new(()),
            token: Arc::clone(&self.token),
            local: Local::new(&self.token),
        });
        slots.len() - 1
    }

    #[cold]
    fn uncached<R>(&self, f: impl FnOnce(&Endpoints<S>, &mut Local) -> R) -> R {
        let endpoints = self.set.load();
        f(&endpoints, &mut Local::new(&self.token))
    }
}
