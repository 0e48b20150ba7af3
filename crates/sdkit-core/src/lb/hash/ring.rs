//! A ketama-style consistent-hash ring (Envoy's `RING_HASH`): [`RingHash`].

use super::keyed::{Keyed, Member, Table, keyed_balancer, members};
use crate::endpoint::Endpoints;
use crate::endpoint_set::EndpointSet;
use crate::lb::stable_hash::{combine, hash_bytes};

/// Envoy's default `minimum_ring_size`.
pub const DEFAULT_MINIMUM_RING_SIZE: u64 = 1_024;
/// Envoy's default `maximum_ring_size`, also the largest accepted (8 M points, 96 MiB).
pub const DEFAULT_MAXIMUM_RING_SIZE: u64 = 8 * 1_024 * 1_024;

const POINT_SEED: u64 = 0x7269_6e67_0000_0001;
/// `p` is kept while the ring has at most this many times the minimum.
const KEEP_FACTOR: u64 = 4;
/// Bounds of the exponent of `p` (2⁻⁴⁰ … 2⁴⁰ points per unit of weight).
const EXPONENT_RANGE: std::ops::RangeInclusive<i32> = -40..=40;

/// Consistent hashing on a ketama-style ring (Envoy's `RING_HASH`).
///
/// Every endpoint is placed at several points of a 64-bit ring (point `i` of an endpoint is a
/// stable hash of its id and `i`), in proportion to its weight; a key goes to the first point at
/// or after its hash, wrapping around (a binary search). Removing an endpoint moves exactly the
/// keys of its points; the others stay.
///
/// Ring size, as in Envoy: at least `minimum_ring_size` points (default 1 024) and at most
/// `maximum_ring_size` (default 8 388 608, also the largest allowed). Each endpoint gets
/// `⌈p × weight⌉` points, where `p`, the points per unit of weight, is a power of two (½, 1, 2,
/// 4, …) — the smallest that reaches the minimum. Envoy recomputes its scale from every new
/// membership, which adds or drops points of every endpoint at almost every change; with powers
/// of two an endpoint's points are nested (`p = 8` keeps the 4 points of `p = 4`), and `p` is
/// kept from the previous snapshot while the ring stays between the minimum and four times it,
/// so ordinary churn moves only the keys of the endpoints that changed. A step of `p` (the
/// total weight crossing a factor of two past those bounds) moves about half the keys once.
///
/// Balance: an endpoint's share of keys varies by about `1/√points` (± 10 % with 100 points);
/// the defaults give ≥ 100 points per endpoint only up to 10 endpoints, so raise
/// `minimum_ring_size` (100 × the endpoint count for ± 10 %) when shares matter — or use
/// [`Maglev`](super::Maglev), whose shares are even to one table slot, with an O(1) lookup.
///
/// A pick without a hash draws a random one (keyless calls spread at random). No feedback: its
/// guards are detached. Endpoints of weight 0 own no point.
///
/// ```
/// use sdkit_core::lb::hash::{hash_key, RingHash};
/// use sdkit_core::lb::{Balancer, PickContext};
/// use sdkit_core::{EndpointSet, Instance};
///
/// let set = EndpointSet::fixed((0..5).map(|i| (Instance::from_addr(format!("10.0.0.{i}:80")), i)));
/// let lb = RingHash::new(set).with_minimum_ring_size(4_096);
/// let cx = PickContext::new().with_hash(hash_key(b"user-42"));
/// let first = lb.pick_with(&cx).unwrap().service;
/// assert!((0..20).all(|_| lb.pick_with(&cx).unwrap().service == first));
/// assert!(lb.ring_size() >= 4_096);
/// ```
#[derive(Debug)]
pub struct RingHash<S: Send + Sync> {
    keyed: Keyed<S, Ring>,
    minimum: u64,
    maximum: u64,
}

impl<S: Send + Sync + 'static> RingHash<S> {
    /// A ring over `set` with Envoy's default sizes.
    pub fn new(set: EndpointSet<S>) -> Self {
        RingHash {
            keyed: Keyed::new(set),
            minimum: DEFAULT_MINIMUM_RING_SIZE,
            maximum: DEFAULT_MAXIMUM_RING_SIZE,
        }
    }

    /// The fewest points on the ring (clamped to 1 ..= [`DEFAULT_MAXIMUM_RING_SIZE`]; a minimum
    /// above the maximum counts as the maximum).
    pub fn with_minimum_ring_size(mut self, points: u64) -> Self {
        self.minimum = points.clamp(1, DEFAULT_MAXIMUM_RING_SIZE);
        self
    }

    /// The most points on the ring (clamped to 1 ..= [`DEFAULT_MAXIMUM_RING_SIZE`]; exceeded
    /// only when there are more endpoints than that, each then with one point).
    pub fn with_maximum_ring_size(mut self, points: u64) -> Self {
        self.maximum = points.clamp(1, DEFAULT_MAXIMUM_RING_SIZE);
        self
    }

    /// The number of points on the current snapshot's ring (0 while no endpoint can be picked).
    pub fn ring_size(&self) -> usize {
        self.keyed
            .with_table(|e, previous| self.build(e, previous), |ring, _| ring.len())
    }

    fn build(&self, endpoints: &Endpoints<S>, previous: Option<&Ring>) -> Ring {
        let members = members(endpoints);
        let minimum = self.minimum.min(self.maximum);
        let exponent = scale_exponent(
            &members,
            minimum,
            self.maximum,
            previous.map(|r| r.exponent),
        );
        Ring::build(&members, exponent)
    }
}

keyed_balancer!(RingHash);

/// The points of an endpoint of `weight` with `2^exponent` points per unit of weight: at least
/// one, nested as the exponent grows.
fn points(weight: u32, exponent: i32) -> u64 {
    let exact = if exponent >= 0 {
        u64::from(weight).saturating_mul(1u64 << exponent)
    } else {
        // ⌈weight / 2^-exponent⌉
        let shift = exponent.unsigned_abs();
        (u64::from(weight) + (1u64 << shift) - 1) >> shift
    };
    exact.max(1)
}

fn ring_len(members: &[Member<'_>], exponent: i32) -> u64 {
    members
        .iter()
        .map(|m| points(m.weight, exponent))
        .fold(0u64, u64::saturating_add)
}

/// The exponent of `p`: `previous` while its ring has between `minimum` and
/// `KEEP_FACTOR × minimum` points (and at most `maximum`), else the smallest reaching `minimum`,
/// lowered until the ring fits in `maximum`.
fn scale_exponent(
    members: &[Member<'_>],
    minimum: u64,
    maximum: u64,
    previous: Option<i32>,
) -> i32 {
    let len = |e: i32| ring_len(members, e);
    if let Some(e) = previous {
        let n = len(e);
        if n >= minimum && n <= maximum.min(minimum.saturating_mul(KEEP_FACTOR)) {
            return e;
        }
    }
    let total = members
        .iter()
        .map(|m| u64::from(m.weight))
        .sum::<u64>()
        .max(1);
    // A first guess from the total weight, then exact steps (the length is monotone).
    let guess = (minimum as f64 / total as f64).log2().floor() as i32;
    let mut e = guess.clamp(*EXPONENT_RANGE.start(), *EXPONENT_RANGE.end());
    // (Once every member has one point, a lower exponent changes nothing.)
    let floor = members.len() as u64;
    while e > *EXPONENT_RANGE.start() && len(e) > floor && len(e - 1) >= minimum {
        e -= 1;
    }
    while e < *EXPONENT_RANGE.end() && len(e) < minimum {
        e += 1;
    }
    while e > *EXPONENT_RANGE.start() && len(e) > maximum && len(e - 1) < len(e) {
        e -= 1;
    }
    e
}

/// The sorted ring of one snapshot: point hashes and, beside them, the owners' indices.
#[derive(Debug)]
struct Ring {
    hashes: Box<[u64]>,
    owners: Box<[u32]>,
    exponent: i32,
}

impl Ring {
    /// `members` sorted by id (so equal hashes break ties the same way in every process).
    fn build(members: &[Member<'_>], exponent: i32) -> Ring {
        let mut ring: Vec<(u64, u32)> = Vec::with_capacity(ring_len(members, exponent) as usize);
        for m in members {
            let id = hash_bytes(POINT_SEED, m.id.as_bytes());
            ring.extend((0..points(m.weight, exponent)).map(|i| (combine(id, i), m.index)));
        }
        // Stable: ties keep the id order.
        ring.sort_by_key(|p| p.0);
        Ring {
            hashes: ring.iter().map(|p| p.0).collect(),
            owners: ring.iter().map(|p| p.1).collect(),
            exponent,
        }
    }

    fn len(&self) -> usize {
        self.hashes.len()
    }
}

impl Table for Ring {
    /// The owner of the first point at or after `hash`, wrapping around.
    #[inline]
    fn lookup(&self, hash: u64) -> Option<u32> {
        let i = self.hashes.partition_point(|&h| h < hash);
        let i = if i == self.hashes.len() { 0 } else { i };
        self.owners.get(i).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, weight: u32) -> Member<'_> {
        Member {
            index: 0,
            id,
            weight,
        }
    }

    #[test]
    fn points_are_nested_and_at_least_one() {
        assert_eq!(points(3, 0), 3);
        assert_eq!(points(3, 2), 12);
        assert_eq!(points(3, -1), 2);
        assert_eq!(points(1, -5), 1);
        assert_eq!(points(100, -3), 13);
    }

    #[test]
    fn the_scale_reaches_the_minimum_and_respects_the_maximum() {
        let ids: Vec<String> = (0..10).map(|i| format!("h{i}")).collect();
        let ten: Vec<Member<'_>> = ids.iter().map(|id| member(id, 1)).collect();
        // 10 endpoints: 128 points each reach 1 024 (64 would not).
        assert_eq!(scale_exponent(&ten, 1_024, 8_388_608, None), 7);
        // Kept while the ring stays within [minimum, 4 × minimum]…
        assert_eq!(scale_exponent(&ten, 1_024, 8_388_608, Some(8)), 8);
        // …and recomputed outside.
        assert_eq!(scale_exponent(&ten, 1_024, 8_388_608, Some(6)), 7);
        assert_eq!(scale_exponent(&ten, 1_024, 8_388_608, Some(10)), 7);
        // The maximum wins over the minimum.
        assert_eq!(scale_exponent(&ten, 1_024, 500, None), 5);
        // Heavy weights: fractional points per unit of weight.
        let heavy: Vec<Member<'_>> = ids.iter().map(|id| member(id, 10_000)).collect();
        let e = scale_exponent(&heavy, 1_024, 8_388_608, None);
        assert!(e < 0 && ring_len(&heavy, e) >= 1_024 && ring_len(&heavy, e + 1) >= 1_024);
        assert!(ring_len(&heavy, e - 1) < 1_024);
    }

    #[test]
    fn lookup_wraps_around() {
        let ids = ["a", "b", "c"];
        let members: Vec<Member<'_>> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| Member {
                index: i as u32,
                id,
                weight: 1,
            })
            .collect();
        let ring = Ring::build(&members, 0);
        assert_eq!(ring.len(), 3);
        assert!(ring.hashes.windows(2).all(|w| w[0] <= w[1]));
        let first = ring.owners[0];
        assert_eq!(ring.lookup(u64::MAX), Some(first));
        assert_eq!(ring.lookup(0), Some(first));
        assert_eq!(ring.lookup(ring.hashes[1]), Some(ring.owners[1]));
        assert_eq!(ring.lookup(ring.hashes[1] + 1), Some(ring.owners[2]));
        assert_eq!(Ring::build(&[], 0).lookup(7), None);
    }
}
