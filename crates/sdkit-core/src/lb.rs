//! Balancers: pick one endpoint from the current set.
//!
//! A [`Balancer`] reads an [`EndpointSet`] snapshot without locks or allocation and returns a
//! clone of one endpoint's service, or [`NoEndpoints`]. Two strategies ship:
//!
//! * [`RoundRobin`]: an atomic counter; the first pick is index 0.
//! * [`Random`]: uniform, thread-safe (a lock-free SplitMix64 sequence on an atomic, so picks
//!   from many threads never race), seedable for reproducible tests.
//!
//! The cost of a pick does not depend on the number of endpoints.
//!
//! ```
//! use sdkit_core::lb::{Balancer, RoundRobin};
//! use sdkit_core::{EndpointSet, Instance};
//!
//! let set = EndpointSet::fixed([
//!     (Instance::from_addr("10.0.0.1:80"), "a"),
//!     (Instance::from_addr("10.0.0.2:80"), "b"),
//! ]);
//! let rr = RoundRobin::new(set);
//! assert_eq!(rr.pick().unwrap(), "a");
//! assert_eq!(rr.pick().unwrap(), "b");
//! assert_eq!(rr.pick().unwrap(), "a");
//! ```

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::endpointer::EndpointSet;
use crate::error::NoEndpoints;
use crate::registrar::BoxFuture;

/// Picks one endpoint.
pub trait Balancer<S>: Send + Sync {
    /// A clone of one endpoint's service, or [`NoEndpoints`] when the set is empty.
    fn pick(&self) -> Result<S, NoEndpoints>;

    /// Resolves once the balancer has an endpoint to pick (at once if it has one); used to wait
    /// instead of spinning while the set is empty. The default never resolves (callers then
    /// rely on their backoff).
    fn endpoints_available(&self) -> BoxFuture<'static, ()> {
        Box::pin(std::future::pending())
    }
}

impl<S, B: Balancer<S> + ?Sized> Balancer<S> for std::sync::Arc<B> {
    fn pick(&self) -> Result<S, NoEndpoints> {
        (**self).pick()
    }
    fn endpoints_available(&self) -> BoxFuture<'static, ()> {
        (**self).endpoints_available()
    }
}

fn non_empty<S: Send + Sync + 'static>(set: &EndpointSet<S>) -> BoxFuture<'static, ()> {
    let set = set.clone();
    Box::pin(async move { set.non_empty().await })
}

/// Round-robin over the current endpoints. See the [module docs](self).
#[derive(Debug)]
pub struct RoundRobin<S> {
    set: EndpointSet<S>,
    next: AtomicU32,
}

impl<S> RoundRobin<S> {
    /// Round-robin over `set`, starting at index 0.
    pub fn new(set: EndpointSet<S>) -> Self {
        RoundRobin {
            set,
            next: AtomicU32::new(0),
        }
    }
}

impl<S: Clone + Send + Sync + 'static> Balancer<S> for RoundRobin<S> {
    #[inline]
    fn pick(&self) -> Result<S, NoEndpoints> {
        let endpoints = self.set.load();
        let items = endpoints.as_slice();
        if items.is_empty() {
            return Err(NoEndpoints);
        }
        // A 32-bit counter reduced without a division; it wraps after 2³² picks, which only
        // shifts the rotation once.
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Ok(items[endpoints.reduce(n)].service().clone())
    }

    fn endpoints_available(&self) -> BoxFuture<'static, ()> {
        non_empty(&self.set)
    }
}

/// Uniformly random choice over the current endpoints. See the [module docs](self).
#[derive(Debug)]
pub struct Random<S> {
    set: EndpointSet<S>,
    state: AtomicU64,
}

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl<S> Random<S> {
    /// Random choice over `set`, seeded from the thread RNG.
    pub fn new(set: EndpointSet<S>) -> Self {
        Self::with_seed(set, rand::random())
    }

    /// Random choice over `set` with a fixed seed: the same seed gives the same sequence of
    /// indices (for a single picking thread).
    pub fn with_seed(set: EndpointSet<S>, seed: u64) -> Self {
        Random {
            set,
            state: AtomicU64::new(seed),
        }
    }

    #[inline]
    fn next_u64(&self) -> u64 {
        mix(self
            .state
            .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
            .wrapping_add(GOLDEN_GAMMA))
    }
}

impl<S: Clone + Send + Sync + 'static> Balancer<S> for Random<S> {
    #[inline]
    fn pick(&self) -> Result<S, NoEndpoints> {
        let endpoints = self.set.load();
        let items = endpoints.as_slice();
        if items.is_empty() {
            return Err(NoEndpoints);
        }
        // Lemire's multiply-shift maps 64 random bits onto [0, len) without a division.
        let index = ((u128::from(self.next_u64()) * items.len() as u128) >> 64) as usize;
        Ok(items[index].service().clone())
    }

    fn endpoints_available(&self) -> BoxFuture<'static, ()> {
        non_empty(&self.set)
    }
}

pub mod outlier;
