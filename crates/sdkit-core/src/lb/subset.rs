//! Deterministic subsetting: each client talks to a stable subset of `k` backends.
//!
//! When many clients share one long backend list, connecting every client to every backend
//! costs connections and memory on both sides. A subset of `k` (25 by default, kratos' figure)
//! per client bounds that, as long as the subsets are chosen so that every backend gets about
//! the same number of clients, and change little when the list does:
//!
//! * with a **client index** (a replica number, a StatefulSet ordinal),
//!   [`subset_by_index`] gives exact balance (every backend once per round of `⌈n/k⌉`
//!   clients); a departing backend changes about a quarter of the subsets (at 300 backends,
//!   k = 25), against nearly all with the SRE book's shuffle;
//! * with only a **client key** (a host name), [`subset_by_key`] uses rendezvous hashing:
//!   minimal churn (only the holders of a departing backend), binomial balance.
//!
//! [`Subset`] is the balancer over either.

mod assign;

pub use assign::{subset_by_index, subset_by_key};

use compact_str::CompactString;

use super::context::PickContext;
use super::guard::Picked;
use super::prefer::{self, Groups, picked};
use super::reader::Reader;
use super::snapshot_cache::SnapshotCache;
pub use super::within::Within;
use super::zone::DEFAULT_MIN_LOCAL_SHARE;
use super::{Balancer, non_empty};
use crate::endpoint::Endpoints;
use crate::endpoint_set::EndpointSet;
use crate::error::NoEndpoints;
use crate::registrar::BoxFuture;

/// kratos' default subset size.
pub const DEFAULT_SUBSET_SIZE: usize = 25;

/// Who the client is, for choosing its subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Client {
    /// A client index (0, 1, 2, … across the clients sharing the list): exact balance.
    Index(u64),
    /// A stable client name (a host or pod name): rendezvous hashing.
    Key(CompactString),
}

/// A balancer over a deterministic subset of the endpoints. See the [module docs](self).
///
/// The subset is recomputed once per endpoint snapshot (from the ids of the endpoints with a
/// non-zero weight); picks go to its members by the [`Within`] policy. While at least half of
/// the subset is ready, picks stay in it; below that they spill to every ready endpoint (like
/// [`ZoneAware`](super::zone::ZoneAware) with the subset as the zone), so a client is never
/// stranded while any endpoint is ready.
///
/// ```
/// use sdkit_core::lb::subset::Subset;
/// use sdkit_core::lb::Balancer;
/// use sdkit_core::{EndpointSet, Instance};
///
/// let set = EndpointSet::fixed((0..100).map(|i| (Instance::from_addr(format!("10.0.0.{i}:80")), i)));
/// let lb = Subset::by_index(set, 3).with_size(5);
/// let mut seen: Vec<i32> = (0..50).map(|_| lb.pick().unwrap()).collect();
/// seen.sort();
/// seen.dedup();
/// assert_eq!(seen.len(), 5); // 5 backends, each in turn
/// assert_eq!(lb.members().len(), 5);
/// ```
#[derive(Debug)]
pub struct Subset<S: Send + Sync> {
    reader: Reader<S>,
    cache: SnapshotCache<S, Groups>,
    client: Client,
    size: usize,
    within: Within,
}

impl<S: Send + Sync + 'static> Subset<S> {
    /// The subset of client number `index` ([`subset_by_index`]), of
    /// [`DEFAULT_SUBSET_SIZE`], round-robin within it.
    pub fn by_index(set: EndpointSet<S>, index: u64) -> Self {
        Self::new(set, Client::Index(index))
    }

    /// The subset of the client named `key` ([`subset_by_key`]).
    pub fn by_key(set: EndpointSet<S>, key: impl AsRef<str>) -> Self {
        Self::new(set, Client::Key(CompactString::from(key.as_ref())))
    }

    /// The subset of `client`.
    pub fn new(set: EndpointSet<S>, client: Client) -> Self {
        Subset {
            reader: Reader::new(set, rand::random()),
            cache: SnapshotCache::default(),
            client,
            size: DEFAULT_SUBSET_SIZE,
            within: Within::RoundRobin,
        }
    }

    /// The subset size `k` (at least 1); the whole set is used when it has at most `k`.
    pub fn with_size(mut self, size: usize) -> Self {
        self.size = size.max(1);
        self
    }

    /// The policy within the subset (with [`Within::P2c`] the guards track calls).
    pub fn with_within(mut self, within: Within) -> Self {
        self.within = within;
        self
    }

    /// The instance ids of the current subset, sorted.
    pub fn members(&self) -> Vec<String> {
        self.with_members(|endpoints, members, _| {
            members
                .list(0)
                .iter()
                .map(|&i| endpoints.as_slice()[i as usize].instance().id().to_owned())
                .collect()
        })
    }

    #[inline]
    fn with_members<R>(
        &self,
        f: impl FnOnce(&Endpoints<S>, &Groups, &mut super::reader::Local) -> R,
    ) -> R {
        self.reader.with(|endpoints, _, local| {
            self.cache.with(
                self.reader.set(),
                endpoints,
                local,
                |endpoints, _| members(endpoints, &self.client, self.size),
                |members, local| f(endpoints, members, local),
            )
        })
    }

    #[inline]
    fn choose<R>(
        &self,
        cx: &PickContext<'_>,
        then: impl FnOnce(&Endpoints<S>, usize) -> R,
    ) -> Result<R, NoEndpoints> {
        self.with_members(|endpoints, members, local| {
            let i = prefer::pick(
                endpoints,
                local,
                cx,
                members,
                0,
                DEFAULT_MIN_LOCAL_SHARE,
                self.within,
            )
            .ok_or(NoEndpoints)?;
            Ok(then(endpoints, i))
        })
    }
}

/// The subset's endpoint indices for `client` among the endpoints of non-zero weight.
fn members<S>(endpoints: &Endpoints<S>, client: &Client, size: usize) -> Groups {
    let eligible: Vec<u32> = (0..endpoints.len() as u32)
        .filter(|&i| endpoints.as_slice()[i as usize].instance().weight() > 0)
        .collect();
    let ids: Vec<&str> = eligible
        .iter()
        .map(|&i| endpoints.as_slice()[i as usize].instance().id())
        .collect();
    let chosen = match client {
        Client::Index(index) => subset_by_index(&ids, size, *index),
        Client::Key(key) => subset_by_key(&ids, size, key),
    };
    Groups::new(
        endpoints,
        vec![chosen.into_iter().map(|i| eligible[i]).collect()],
    )
}

impl<S: Clone + Send + Sync + 'static> Balancer<S> for Subset<S> {
    #[inline]
    fn pick(&self) -> Result<S, NoEndpoints> {
        self.choose(&PickContext::new(), |e, i| {
            e.as_slice()[i].service().clone()
        })
    }

    #[inline]
    fn pick_with(&self, cx: &PickContext<'_>) -> Result<Picked<S>, NoEndpoints> {
        self.choose(cx, |e, i| picked(e, i, self.within))
    }

    fn endpoints_available(&self) -> BoxFuture<'static, ()> {
        non_empty(self.reader.set())
    }
}
