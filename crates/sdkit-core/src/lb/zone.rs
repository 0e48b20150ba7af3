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

use super::snapshot_cache::SnapshotCache;
use super::within::Picker;
pub use super::within::Within;
use super::{Balancer, non_empty};
use crate::endpointer::{EndpointSet, Endpoints};
use crate::error::NoEndpoints;
use crate::registrar::BoxFuture;

/// The default share of a zone's endpoints that must be ready to keep calls local.
pub const DEFAULT_MIN_LOCAL_SHARE: f64 = 0.5;

/// Zone-preferring balancer. See the [module docs](self).
#[derive(Debug)]
pub struct ZoneAware<S> {
    set: EndpointSet<S>,
    cache: SnapshotCache<S, Zones>,
    zone: Option<CompactString>,
    min_local_share: f64,
    picker: Picker,
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
    /// The ready endpoints of the caller's zone.
    Local,
    /// The ready endpoints of every zone.
    Spill,
    /// Every endpoint, ready or not (none is ready).
    Panic,
}

/// The zone rule of the [module docs](self) over indices: `local` is the caller's zone, `all`
/// every endpoint.
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

impl<S> ZoneAware<S> {
    /// Zone preference over `set`, with no configured zone (set one with
    /// [`with_zone`](Self::with_zone) or pass it per pick), a 50 % minimum local share and
    /// round-robin within the chosen group.
    pub fn new(set: EndpointSet<S>) -> Self {
        ZoneAware {
            set,
            cache: SnapshotCache::default(),
            zone: None,
            min_local_share: DEFAULT_MIN_LOCAL_SHARE,
            picker: Picker::new(Within::RoundRobin),
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

    /// The policy within the chosen group.
    pub fn with_within(mut self, within: Within) -> Self {
        self.picker = Picker::new(within);
        self
    }

    /// The configured zone.
    pub fn zone(&self) -> Option<&str> {
        self.zone.as_deref()
    }

    /// Picks for a caller in `zone` (the configured zone when `None`): the index of the chosen
    /// endpoint, passed with the snapshot to `pick`. `ready` says whether an endpoint may be
    /// picked; `avoid` marks endpoints to skip while another ready one is in the group;
    /// `load` gives requests in flight (for [`Within::P2c`]).
    pub(crate) fn choose<R>(
        &self,
        zone: Option<&str>,
        ready: impl Fn(&Endpoints<S>, u32) -> bool,
        avoid: impl Fn(&Endpoints<S>, u32) -> bool,
        load: impl Fn(&Endpoints<S>, u32) -> u32,
        pick: impl FnOnce(&Endpoints<S>, usize) -> R,
    ) -> Option<R> {
        let derived = self
            .cache
            .get(&self.set, |endpoints, _| Zones::of(endpoints));
        let derived = derived.as_ref()?;
        let endpoints = derived.endpoints();
        let zones = &derived.value;
        let ready = |i: u32| ready(endpoints, i);
        let local = zones.local(zone.or(self.zone.as_deref()));
        let (group, need_ready) = match plan(local, &zones.all, &ready, self.min_local_share) {
            Plan::Local => (local, true),
            Plan::Spill => (zones.all.as_slice(), true),
            Plan::Panic => (zones.all.as_slice(), false),
        };
        let load = |i: u32| load(endpoints, i);
        let allowed = |i: u32| !need_ready || ready(i);
        let chosen = self
            .picker
            .pick(group, |i| allowed(i) && !avoid(endpoints, i), load)
            .or_else(|| self.picker.pick(group, allowed, load))?;
        Some(pick(endpoints, chosen as usize))
    }

    /// The service for a caller in `zone`, every endpoint counted as ready.
    pub fn pick_in_zone(&self, zone: &str) -> Result<S, NoEndpoints>
    where
        S: Clone,
    {
        self.choose(
            Some(zone),
            |_, _| true,
            |_, _| false,
            |_, _| 0,
            |e, i| e.as_slice()[i].service().clone(),
        )
        .ok_or(NoEndpoints)
    }
}

impl<S: Clone + Send + Sync + 'static> Balancer<S> for ZoneAware<S> {
    /// A pick for the configured zone.
    fn pick(&self) -> Result<S, NoEndpoints> {
        self.choose(
            None,
            |_, _| true,
            |_, _| false,
            |_, _| 0,
            |e, i| e.as_slice()[i].service().clone(),
        )
        .ok_or(NoEndpoints)
    }

    fn endpoints_available(&self) -> BoxFuture<'static, ()> {
        non_empty(&self.set)
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
            let picker = Picker::new(Within::RoundRobin);
            for flip in flips {
                ready[flip % n] = !ready[flip % n];
                let is_ready = |i: u32| ready[i as usize];
                let p = plan(&local, &all, &is_ready, share);
                let local_ready = local.iter().filter(|&&i| is_ready(i)).count();
                let needed = ((share * local.len() as f64).ceil() as usize).clamp(1, local.len().max(1));
                let any_ready = ready.iter().any(|&r| r);
                prop_assert_eq!(p == Plan::Local, !local.is_empty() && local_ready >= needed);
                prop_assert_eq!(p == Plan::Panic, !any_ready);
                let group: &[u32] = if p == Plan::Local { &local } else { &all };
                let chosen = picker.pick(group, |i| p == Plan::Panic || is_ready(i), |_| 0).unwrap();
                if any_ready {
                    prop_assert!(is_ready(chosen));
                }
                if p == Plan::Local {
                    prop_assert_eq!(zones[chosen as usize], 0);
                }
            }
        }
    }
}
