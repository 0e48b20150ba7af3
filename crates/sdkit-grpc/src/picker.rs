//! Picking one endpoint for a call: the policies, all aware of connection readiness.
//!
//! Every policy skips endpoints whose connection is known to be down while at least one ready
//! endpoint exists (gRPC never sends to a subchannel in TRANSIENT_FAILURE), and, on a retry,
//! endpoints this call already failed on, unless no other ready one is left. With none ready
//! the pick returns `None` and the call waits for a change.
//!
//! * `pick_first`: the first ready endpoint in the published order (sorted by identity), kept
//!   while it stays ready (sticky), then the next; with `shuffle` the order is rotated by a
//!   per-channel random offset, spreading many clients.
//! * `round_robin`: an atomic counter, then the next ready endpoint from there.
//! * `random`: a SplitMix64 index, then the next ready endpoint from there.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use sdkit_core::{Endpoint, Endpoints};

use crate::endpoint::GrpcEndpoint;
use crate::service_config::LbPolicy;

/// A policy's picking state; one per channel.
#[derive(Debug)]
pub(crate) enum Picker {
    PickFirst {
        /// The key of the endpoint in use (0: none yet).
        sticky: AtomicUsize,
        offset: usize,
    },
    RoundRobin(AtomicU32),
    Random(AtomicU64),
}

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Picker {
    pub(crate) fn new(policy: &LbPolicy) -> Picker {
        match policy {
            LbPolicy::PickFirst { shuffle } => Picker::PickFirst {
                sticky: AtomicUsize::new(0),
                offset: if *shuffle {
                    usize::try_from(rand::random::<u32>()).unwrap_or(0)
                } else {
                    0
                },
            },
            LbPolicy::Random => Picker::Random(AtomicU64::new(rand::random())),
            // RoundRobin, and any policy added later without its own picker.
            _ => Picker::RoundRobin(AtomicU32::new(0)),
        }
    }

    /// Picks a ready endpoint not in `avoid`, else a ready one, else `None`.
    pub(crate) fn pick<'a>(
        &self,
        endpoints: &'a Endpoints<GrpcEndpoint>,
        avoid: &[usize],
    ) -> Option<&'a Endpoint<GrpcEndpoint>> {
        let items = endpoints.as_slice();
        let len = items.len();
        if len == 0 {
            return None;
        }
        let start = match self {
            Picker::PickFirst { sticky, offset } => {
                let current = sticky.load(Ordering::Relaxed);
                if current != 0
                    && !avoid.contains(&current)
                    && let Some(e) = items.iter().find(|e| e.service().key() == current)
                    && e.service().is_ready()
                {
                    return Some(e);
                }
                let picked = scan(items, offset % len, avoid)?;
                sticky.store(picked.service().key(), Ordering::Relaxed);
                return Some(picked);
            }
            Picker::RoundRobin(next) => next.fetch_add(1, Ordering::Relaxed) as usize % len,
            Picker::Random(state) => {
                let r = mix(state
                    .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
                    .wrapping_add(GOLDEN_GAMMA));
                ((u128::from(r) * len as u128) >> 64) as usize
            }
        };
        // The common case: the endpoint at `start` is ready and not to be avoided.
        let first = &items[start];
        if first.service().is_ready()
            && (avoid.is_empty() || !avoid.contains(&first.service().key()))
        {
            return Some(first);
        }
        scan(items, start, avoid)
    }
}

/// From `start` on (wrapping), the first ready endpoint not in `avoid`, else the first ready one.
fn scan<'a>(
    items: &'a [Endpoint<GrpcEndpoint>],
    start: usize,
    avoid: &[usize],
) -> Option<&'a Endpoint<GrpcEndpoint>> {
    let len = items.len();
    let rotated = (0..len).map(|i| &items[(start + i) % len]);
    let mut fallback = None;
    for e in rotated {
        if !e.service().is_ready() {
            continue;
        }
        if !avoid.contains(&e.service().key()) {
            return Some(e);
        }
        fallback.get_or_insert(e);
    }
    fallback
}
