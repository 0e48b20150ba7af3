//! Consistent hashing by a request key: [`Maglev`] and [`RingHash`].
//!
//! Requests with the same key go to the same endpoint while it stays in the set (session
//! affinity, cache locality); when an endpoint leaves, only its keys — plus, with Maglev, about
//! one percent of the others — move. The key is the pick context's hash
//! ([`PickContext::with_hash`](super::PickContext::with_hash) with [`hash_key`], or
//! [`PickContext::with_hash_key`](super::PickContext::with_hash_key)); a pick without one picks
//! at random.
//!
//! * [`Maglev`] (Google's NSDI 2016 load balancer): a pick is one hash and one table read, O(1)
//!   at any size, and every endpoint owns the same share of keys to within one slot. The lookup
//!   table (a prime number of two-byte slots up to 65 535 endpoints, else four) has ≥ 100 slots
//!   per endpoint (shares even to 1 %) up to 1 310 endpoints; beyond, it stays at 131 071 slots
//!   (256 KiB, so that it stays in a core's L2 cache and a pick with a new key does not wait for
//!   memory) while that gives ≥ 12 slots per endpoint (shares within 1/12 ≈ 8 %: 13 or 14 slots
//!   each at 10 000), then ≥ 12 per endpoint. A build is O(M log M): milliseconds up to a few
//!   thousand endpoints. It keeps its size while the endpoint count moves within a factor of
//!   two to eight, so ordinary churn remaps only the keys of the endpoints that changed;
//!   crossing a size step remaps nearly all keys once (pin the size with
//!   [`Maglev::with_table_size`] to avoid even that, or for shares even to 1 % at any size).
//! * [`RingHash`] (ketama, Envoy's `RING_HASH`): endpoints at several points of a ring, in
//!   proportion to their **weights**; a pick is a binary search. Removing an endpoint moves
//!   exactly its keys; shares are as even as the number of points per endpoint allows.
//!
//! Both build their table once per endpoint snapshot and share it between all picks (each
//! thread keeps a handle to it): the first pick after an update builds it (the picks racing it
//! wait for the same build). Endpoints of weight 0 are left out (a set whose weights are all 0
//! has no endpoint). Readiness and avoidance follow the other balancers: a key whose endpoint
//! is not ready (or avoided) goes, deterministically, to the first acceptable of a few
//! alternative keys derived from it, so the other keys stay where they are.
//!
//! ```
//! use sdkit_core::lb::hash::{hash_key, Maglev};
//! use sdkit_core::lb::{Balancer, PickContext};
//! use sdkit_core::{EndpointSet, Instance};
//!
//! let set = EndpointSet::fixed((0..5).map(|i| (Instance::from_addr(format!("10.0.0.{i}:80")), i)));
//! let lb = Maglev::new(set);
//! let cx = PickContext::new().with_hash(hash_key(b"user-42"));
//! let first = lb.pick_with(&cx).unwrap().service;
//! assert!((0..20).all(|_| lb.pick_with(&cx).unwrap().service == first)); // same key, same endpoint
//! ```

mod keyed;
mod maglev;
mod request;
mod ring;

pub use self::maglev::Maglev;
pub use self::request::RequestHash;
pub use self::ring::{DEFAULT_MAXIMUM_RING_SIZE, DEFAULT_MINIMUM_RING_SIZE, RingHash};

use super::stable_hash::hash_bytes;

const KEY_SEED: u64 = 0x6b65_7973_0000_0001;

/// The stable 64-bit hash of a request key (the same in every process and release), for
/// [`PickContext::with_hash`](super::PickContext::with_hash).
/// ([`PickContext::with_hash_key`](super::PickContext::with_hash_key) hashes any `Hash` value
/// instead; either works, as long as one service uses one of them.)
///
/// ```
/// use sdkit_core::lb::hash::hash_key;
/// assert_eq!(hash_key(b"user-42"), hash_key(b"user-42"));
/// assert_ne!(hash_key(b"user-42"), hash_key(b"user-43"));
/// ```
pub fn hash_key(key: &[u8]) -> u64 {
    hash_bytes(KEY_SEED, key)
}
