//! [`Random`]: a uniformly random endpoint.

use super::context::PickContext;
use super::guard::Picked;
use super::reader::{Local, PickCache, Reader};
use super::{Balancer, non_empty, ready};
use crate::endpoint::Endpoints;
use crate::endpoint_set::EndpointSet;
use crate::error::NoEndpoints;
use crate::registrar::BoxFuture;

/// Uniformly random choice over the current endpoints.
///
/// Each thread draws from its own wyrand sequence (the first thread's is the seed's), so
/// picks from many threads write nothing shared. Seedable for reproducible tests. No feedback
/// of its own: its guards are detached unless outlier detection watches the set (then they
/// report the outcome alone).
#[derive(Debug)]
pub struct Random<S: Send + Sync> {
    reader: Reader<S>,
}

impl<S: Send + Sync + 'static> Random<S> {
    /// Random choice over `set`, seeded from the thread RNG.
    pub fn new(set: EndpointSet<S>) -> Self {
        Self::with_seed(set, rand::random())
    }

    /// Random choice over `set` with a fixed seed: the same seed gives the same sequence of
    /// indices (for a single picking thread).
    pub fn with_seed(set: EndpointSet<S>, seed: u64) -> Self {
        Random {
            reader: Reader::new(set, seed),
        }
    }
}

#[inline]
fn index<S>(endpoints: &Endpoints<S>, local: &mut Local, cx: &PickContext<'_>) -> usize {
    let len = endpoints.len();
    let first = local.below(len);
    ready::filter(endpoints, local, cx, false, first, |local, _| {
        local.below(len)
    })
}

impl<S: Clone + Send + Sync + 'static> Balancer<S> for Random<S> {
    #[inline]
    fn pick(&self) -> Result<S, NoEndpoints> {
        self.reader.pick(index)
    }

    #[inline]
    fn pick_with(&self, cx: &PickContext<'_>) -> Result<Picked<S>, NoEndpoints> {
        self.reader.pick_with(cx, index)
    }

    #[inline]
    fn pick_cached(&self, cache: &mut PickCache<S>) -> Result<S, NoEndpoints> {
        self.reader.pick_cached(cache, index)
    }

    #[inline]
    fn pick_with_cached(
        &self,
        cache: &mut PickCache<S>,
        cx: &PickContext<'_>,
    ) -> Result<Picked<S>, NoEndpoints> {
        self.reader.pick_with_cached(cache, cx, index)
    }

    fn endpoints_available(&self) -> BoxFuture<'static, ()> {
        non_empty(self.reader.set())
    }
}
