//! Readiness as a filter over the snapshot, with Envoy's panic threshold, and avoidance.
//!
//! A balancer proposes a candidate; [`filter`] keeps it when it is acceptable (ready, and not in
//! the context's avoid list), else asks the balancer for up to [`PROBES`] more candidates (its
//! own next choices, so the policy's distribution holds among acceptable endpoints), else scans.
//! When fewer than half of the endpoints are ready (the panic threshold), readiness is ignored
//! rather than overloading the few ready ones. Nothing here runs while every endpoint in the
//! process is ready and nothing is avoided: the check is one relaxed load.

use super::context::PickContext;
use super::reader::Local;
use crate::endpoint::Endpoints;
use crate::feedback::state::any_not_ready;

/// Candidates asked of the balancer before scanning.
pub(crate) const PROBES: u32 = 8;

/// Ready share below which readiness is ignored (Envoy's panic threshold), in percent.
pub const PANIC_THRESHOLD_PERCENT: usize = 50;

/// `first`, or the first acceptable alternative. `probe(k)` proposes the balancer's k-th
/// alternative (k ≥ 1). A `weighted` balancer's scan skips endpoints of weight 0.
#[inline]
pub(crate) fn filter<S>(
    endpoints: &Endpoints<S>,
    local: &mut Local,
    cx: &PickContext<'_>,
    weighted: bool,
    first: usize,
    probe: impl FnMut(&mut Local, u32) -> usize,
) -> usize {
    if cx.avoid().is_empty() && !any_not_ready() {
        return first;
    }
    slow(endpoints, local, cx, weighted, first, probe)
}

/// `true` when readiness is to be ignored for `endpoints` (the panic mode).
pub(crate) fn panicking<S>(endpoints: &Endpoints<S>, local: &mut Local) -> bool {
    any_not_ready()
        && local.ready_count(endpoints) * 100 < endpoints.len() * PANIC_THRESHOLD_PERCENT
}

#[cold]
fn slow<S>(
    endpoints: &Endpoints<S>,
    local: &mut Local,
    cx: &PickContext<'_>,
    weighted: bool,
    first: usize,
    mut probe: impl FnMut(&mut Local, u32) -> usize,
) -> usize {
    // Some endpoint in the process is not ready, but maybe none of these: then (nothing
    // avoided) the candidate stands without loading its state (the count is cached per
    // snapshot and readiness epoch).
    if cx.avoid().is_empty() && local.ready_count(endpoints) == endpoints.len() {
        return first;
    }
    let items = endpoints.as_slice();
    let eligible = |i: usize| !weighted || items[i].instance().weight() > 0;
    let panic = panicking(endpoints, local);
    if panic {
        tracing::debug!(
            len = items.len(),
            "fewer than {PANIC_THRESHOLD_PERCENT} % of endpoints ready: ignoring readiness"
        );
    }
    let acceptable = |i: usize| {
        let e = &items[i];
        (panic || e.state().is_ready()) && !cx.avoids(e.key())
    };
    if acceptable(first) {
        return first;
    }
    for k in 1..=PROBES {
        let i = probe(local, k);
        if acceptable(i) {
            return i;
        }
    }
    let n = items.len();
    let scan = (first..n).chain(0..first).filter(|&i| eligible(i));
    if let Some(i) = scan.clone().find(|&i| acceptable(i)) {
        return i;
    }
    // Nothing acceptable: every ready endpoint is avoided. Better a ready one than a dead one.
    if !panic && let Some(i) = scan.clone().find(|&i| items[i].state().is_ready()) {
        return i;
    }
    first
}
