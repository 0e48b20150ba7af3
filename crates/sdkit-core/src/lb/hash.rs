//! Consistent hashing by a request key: [`Maglev`].
//!
//! Requests with the same key go to the same endpoint while it stays in the set (session
//! affinity, cache locality); when an endpoint leaves, only its keys — plus about one percent
//! of the others — move. Maglev (Google's NSDI 2016 load balancer) is used rather than a ring:
//! a pick is one hash and one table read, O(1) at any size, and every endpoint owns the same
//! share of keys to within 1 %.
//!
//! The lookup table (≥ 100 slots per endpoint, a prime between 65 537 and 16 777 213; 2 bytes
//! a slot up to 65 535 endpoints, else 4) is built once per endpoint snapshot and shared by all
//! picks (each thread keeps a handle to it): the first pick after an update builds it (O(M log
//! M): milliseconds for hundreds of endpoints, 0.15–0.3 s at 10 000; the picks racing it wait
//! for the same build), every other pick is one hash and one table read. Endpoints of weight 0
//! are left out (a set whose weights are all 0 has no endpoint). Readiness and avoidance follow
//! the other balancers: a key whose endpoint is not ready (or avoided) goes, deterministically,
//! to the first acceptable of a few alternative slots, so the other keys stay where they are.
//! A table keeps its size while the endpoint count moves within a factor of two to eight, so
//! ordinary churn remaps only the keys of the endpoints that changed; crossing a size step
//! remaps nearly all keys once (pin the size with [`Maglev::with_table_size`] to avoid even
//! that, or to make builds cheaper for large, busy sets).
//!
//! ```
//! use sdkit_core::lb::hash::{hash_key, Maglev};
//! use sdkit_core::lb::{Balancer, PickContext};
//! use sdkit_core::{EndpointSet, Instance};
//!
//! let set = EndpointSet::fixed((0..5).map(|i| (Instance::from_addr(format!("10.0.0.{i}:80")), i)));
//! let lb = Maglev::new(set);
//! let cx = PickContext::new().with_hash(hash_key(b"user-42"));
//! let first = lb.pick_with(&cx).unwrap().service;
//! assert!((0..20).all(|_| lb.pick_with(&cx).unwrap().service == first)); // same key, same endpoint
//! ```

mod maglev;

use std::sync::atomic::{AtomicU32, Ordering};

use self::maglev::{MaglevTable, next_prime, table_size_for};
use super::context::PickContext;
use super::guard::{CallGuard, Picked};
use super::reader::{Local, Reader};
use super::snapshot_cache::SnapshotCache;
use super::stable_hash::{GOLDEN_GAMMA, hash_bytes, mix};
use super::{Balancer, non_empty, ready};
use crate::endpoint::Endpoints;
use crate::endpoint_set::EndpointSet;
use crate::error::NoEndpoints;
use crate::registrar::BoxFuture;

const KEY_SEED: u64 = 0x6b65_7973_0000_0001;

/// The stable 64-bit hash of a request key (the same in every process and release), for
/// [`PickContext::with_hash`]. ([`PickContext::with_hash_key`] hashes any `Hash` value
/// instead; either works, as long as one service uses one of them.)
///
/// ```
/// use sdkit_core::lb::hash::hash_key;
/// assert_eq!(hash_key(b"user-42"), hash_key(b"user-42"));
/// assert_ne!(hash_key(b"user-42"), hash_key(b"user-43"));
/// ```
pub fn hash_key(key: &[u8]) -> u64 {
    hash_bytes(KEY_SEED, key)
}

/// Consistent hashing with Maglev's lookup table. See the [module docs](self).
///
/// A pick without a hash (no [`PickContext::with_hash`], or [`Balancer::pick`]) draws a
/// random one, so keyless calls spread like [`Random`](super::Random). No feedback: its
/// guards are detached.
#[derive(Debug)]
pub struct Maglev<S: Send + Sync> {
    reader: Reader<S>,
    cache: SnapshotCache<S, Table>,
    /// The pinned table size (0: chosen from the endpoint count).
    pinned: AtomicU32,
}

/// The table for one snapshot; slots hold endpoint indices.
#[derive(Debug)]
struct Table {
    maglev: MaglevTable,
    size: u32,
}

impl<S: Send + Sync + 'static> Maglev<S> {
    /// Consistent hashing over `set`, the table size chosen from the endpoint count.
    pub fn new(set: EndpointSet<S>) -> Self {
        Maglev {
            reader: Reader::new(set, rand::random()),
            cache: SnapshotCache::default(),
            pinned: AtomicU32::new(0),
        }
    }

    /// Pins the table size to the smallest prime ≥ `size` (at least 3): no size step ever
    /// remaps keys, at the cost of balance when there are more than `size / 100` endpoints.
    pub fn with_table_size(self, size: u32) -> Self {
        self.pinned
            .store(next_prime(size.max(3)), Ordering::Relaxed);
        self
    }

    /// The table size in use for the current snapshot (0 while no endpoint can be picked).
    pub fn table_size(&self) -> usize {
        self.with_table(|table, _, _| table.maglev.len())
    }

    /// Runs `f` with the current snapshot's table, the snapshot and this thread's scratch.
    #[inline]
    fn with_table<R>(&self, f: impl FnOnce(&Table, &Endpoints<S>, &mut Local) -> R) -> R {
        self.reader.with(|endpoints, _, local| {
            self.cache.with(
                self.reader.set(),
                endpoints,
                local,
                |endpoints, previous| {
                    let pinned = self.pinned.load(Ordering::Relaxed);
                    build(
                        endpoints,
                        previous.map(|t| t.size),
                        (pinned > 0).then_some(pinned),
                    )
                },
                |table, local| f(table, endpoints, local),
            )
        })
    }

    /// The index of the endpoint for `cx`'s hash (a random one when it has none), or `None`
    /// when no endpoint can be picked; `then` gets the snapshot and the index.
    #[inline]
    fn choose<R>(
        &self,
        cx: &PickContext<'_>,
        then: impl FnOnce(&Endpoints<S>, usize) -> R,
    ) -> Result<R, NoEndpoints> {
        self.with_table(|table, endpoints, local| {
            let hash = mix(cx.hash().unwrap_or_else(|| local.next_u64()));
            let first = table.maglev.lookup(hash).ok_or(NoEndpoints)? as usize;
            let i = ready::filter(endpoints, local, cx, true, first, |_, attempt| {
                // Alternatives are a function of the key alone: a key whose endpoint is down
                // goes to the same alternative from every client.
                let alt = mix(hash ^ u64::from(attempt).wrapping_mul(GOLDEN_GAMMA));
                table.maglev.lookup(alt).map_or(first, |i| i as usize)
            });
            Ok(then(endpoints, i))
        })
    }
}

impl<S: Clone + Send + Sync + 'static> Balancer<S> for Maglev<S> {
    #[inline]
    fn pick(&self) -> Result<S, NoEndpoints> {
        self.choose(&PickContext::new(), |e, i| {
            e.as_slice()[i].service().clone()
        })
    }

    #[inline]
    fn pick_with(&self, cx: &PickContext<'_>) -> Result<Picked<S>, NoEndpoints> {
        self.choose(cx, |e, i| {
            let e = &e.as_slice()[i];
            Picked {
                service: e.service().clone(),
                guard: CallGuard::detached(),
                key: e.key(),
            }
        })
    }

    fn endpoints_available(&self) -> BoxFuture<'static, ()> {
        non_empty(self.reader.set())
    }
}

fn build<S>(endpoints: &Endpoints<S>, previous: Option<u32>, pinned: Option<u32>) -> Table {
    let members: Vec<(u32, &str)> = endpoints
        .iter()
        .enumerate()
        .filter(|(_, e)| e.instance().weight() > 0)
        .map(|(i, e)| (i as u32, e.instance().id()))
        .collect();
    let size = pinned.unwrap_or_else(|| table_size_for(members.len(), previous));
    Table {
        maglev: MaglevTable::build(&members, size),
        size,
    }
}
