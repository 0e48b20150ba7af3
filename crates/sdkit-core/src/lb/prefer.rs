//! Picking from a preferred group of endpoints (a zone, a subset) with a spill to all: the
//! rule shared by [`ZoneAware`](super::zone::ZoneAware) and [`Subset`](super::subset::Subset).
//!
//! 1. While at least `min_share` of the preferred group is ready (at least one endpoint),
//!    pick among its ready endpoints.
//! 2. Otherwise spill: pick among the ready endpoints of the whole set.
//! 3. When none is ready anywhere — or fewer than half of the set, the panic mode every
//!    balancer shares — readiness is ignored rather than failing.
//!
//! Groups never hold endpoints of weight 0 (never picked). Ready counts per group are cached
//! per readiness epoch, so a pick costs O(1) whatever the group sizes; while every endpoint in
//! the process is ready, nothing is counted at all.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::context::PickContext;
use super::guard::{CallGuard, Picked};
use super::reader::Local;
use super::ready;
use super::within::Within;
use crate::endpoint::Endpoints;
use crate::feedback::state::{any_not_ready, readiness_epoch};

/// Candidate groups of one snapshot (indices of endpoints of non-zero weight); the last group
/// is the whole set (the spill group). Ready counts are cached per readiness epoch.
#[derive(Debug)]
pub(crate) struct Groups {
    lists: Vec<Vec<u32>>,
    ready: Vec<AtomicU32>,
    epoch: AtomicU64,
}

impl Groups {
    /// `preferred` groups (indices into `endpoints`; weight 0 is dropped) plus the whole set.
    pub(crate) fn new<S>(endpoints: &Endpoints<S>, preferred: Vec<Vec<u32>>) -> Groups {
        let weighted = |i: &u32| endpoints.as_slice()[*i as usize].instance().weight() > 0;
        let mut lists: Vec<Vec<u32>> = preferred
            .into_iter()
            .map(|g| g.into_iter().filter(weighted).collect())
            .collect();
        lists.push((0..endpoints.len() as u32).filter(weighted).collect());
        Groups {
            ready: lists.iter().map(|_| AtomicU32::new(0)).collect(),
            lists,
            epoch: AtomicU64::new(u64::MAX),
        }
    }

    /// The number of preferred groups.
    pub(crate) fn preferred(&self) -> usize {
        self.lists.len() - 1
    }

    /// Group `g`'s members (`g == preferred()` is the whole set).
    pub(crate) fn list(&self, g: usize) -> &[u32] {
        self.lists.get(g).map_or(&[], Vec::as_slice)
    }

    /// How many of group `g` are ready, recounted (all groups at once) when readiness moved.
    fn ready_in<S>(&self, endpoints: &Endpoints<S>, g: usize) -> usize {
        let epoch = readiness_epoch();
        if self.epoch.load(Ordering::Acquire) != epoch {
            let items = endpoints.as_slice();
            for (list, count) in self.lists.iter().zip(&self.ready) {
                let ready = list
                    .iter()
                    .filter(|&&i| items[i as usize].state().is_ready())
                    .count();
                count.store(u32::try_from(ready).unwrap_or(u32::MAX), Ordering::Relaxed);
            }
            // Read before counting: a transition during the count forces a recount next time.
            self.epoch.store(epoch, Ordering::Release);
        }
        self.ready
            .get(g)
            .map_or(0, |c| c.load(Ordering::Relaxed) as usize)
    }
}

/// Where a pick draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// The ready endpoints of the preferred group.
    Local,
    /// The ready endpoints of the whole set.
    Spill,
    /// Every endpoint of the whole set, ready or not (none is ready).
    Panic,
}

/// The rule of the [module docs](self) on counts: a preferred group of `local_len` with
/// `local_ready` ready, `all_ready` ready in the whole set.
pub(crate) fn plan(local_len: usize, local_ready: usize, all_ready: usize, min_share: f64) -> Plan {
    if local_len > 0 {
        let needed = ((min_share * local_len as f64).ceil() as usize).clamp(1, local_len);
        if local_ready >= needed {
            return Plan::Local;
        }
    }
    if all_ready > 0 {
        Plan::Spill
    } else {
        Plan::Panic
    }
}

/// Picks by the rule of the [module docs](self), preferring group `g` of `groups`, with
/// `within`, honouring the context's avoid list while another acceptable candidate exists.
/// The picked endpoint's index, or `None` when no endpoint has a weight.
#[inline]
pub(crate) fn pick<S>(
    endpoints: &Endpoints<S>,
    local: &mut Local,
    cx: &PickContext<'_>,
    groups: &Groups,
    g: usize,
    min_share: f64,
    within: Within,
) -> Option<usize> {
    let all = groups.preferred();
    let preferred = groups.list(g);
    let items = endpoints.as_slice();
    let load = |i: u32| items[i as usize].state().in_flight();
    if cx.avoid().is_empty() && !any_not_ready() {
        let group = if preferred.is_empty() {
            groups.list(all)
        } else {
            preferred
        };
        return within
            .pick(local, group, |_| true, load)
            .map(|i| i as usize);
    }
    let panic = ready::panicking(endpoints, local);
    let plan = if panic {
        plan(preferred.len(), preferred.len(), 1, min_share)
    } else {
        plan(
            preferred.len(),
            groups.ready_in(endpoints, g),
            groups.ready_in(endpoints, all),
            min_share,
        )
    };
    let group = if plan == Plan::Local {
        preferred
    } else {
        groups.list(all)
    };
    let need_ready = !panic && plan != Plan::Panic;
    let allowed = |i: u32| !need_ready || items[i as usize].state().is_ready();
    let avoided = |i: u32| cx.avoids(items[i as usize].key());
    within
        .pick(local, group, |i| allowed(i) && !avoided(i), load)
        .or_else(|| within.pick(local, group, allowed, load))
        .map(|i| i as usize)
}

/// The [`Picked`] for endpoint `i`: its guard tracks the call when `within` reads loads.
#[inline]
pub(crate) fn picked<S: Clone>(endpoints: &Endpoints<S>, i: usize, within: Within) -> Picked<S> {
    let e = &endpoints.as_slice()[i];
    Picked {
        service: e.service().clone(),
        guard: if within == Within::P2c {
            CallGuard::track(Arc::clone(e.state()))
        } else {
            CallGuard::detached()
        },
        key: e.key(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random sequences of readiness flips over endpoints in three zones: the plan is
        /// local exactly when the local ready share reaches the threshold, panic exactly when
        /// nothing is ready, and a pick under the plan never lands on a not-ready endpoint
        /// while any is ready, nor outside the zone when local.
        #[test]
        fn readiness_sequences_keep_the_rule(
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
                    let local_ready = local.iter().filter(|&&i| is_ready(i)).count();
                    let any_ready = ready.iter().any(|&r| r);
                    let p = plan(local.len(), local_ready, ready.iter().filter(|&&r| r).count(), share);
                    let needed = ((share * local.len() as f64).ceil() as usize).clamp(1, local.len().max(1));
                    prop_assert_eq!(p == Plan::Local, !local.is_empty() && local_ready >= needed);
                    prop_assert_eq!(p == Plan::Panic, !any_ready);
                    let group: &[u32] = if p == Plan::Local { &local } else { &all };
                    let chosen = Within::RoundRobin
                        .pick(scratch, group, |i| p == Plan::Panic || is_ready(i), |_| 0)
                        .unwrap();
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
