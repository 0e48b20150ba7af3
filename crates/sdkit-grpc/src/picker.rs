//! Picking one endpoint for a call: the policies, all aware of connection readiness.
//!
//! Every policy skips endpoints whose connection is known to be down while at least one ready
//! endpoint exists (gRPC never sends to a subchannel in TRANSIENT_FAILURE: a known-dead
//! connection only costs a failed attempt), and, on a retry, endpoints this call already tried,
//! unless no other ready one is left. With none ready the pick returns `None` and the call
//! waits for a change.
//!
//! * `pick_first`: the first ready endpoint in the published order (sorted by identity), kept
//!   while it stays ready (sticky), then the next; with `shuffle` the order is rotated by a
//!   per-channel random offset, spreading many clients.
//! * `round_robin`: an atomic counter, then the next ready endpoint from there.
//! * `random`: a SplitMix64 index, then the next ready endpoint from there.
//! * any other sdkit-core balancer (weighted, p2c…): its own pick with the avoid list, and its
//!   [`CallGuard`] to report the outcome; should its panic mode hand out an endpoint whose
//!   connection is down, the first ready endpoint is taken instead.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use sdkit_core::lb::{Balancer, CallGuard, PickContext};
use sdkit_core::{Endpoint, EndpointKey, EndpointSet, Endpoints};

use crate::endpoint::GrpcEndpoint;
use crate::service_config::LbPolicy;

/// A policy's picking state; one per channel.
pub(crate) enum Picker {
    PickFirst {
        /// The key of the endpoint in use (0: none yet).
        sticky: AtomicU64,
        offset: usize,
    },
    RoundRobin(AtomicU32),
    Random(AtomicU64),
    Balancer(Box<dyn Balancer<GrpcEndpoint>>),
}

/// One pick: the endpoint, its key, and the guard to end with the attempt's outcome.
pub(crate) struct Pick {
    pub(crate) endpoint: GrpcEndpoint,
    pub(crate) key: EndpointKey,
    pub(crate) guard: CallGuard,
}

impl Pick {
    fn of(e: &Endpoint<GrpcEndpoint>) -> Pick {
        Pick {
            endpoint: e.service().clone(),
            key: e.key(),
            guard: CallGuard::detached(),
        }
    }
}

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Picker {
    pub(crate) fn new(policy: &LbPolicy, set: EndpointSet<GrpcEndpoint>) -> Picker {
        match policy {
            LbPolicy::PickFirst { shuffle } => Picker::PickFirst {
                sticky: AtomicU64::new(0),
                offset: if *shuffle {
                    usize::try_from(rand::random::<u32>()).unwrap_or(0)
                } else {
                    0
                },
            },
            LbPolicy::RoundRobin => Picker::RoundRobin(AtomicU32::new(0)),
            LbPolicy::Random => Picker::Random(AtomicU64::new(rand::random())),
            LbPolicy::Balancer(config) => Picker::Balancer(config.build(set)),
        }
    }

    /// Picks a ready endpoint not in `avoid`, else a ready one, else `None`; `hash` is the
    /// call's request hash (consistent-hashing balancers map it onto an endpoint).
    pub(crate) fn pick(
        &self,
        endpoints: &Endpoints<GrpcEndpoint>,
        avoid: &[EndpointKey],
        hash: Option<u64>,
    ) -> Option<Pick> {
        let items = endpoints.as_slice();
        let len = items.len();
        if len == 0 {
            return None;
        }
        let start = match self {
            Picker::PickFirst { sticky, offset } => {
                let current = sticky.load(Ordering::Relaxed);
                if current != 0
                    && !avoid.contains(&EndpointKey(current))
                    && let Some(e) = items.iter().find(|e| e.key().0 == current)
                    && e.service().is_ready()
                {
                    return Some(Pick::of(e));
                }
                let picked = scan(items, offset % len, avoid)?;
                sticky.store(picked.key().0, Ordering::Relaxed);
                return Some(Pick::of(picked));
            }
            Picker::RoundRobin(next) => next.fetch_add(1, Ordering::Relaxed) as usize % len,
            Picker::Random(state) => {
                let r = mix(state
                    .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
                    .wrapping_add(GOLDEN_GAMMA));
                ((u128::from(r) * len as u128) >> 64) as usize
            }
            Picker::Balancer(balancer) => {
                let cx = PickContext::new()
                    .with_avoid(avoid)
                    .with_optional_hash(hash);
                let picked = balancer.pick_with(&cx).ok()?;
                if picked.service.is_ready() {
                    return Some(Pick {
                        endpoint: picked.service,
                        key: picked.key,
                        guard: picked.guard,
                    });
                }
                // Dropping the guard counts a cancelled call, not a failure.
                drop(picked);
                return scan(items, 0, avoid).map(Pick::of);
            }
        };
        // The common case: the endpoint at `start` is ready and not to be avoided.
        let first = &items[start];
        if first.service().is_ready() && (avoid.is_empty() || !avoid.contains(&first.key())) {
            return Some(Pick::of(first));
        }
        scan(items, start, avoid).map(Pick::of)
    }
}

/// From `start` on (wrapping), the first ready endpoint not in `avoid`, else the first ready one.
fn scan<'a>(
    items: &'a [Endpoint<GrpcEndpoint>],
    start: usize,
    avoid: &[EndpointKey],
) -> Option<&'a Endpoint<GrpcEndpoint>> {
    let len = items.len();
    let mut fallback = None;
    for e in (0..len).map(|i| &items[(start + i) % len]) {
        if !e.service().is_ready() {
            continue;
        }
        if !avoid.contains(&e.key()) {
            return Some(e);
        }
        fallback.get_or_insert(e);
    }
    fallback
}
