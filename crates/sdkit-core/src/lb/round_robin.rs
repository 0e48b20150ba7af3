//! [`RoundRobin`]: each endpoint in turn.

use super::context::PickContext;
use super::guard::Picked;
use super::reader::{Local, PickCache, Reader};
use super::{Balancer, non_empty, ready};
use crate::endpoint::Endpoints;
use crate::endpoint_set::EndpointSet;
use crate::error::NoEndpoints;
use crate::registrar::BoxFuture;

/// Round-robin over the current endpoints; the first pick (on the first thread) is index 0.
///
/// Each thread keeps its own position (thread `t` starts at `t`), so picks from many threads
/// write nothing shared and stay fair: each thread's picks cycle through the set, so every
/// endpoint gets its share within one pick per thread. No feedback of its own: its guards are
/// detached unless outlier detection watches the set (then they report the outcome alone).
#[derive(Debug)]
pub struct RoundRobin<S: Send + Sync> {
    reader: Reader<S>,
}

impl<S: Send + Sync + 'static> RoundRobin<S> {
    /// Round-robin over `set`.
    pub fn new(set: EndpointSet<S>) -> Self {
        RoundRobin {
            reader: Reader::new(set, 0),
        }
    }
}

#[inline]
fn index<S>(endpoints: &Endpoints<S>, local: &mut Local, cx: &PickContext<'_>) -> usize {
    // A 32-bit counter reduced without a division; it wraps after 2³² picks, which only
    // shifts the rotation once.
    let n = local.counter;
    local.counter = n.wrapping_add(1);
    let first = endpoints.reduce(n);
    ready::filter(endpoints, local, cx, false, first, |local, _| {
        let n = local.counter;
        local.counter = n.wrapping_add(1);
        endpoints.reduce(n)
    })
}

impl<S: Clone + Send + Sync + 'static> Balancer<S> for RoundRobin<S> {
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
