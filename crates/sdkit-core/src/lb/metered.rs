//! A balancer that counts its picks: [`Metered`].

use super::{Balancer, PickCache, PickContext, Picked};
use crate::endpoint_set::EndpointSet;
use crate::error::NoEndpoints;
use crate::metrics::PickMetrics;
use crate::registrar::BoxFuture;

/// Wraps a balancer and counts picks and picks without endpoints
/// (`sdkit.lb.picks`, `sdkit.lb.no_endpoints`, see [`metrics`](crate::metrics)), labelled with
/// the set's service and backend and the policy. The counter handles are resolved once, here:
/// a pick costs one counter increment more (nothing without a recorder).
/// [`BalancerConfig::build`](super::BalancerConfig::build) wraps every balancer it builds.
///
/// ```
/// use sdkit_core::lb::{Balancer, Metered, RoundRobin};
/// use sdkit_core::{EndpointSet, Instance};
///
/// let set = EndpointSet::fixed([(Instance::from_addr("10.0.0.1:80"), "a")]);
/// let rr = Metered::new(RoundRobin::new(set.clone()), &set, "round_robin");
/// assert_eq!(rr.pick().unwrap(), "a");
/// ```
#[derive(Debug)]
pub struct Metered<B> {
    inner: B,
    metrics: PickMetrics,
}

impl<B> Metered<B> {
    /// Counts `inner`'s picks under `set`'s labels and `policy` (a bounded name).
    pub fn new<S>(inner: B, set: &EndpointSet<S>, policy: &'static str) -> Self {
        Metered {
            inner,
            metrics: PickMetrics::new(set.labels(), policy),
        }
    }

    /// The wrapped balancer.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<S, B: Balancer<S>> Balancer<S> for Metered<B> {
    #[inline]
    fn pick(&self) -> Result<S, NoEndpoints> {
        let picked = self.inner.pick();
        self.metrics.count(picked.is_ok());
        picked
    }

    #[inline]
    fn pick_with(&self, cx: &PickContext<'_>) -> Result<Picked<S>, NoEndpoints> {
        let picked = self.inner.pick_with(cx);
        self.metrics.count(picked.is_ok());
        picked
    }

    #[inline]
    fn pick_cached(&self, cache: &mut PickCache<S>) -> Result<S, NoEndpoints> {
        let picked = self.inner.pick_cached(cache);
        self.metrics.count(picked.is_ok());
        picked
    }

    #[inline]
    fn pick_with_cached(
        &self,
        cache: &mut PickCache<S>,
        cx: &PickContext<'_>,
    ) -> Result<Picked<S>, NoEndpoints> {
        let picked = self.inner.pick_with_cached(cache, cx);
        self.metrics.count(picked.is_ok());
        picked
    }

    fn endpoints_available(&self) -> BoxFuture<'static, ()> {
        self.inner.endpoints_available()
    }
}
