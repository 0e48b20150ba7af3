//! Zone preference: [`ZoneAware`] keeps calls in the caller's zone while it is healthy.
//!
//! Cross-zone traffic costs latency and money; sending everything to the local zone is right
//! until that zone runs short. The rule, per pick:
//!
//! 1. the caller's zone is the pick context's, else the one configured;
//! 2. when at least `min_local_share` (50 % by default, at least one endpoint) of the
//!    endpoints in that zone are ready, pick among the ready local ones;
//! 3. otherwise spill: pick among the ready endpoints of every zone (the local ready ones
//!    included), so a caller is never stranded while any endpoint anywhere is ready;
//! 4. when none is ready anywhere — or fewer than half of the whole set, the panic mode every
//!    balancer shares — readiness is ignored rather than failing.
//!
//! Within the chosen group the [`Within`] policy picks (round-robin by default, random, or
//! p2c over requests in flight); a retry's avoided endpoints are skipped while another
//! candidate of the group is acceptable; weight 0 is never picked. A caller without a zone,
//! or with a zone no endpoint has, uses the whole set. The zone groups are built once per
//! endpoint snapshot; a pick is O(1): ready counts per zone are cached per readiness change,
//! and not read at all while every endpoint in the process is ready.
//!
//! ```
//! use sdkit_core::lb::zone::ZoneAware;
//! use sdkit_core::lb::Balancer;
//! use sdkit_core::{EndpointSet, Instance};
//!
//! let set = EndpointSet::fixed([
//!     (Instance::from_addr("10.0.0.1:80").with_zone("eu-west-1a"), "a1"),
//!     (Instance::from_addr("10.0.0.2:80").with_zone("eu-west-1a"), "a2"),
//!     (Instance::from_addr("10.0.1.1:80").with_zone("eu-west-1b"), "b1"),
//! ]);
//! let lb = ZoneAware::new(set).with_zone("eu-west-1a");
//! for _ in 0..10 {
//!     assert!(lb.pick().unwrap().starts_with('a'));
//! }
//! ```

use compact_str::CompactString;

use super::context::PickContext;
use super::guard::Picked;
use super::prefer::{self, Groups, picked};
use super::reader::Reader;
use super::snapshot_cache::SnapshotCache;
pub use super::within::Within;
use super::{Balancer, non_empty};
use crate::endpoint::Endpoints;
use crate::endpoint_set::EndpointSet;
use crate::error::NoEndpoints;
use crate::registrar::BoxFuture;

/// The default share of a zone's endpoints that must be ready to keep calls local.
pub const DEFAULT_MIN_LOCAL_SHARE: f64 = 0.5;

/// Zone-preferring balancer. See the [module docs](self).
#[derive(Debug)]
pub struct ZoneAware<S: Send + Sync> {
    reader: Reader<S>,
    cache: SnapshotCache<S, Zones>,
    zone: Option<CompactString>,
    min_local_share: f64,
    within: Within,
}

/// The endpoints of one snapshot grouped by zone.
#[derive(Debug)]
struct Zones {
    /// Zone names, sorted; zone `i` is group `i`.
    names: Vec<CompactString>,
    groups: Groups,
}

impl Zones {
    fn of<S>(endpoints: &Endpoints<S>) -> Zones {
        let mut names: Vec<CompactString> = Vec::new();
        let mut lists: Vec<Vec<u32>> = Vec::new();
        for (i, e) in endpoints.iter().enumerate() {
            let Some(zone) = e.instance().zone() else {
                continue;
            };
            match names.binary_search_by(|z| z.as_str().cmp(zone)) {
                Ok(at) => lists[at].push(i as u32),
                Err(at) => {
                    names.insert(at, CompactString::from(zone));
                    lists.insert(at, vec![i as u32]);
                }
            }
        }
        Zones {
            names,
            groups: Groups::new(endpoints, lists),
        }
    }

    /// The group of `zone`; the whole set for no zone or an unknown one.
    fn group(&self, zone: Option<&str>) -> usize {
        zone.and_then(|zone| self.names.binary_search_by(|z| z.as_str().cmp(zone)).ok())
            .unwrap_or(self.groups.preferred())
    }
}

impl<S: Send + Sync + 'static> ZoneAware<S> {
    /// Zone preference over `set`, with no configured zone (set one with
    /// [`with_zone`](Self::with_zone) or pass it per pick), a 50 % minimum local share and
    /// round-robin within the chosen group.
    pub fn new(set: EndpointSet<S>) -> Self {
        ZoneAware {
            reader: Reader::new(set, rand::random()),
            cache: SnapshotCache::default(),
            zone: None,
            min_local_share: DEFAULT_MIN_LOCAL_SHARE,
            within: Within::RoundRobin,
        }
    }

    /// The caller's zone, used when a pick's context names none.
    pub fn with_zone(mut self, zone: impl AsRef<str>) -> Self {
        self.zone = Some(CompactString::from(zone.as_ref()));
        self
    }

    /// The share (0.0–1.0, clamped) of the local zone's endpoints that must be ready to keep
    /// calls local; below it calls spill to all zones. 0.0 keeps calls local while a single
    /// local endpoint is ready.
    pub fn with_min_local_share(mut self, share: f64) -> Self {
        self.min_local_share = if share.is_nan() {
            DEFAULT_MIN_LOCAL_SHARE
        } else {
            share.clamp(0.0, 1.0)
        };
        self
    }

    /// The policy within the chosen group (with [`Within::P2c`] the guards track calls).
    pub fn with_within(mut self, within: Within) -> Self {
        self.within = within;
        self
    }

    /// The configured zone.
    pub fn zone(&self) -> Option<&str> {
        self.zone.as_deref()
    }

    #[inline]
    fn choose<R>(
        &self,
        cx: &PickContext<'_>,
        then: impl FnOnce(&Endpoints<S>, usize) -> R,
    ) -> Result<R, NoEndpoints> {
        self.reader.with(|endpoints, _, local| {
            self.cache.with(
                self.reader.set(),
                endpoints,
                local,
                |endpoints, _| Zones::of(endpoints),
                |zones, local| {
                    let g = zones.group(cx.zone().or(self.zone.as_deref()));
                    let i = prefer::pick(
                        endpoints,
                        local,
                        cx,
                        &zones.groups,
                        g,
                        self.min_local_share,
                        self.within,
                    )
                    .ok_or(NoEndpoints)?;
                    Ok(then(endpoints, i))
                },
            )
        })
    }
}

impl<S: Clone + Send + Sync + 'static> Balancer<S> for ZoneAware<S> {
    /// A pick for the configured zone.
    #[inline]
    fn pick(&self) -> Result<S, NoEndpoints> {
        self.choose(&PickContext::new(), |e, i| {
            e.as_slice()[i].service().clone()
        })
    }

    /// A pick for the context's zone, else the configured one.
    #[inline]
    fn pick_with(&self, cx: &PickContext<'_>) -> Result<Picked<S>, NoEndpoints> {
        self.choose(cx, |e, i| picked(e, i, self.within))
    }

    fn endpoints_available(&self) -> BoxFuture<'static, ()> {
        non_empty(self.reader.set())
    }
}
