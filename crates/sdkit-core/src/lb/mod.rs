//! Balancers: pick one endpoint from the current set, and the feedback path calls report on.
//!
//! A [`Balancer`] reads an [`crate::EndpointSet`] snapshot without locks and
//! returns a clone of one endpoint's service ([`pick`](Balancer::pick)), or — with a
//! [`PickContext`] — the service plus a [`CallGuard`] that reports the call's outcome to the
//! endpoint's [`EndpointState`] ([`pick_with`](Balancer::pick_with)).
//!
//! | balancer | picks | feedback |
//! |---|---|---|
//! | [`RoundRobin`] | each endpoint in turn | none |
//! | [`Random`] | uniformly | none |
//! | [`WeightedRoundRobin`] | in turn, in proportion to weight (exact over a cycle) | none |
//! | [`WeightedRandom`] | at random, in proportion to weight (alias table) | none |
//! | [`P2c`] | the less loaded of two random ones: in flight, or PeakEWMA × in flight | tracks calls |
//!
//! [`BalancerConfig`] builds any of them from configuration (`{"policy": "p2c_peak_ewma"}`).
//! Weighted and least-loaded balancers can ramp new endpoints up ([`SlowStart`]).
//! [`outlier`] detection works with all of them: once an
//! [`OutlierDetector`](outlier::OutlierDetector) watches a set, the guards of balancers without
//! feedback report each call's outcome too (only the outcome: no clock, no in-flight count).
//!
//! Every balancer skips endpoints that are not [ready](EndpointState::is_ready) (transport
//! down, ejected, unhealthy) while at least half of the set is ready (below that, Envoy's panic
//! mode: readiness is ignored), and skips the context's [avoided](PickContext::with_avoid)
//! endpoints while another ready one exists. The cost of a pick does not depend on the number
//! of endpoints; an unchanged set costs one atomic load per pick (see the per-thread cache in
//! `reader.rs`), and round-robin and random write nothing shared. A caller that owns a handle
//! can keep its own [`PickCache`] ([`Balancer::pick_cached`]): round-robin and random then skip
//! the per-thread lookup too and pick for what indexing a slice costs.
//!
//! ```
//! use sdkit_core::lb::{Balancer, PickContext, RoundRobin};
//! use sdkit_core::{EndpointSet, Instance};
//!
//! let set = EndpointSet::fixed([
//!     (Instance::from_addr("10.0.0.1:80"), "a"),
//!     (Instance::from_addr("10.0.0.2:80"), "b"),
//! ]);
//! let rr = RoundRobin::new(set);
//! assert_eq!(rr.pick().unwrap(), "a");
//! assert_eq!(rr.pick().unwrap(), "b");
//! // A retry after "a" failed avoids it while "b" is ready.
//! let first = rr.pick_with(&PickContext::new()).unwrap();
//! assert_eq!(first.service, "a");
//! let failed = [first.key];
//! first.guard.failure(sdkit_core::lb::FailureClass::Timeout);
//! assert_eq!(rr.pick_with(&PickContext::new().with_avoid(&failed)).unwrap().service, "b");
//! ```

mod config;
mod context;
mod guard;
pub mod hash;
mod metered;
pub mod outlier;
mod p2c;
mod prefer;
mod random;
mod reader;
mod ready;
mod round_robin;
mod slow_start;
mod snapshot_cache;
mod stable_hash;
pub mod subset;
mod weighted_random;
mod weighted_round_robin;
mod within;
pub mod zone;

pub use crate::feedback::outcome::{Classified, FailureClass, Outcome};
pub use crate::feedback::state::{DEFAULT_DECAY, EndpointState, OutcomeObserver};
pub use config::{BalancerConfig, POLICIES, UnknownPolicy};
pub use context::PickContext;
pub use guard::{CallGuard, Picked};
pub use metered::Metered;
pub use p2c::{DEFAULT_RTT, Load, P2c};
pub use random::Random;
pub use reader::PickCache;
pub use ready::PANIC_THRESHOLD_PERCENT;
pub use round_robin::RoundRobin;
pub use slow_start::SlowStart;
pub use weighted_random::WeightedRandom;
pub use weighted_round_robin::{MAX_SCHEDULE_PER_ENDPOINT, WeightedRoundRobin};

use crate::endpoint_set::EndpointSet;
use crate::error::NoEndpoints;
use crate::registrar::BoxFuture;

/// Picks one endpoint.
pub trait Balancer<S>: Send + Sync {
    /// A clone of one endpoint's service, or [`NoEndpoints`] when the set is empty. The
    /// default picks with an empty context and drops the guard (a cancelled call); balancers
    /// without feedback implement it directly.
    fn pick(&self) -> Result<S, NoEndpoints> {
        self.pick_with(&PickContext::new())
            .map(|picked| picked.service)
    }

    /// Picks with a request context; the returned guard is to be ended with the call's
    /// outcome (dropping it counts the call as cancelled).
    fn pick_with(&self, cx: &PickContext<'_>) -> Result<Picked<S>, NoEndpoints>;

    /// [`pick`](Self::pick) for a caller that owns `cache` (one per handle, never shared):
    /// round-robin and random then pick from the cache's snapshot while the set is unchanged,
    /// for the cost of indexing a slice (see [`PickCache`]). The default ignores the cache.
    fn pick_cached(&self, cache: &mut PickCache<S>) -> Result<S, NoEndpoints> {
        let _ = cache;
        self.pick()
    }

    /// [`pick_with`](Self::pick_with) for a caller that owns `cache`, as
    /// [`pick_cached`](Self::pick_cached). The default ignores the cache.
    fn pick_with_cached(
        &self,
        cache: &mut PickCache<S>,
        cx: &PickContext<'_>,
    ) -> Result<Picked<S>, NoEndpoints> {
        let _ = cache;
        self.pick_with(cx)
    }

    /// Resolves once the balancer has an endpoint to pick (at once if it has one); used to wait
    /// instead of spinning while the set is empty. The default never resolves (callers then
    /// rely on their backoff).
    fn endpoints_available(&self) -> BoxFuture<'static, ()> {
        Box::pin(std::future::pending())
    }
}

/// A balancer behind a pointer (`Arc<B>`, `Box<B>`, `dyn Balancer` included) is a balancer.
macro_rules! forward_balancer {
    ($($pointer:ident)::+) => {
        impl<S, B: Balancer<S> + ?Sized> Balancer<S> for $($pointer)::+<B> {
            fn pick(&self) -> Result<S, NoEndpoints> {
                (**self).pick()
            }
            fn pick_with(&self, cx: &PickContext<'_>) -> Result<Picked<S>, NoEndpoints> {
                (**self).pick_with(cx)
            }
            fn pick_cached(&self, cache: &mut PickCache<S>) -> Result<S, NoEndpoints> {
                (**self).pick_cached(cache)
            }
            fn pick_with_cached(
                &self,
                cache: &mut PickCache<S>,
                cx: &PickContext<'_>,
            ) -> Result<Picked<S>, NoEndpoints> {
                (**self).pick_with_cached(cache, cx)
            }
            fn endpoints_available(&self) -> BoxFuture<'static, ()> {
                (**self).endpoints_available()
            }
        }
    };
}

forward_balancer!(std::sync::Arc);
forward_balancer!(Box);

/// A future that resolves once `set` is non-empty: what balancers return from
/// [`Balancer::endpoints_available`].
pub fn non_empty<S: Send + Sync + 'static>(set: &EndpointSet<S>) -> BoxFuture<'static, ()> {
    let set = set.clone();
    Box::pin(async move { set.non_empty().await })
}
