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
//! 4. when none is ready anywhere, pick among all (readiness ignored rather than failing).
//!
//! Within the chosen group the [`Within`] policy picks (round-robin by default, random, or
//! p2c over requests in flight). Endpoints without a zone, and callers without one, take part
//! only through the spill group (a caller without a zone always spills). The zone groups are
//! computed once per endpoint snapshot; a pick reads them without locks and, while most local
//! endpoints are ready, does O(1) work beyond counting the ready share of its zone (stopping
//! as soon as the share is reached).
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
use super::guard::{CallGuard, Picked};
use super::reader::{Local, Reader};
use super::snapshot_cache::SnapshotCache;
pub use super::within::Within;
use super::{Balancer, non_empty, ready};
use crate::endpoint::Endpoints;
use crate::endpoint_set::EndpointSet;
use crate::error::NoEndpoints;
use crate::registrar::BoxFuture;

/// The default share of a zone's endpoints that must be ready to keep calls local.
pub const DEFAULT_MIN_LOCAL_SHARE: f64 = 0.5;

/// Zone-preferring balancer. See the [module docs](self).
#[derive(Debug)]
pub struct ZoneAware<S> {
    reader: Reader<S>,
    cache: SnapshotCache<S, Zones>,
    zone: Option<CompactString>,
    min_local_share: f64,
    within: Within,
}

/// The endpoints of one snapshot grouped by zone (indices into the snapshot).
#[derive(Debug, Default)]
pub(crate) struct Zones {
    /// Sorted by zone name.
    zones: Vec<(CompactString, Vec<u32>)>,
    all: Vec<u32>,
}

impl Zones {
    fn of<S>(endpoints: &Endpoints<S>) -> Zones {
        let mut zones: Vec<(CompactString, Vec<u32>)> = Vec::new();
        for (i, e) in endpoints.iter().enumerate() {
            let Some(zone) = e.instance().zone() else {
                continue;
            };
            match zones.binary_search_by(|(z, _)| z.as_str().cmp(zone)) {
                Ok(at) => zones[at].1.push(i as u32),
                Err(at) => zones.insert(at, (CompactString::from(zone), vec![i as u32])),
            }
        }
        Zones {
            zones,
            all: (0..endpoints.len() as u32).collect(),
        }
    }

    fn local(&self, zone: Option<&str>) -> &[u32] {
        zone.and_then(|zone| {
            self.zones
                .binary_search_by(|(z, _)| z.as_str().cmp(zone))
                .ok()
                .map(|at| self.zones[at].1.as_slice())
        })
        .unwrap_or(&[])
    }
}

/// Where a pick draws from, decided by [`plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// The ready endpoints of the preferred group (the caller's zone, the client's subset).
    Local,
    /// The ready endpoints of every zone.
    Spill,
    /// Every endpoint, ready or not (none is ready).
    Panic,
}

/// The zone rule of the [module docs](self) over indices: `local` is the preferred group,
/// `all` every endpoint.
pub(crate) fn plan(
    local: &[u32],
    all: &[u32],
    ready: &impl Fn(u32) -> bool,
    min_local_share: f64,
) -> Plan {
    if !local.is_empty() {
        let needed = ((min_local_share * local.len() as f64).ceil() as usize).clamp(1, local.len());
        if local.iter().filter(|&&i| ready(i)).take(needed).count() == needed {
            return Plan::Local;
        }
    }
    if all.iter().any(|&i| ready(i)) {
        Plan::Spill
    } else {
        Plan::Panic
    }
}

/// Picks by [`plan`] within `local` (spilling to every endpoint) with `within`, honouring
/// readiness (ignored in the set-wide panic mode, like every balancer), the context's avoid
/// list (while another candidate of the group is acceptable) and weight 0 (never picked).
/// The picked endpoint's index, or `None` when no endpoint has a weight.
#[inline]
pub(crate) fn pick_preferring<S>(
    endpoints: &Endpoints<S>,
    local_scratch: &mut Local,
    cx: &PickContext<'_>,
    local: &[u32],
    all: &[u32],
    min_local_share: f64,
    within: Within,
) -> Option<usize> {
    let items = endpoints.as_slice();
    let panic = ready::panicking(endpoints, local_scratch);
    let ready = |i: u32| {
        let e = &items[i as usize];
        e.instance().weight() > 0 && (panic || e.state().is_ready())
    };
    let weighted = |i: u32| items[i as usize].instance().weight() > 0;
    let (group, need_ready) = match plan(local, all, &ready, min_local_share) {
        Plan::Local => (local, true),
        Plan::Spill => (all, true),
        Plan::Panic => (all, false),
    };
    let allowed = |i: u32| if need_ready { ready(i) } else { weighted(i) };
    let load = |i: u32| items[i as usize].state().in_flight();
    let avoided = |i: u32| cx.avoids(items[i as usize].key());
    let chosen = if cx.avoid().is_empty() {
        within.pick(local_scratch, group, allowed, load)
    } else {
        within
            .pick(local_scratch, group, |i| allowed(i) && !avoided(i), load)
            .or_else(|| within.pick(local_scratch, group, allowed, load))
    };
    chosen.map(|i| i as usize)
}

/// The [`Picked`] for endpoint `i`: its guard tracks the call when `within` reads loads.
#[inline]
pub(crate) fn picked<S: Clone>(endpoints: &Endpoints<S>, i: usize, within: Within) -> Picked<S> {
    let e = &endpoints.as_slice()[i];
    Picked {
        service: e.service().clone(),
        guard: if within == Within::P2c {
            CallGuard::track(std::sync::Arc::clone(e.state()))
        } else {
            CallGuard::detached()
        },
        key: e.key(),
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
        self.reader.with(|endpoints, local| {
            self.cache.with(
                self.reader.set(),
                endpoints,
                local,
                |endpoints, _| Zones::of(endpoints),
                |zones, local| {
                    let mine = zones.local(cx.zone().or(self.zone.as_deref()));
                    let i = pick_preferring(
                        endpoints,
                        local,
                        cx,
                        mine,
                        &zones.all,
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random sequences of readiness flips over endpoints in three zones: a pick is local
        /// exactly when the local ready share reaches the threshold, and never lands on a
        /// not-ready endpoint while any is ready.
        #[test]
        fn readiness_sequences_keep_the_zone_rule(
            zones in prop::collection::vec(0u8..3, 1..30),
            flips in prop::collection::vec(0usize..30, 0..60),
            share in 0.0f64..=1.0,
        ) {
            let n = zones.len();
            let mut ready = vec![true; n];
            let all: Vec<u32> = (0..n as u32).collect();
            let local: Vec<u32> = all.iter().copied().filter(|&i| zones[i as usize] == 0).collect();
            crate::lb::within::tests::with_local(1, |scratch| {
            for flip in &flips {
                ready[*flip % n] = !ready[*flip % n];
                let is_ready = |i: u32| ready[i as usize];
                let p = plan(&local, &all, &is_ready, share);
                let local_ready = local.iter().filter(|&&i| is_ready(i)).count();
                let needed = ((share * local.len() as f64).ceil() as usize).clamp(1, local.len().max(1));
                let any_ready = ready.iter().any(|&r| r);
                prop_assert_eq!(p == Plan::Local, !local.is_empty() && local_ready >= needed);
                prop_assert_eq!(p == Plan::Panic, !any_ready);
                let group: &[u32] = if p == Plan::Local { &local } else { &all };
                let chosen = Within::RoundRobin.pick(scratch, group, |i| p == Plan::Panic || is_ready(i), |_| 0).unwrap();
                if any_ready {
                    prop_assert!(is_ready(chosen));
                }
                if p == Plan::Local {
                    prop_assert_eq!(zones[chosen as usize], 0);
                }
            }
            Ok(())
            })?;
        }
    }
}
