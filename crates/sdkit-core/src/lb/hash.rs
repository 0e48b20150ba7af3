//! Consistent hashing by a request key: [`Maglev`].
//!
//! Requests with the same key go to the same endpoint while it stays in the set (session
//! affinity, cache locality); when an endpoint leaves, only its keys — plus about one percent
//! of the others — move. Maglev (Google's NSDI 2016 load balancer) is used rather than a ring:
//! a pick is one hash and one table read, O(1) at any size, and every endpoint owns the same
//! share of keys to within 1 %.
//!
//! The lookup table (≥ 100 slots per endpoint, a prime between 65 537 and 16 777 213; 4 bytes
//! a slot) is built once per endpoint snapshot, on the first pick that sees it, and shared by
//! all later picks; no pick builds or scans anything. Endpoints of weight 0 are left out
//! (unless all are 0). A table keeps its size while the endpoint count moves within a factor
//! of two to eight, so ordinary churn remaps only the keys of the endpoints that changed;
//! crossing a size step remaps nearly all keys once (pin the size with
//! [`Maglev::with_table_size`] to avoid even that).
//!
//! ```
//! use sdkit_core::lb::hash::{hash_key, Maglev};
//! use sdkit_core::{EndpointSet, Instance};
//!
//! let set = EndpointSet::fixed((0..5).map(|i| (Instance::from_addr(format!("10.0.0.{i}:80")), i)));
//! let lb = Maglev::new(set);
//! let key = hash_key(b"user-42");
//! let first = lb.pick_hash(key).unwrap();
//! assert!((0..20).all(|_| lb.pick_hash(key).unwrap() == first)); // same key, same endpoint
//! ```

mod maglev;

use std::sync::atomic::{AtomicU64, Ordering};

use self::maglev::{MaglevTable, table_size_for};
use super::snapshot_cache::SnapshotCache;
use super::stable_hash::{GOLDEN_GAMMA, hash_bytes, mix};
use super::{Balancer, non_empty};
use crate::endpointer::{EndpointSet, Endpoints};
use crate::error::NoEndpoints;
use crate::registrar::BoxFuture;

const KEY_SEED: u64 = 0x6b65_7973_0000_0001;
/// Alternative slots tried for a key whose endpoint is not usable, before a scan.
const REHASHES: u64 = 8;

/// The stable 64-bit hash of a request key, as [`Maglev`] expects it (the same in every
/// process and release).
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
pub struct Maglev<S> {
    set: EndpointSet<S>,
    cache: SnapshotCache<S, Table>,
    table_size: Option<u32>,
    /// Keys for picks without one (spread like a random balancer).
    keyless: AtomicU64,
}

impl<S> std::fmt::Debug for Maglev<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maglev")
            .field("set", &self.set)
            .field("table_size", &self.table_size)
            .finish_non_exhaustive()
    }
}

/// The table for one snapshot; slots hold endpoint indices.
struct Table {
    maglev: MaglevTable,
    size: u32,
}

impl<S> Maglev<S> {
    /// Consistent hashing over `set`, the table size chosen from the endpoint count.
    pub fn new(set: EndpointSet<S>) -> Self {
        Maglev {
            set,
            cache: SnapshotCache::default(),
            table_size: None,
            keyless: AtomicU64::new(rand::random()),
        }
    }

    /// Pins the table size to the smallest prime ≥ `size` (at least 3): no size step ever
    /// remaps keys, at the cost of balance when the endpoints are more than `size / 100`.
    pub fn with_table_size(mut self, size: u32) -> Self {
        self.table_size = Some(next_prime(size.max(3)));
        self
    }

    /// The table size in use for the current snapshot (0 while the set is empty).
    pub fn table_size(&self) -> usize {
        self.table().as_ref().map_or(0, |t| t.value.maglev.len())
    }

    fn table(
        &self,
    ) -> arc_swap::Guard<Option<std::sync::Arc<super::snapshot_cache::Derived<S, Table>>>> {
        self.cache.get(&self.set, |endpoints, previous| {
            build(endpoints, previous.map(|t| t.size), self.table_size)
        })
    }

    /// The index of the endpoint for `hash` among those `usable` accepts: the key's own
    /// endpoint when usable, else (deterministically) one of a few alternative slots, else the
    /// next usable endpoint after it. Runs `pick` on the snapshot and the index.
    #[inline]
    pub(crate) fn choose<R>(
        &self,
        hash: u64,
        usable: impl Fn(usize) -> bool,
        pick: impl FnOnce(&Endpoints<S>, usize) -> R,
    ) -> Option<R> {
        let derived = self.table();
        let derived = derived.as_ref()?;
        let endpoints = derived.endpoints();
        let table = &derived.value.maglev;
        let first = table.lookup(hash)? as usize;
        if usable(first) {
            return Some(pick(endpoints, first));
        }
        for attempt in 1..=REHASHES {
            let i = table.lookup(mix(hash ^ attempt.wrapping_mul(GOLDEN_GAMMA)))? as usize;
            if usable(i) {
                return Some(pick(endpoints, i));
            }
        }
        let n = endpoints.len();
        (1..n)
            .map(|step| (first + step) % n)
            .find(|&i| usable(i))
            .map(|i| pick(endpoints, i))
    }

    /// The service for a key hashed with [`hash_key`].
    pub fn pick_hash(&self, hash: u64) -> Result<S, NoEndpoints>
    where
        S: Clone,
    {
        self.choose(hash, |_| true, |e, i| e.as_slice()[i].service().clone())
            .ok_or(NoEndpoints)
    }

    fn next_keyless(&self) -> u64 {
        mix(self.keyless.fetch_add(GOLDEN_GAMMA, Ordering::Relaxed))
    }
}

impl<S: Clone + Send + Sync + 'static> Balancer<S> for Maglev<S> {
    /// Without a key: a pseudo-random key per pick (spread like [`Random`](super::Random)).
    fn pick(&self) -> Result<S, NoEndpoints> {
        self.pick_hash(self.next_keyless())
    }

    fn endpoints_available(&self) -> BoxFuture<'static, ()> {
        non_empty(&self.set)
    }
}

fn build<S>(endpoints: &Endpoints<S>, previous: Option<u32>, pinned: Option<u32>) -> Table {
    let all = endpoints.as_slice();
    let weighted: Vec<(u32, &str)> = all
        .iter()
        .enumerate()
        .filter(|(_, e)| e.instance().weight() > 0)
        .map(|(i, e)| (i as u32, e.instance().id()))
        .collect();
    let members = if weighted.is_empty() {
        all.iter()
            .enumerate()
            .map(|(i, e)| (i as u32, e.instance().id()))
            .collect()
    } else {
        weighted
    };
    let size = pinned.unwrap_or_else(|| table_size_for(members.len(), previous));
    Table {
        maglev: MaglevTable::build(&members, size),
        size,
    }
}

fn next_prime(mut n: u32) -> u32 {
    let is_prime = |n: u32| n >= 2 && (2..).take_while(|d: &u32| d * d <= n).all(|d| n % d != 0);
    while !is_prime(n) {
        n = n.saturating_add(1);
    }
    n
}
