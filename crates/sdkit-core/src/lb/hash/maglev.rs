//! Maglev (Eisenbud et al., NSDI 2016): consistent hashing with an O(1) lookup table.
//!
//! Every member walks its own permutation of the `M` slots (an offset and a skip derived from
//! its id); members take turns claiming their next free slot until the table is full. Each
//! member ends up with ⌊M/N⌋ or ⌈M/N⌉ slots, and removing a member moves its slots plus only a
//! few others. `M` is prime (so every skip is a permutation); by default it is ≥ 100 × N (shares
//! even to 1 %) up to 1 310 members, then the 131 071-slot table (256 KiB, kept in a core's L2
//! cache) while it gives ≥ 12 slots per member, then ≥ 12 × N (shares within 1/12).

use super::keyed::{Keyed, Table, keyed_balancer, members};
use crate::endpoint::Endpoints;
use crate::endpoint_set::EndpointSet;
use crate::lb::stable_hash::{hash_bytes, scale};

/// Consistent hashing with Maglev's lookup table. See the [module docs](super).
///
/// A pick without a hash (no [`PickContext::with_hash`](crate::lb::PickContext::with_hash), or
/// [`Balancer::pick`](crate::lb::Balancer::pick)) draws a random one, so keyless calls spread
/// like [`Random`](crate::lb::Random). No feedback: its guards are detached. Endpoint weights
/// are not used (every endpoint of weight > 0 owns the same share); see
/// [`RingHash`](super::RingHash) for weighted consistent hashing.
#[derive(Debug)]
pub struct Maglev<S: Send + Sync> {
    keyed: Keyed<S, SizedTable>,
    /// The pinned table size (`None`: chosen from the endpoint count).
    pinned: Option<u32>,
}

/// The table for one snapshot, with the size it was built for (kept by the next snapshot's
/// table, with hysteresis).
#[derive(Debug)]
struct SizedTable {
    maglev: MaglevTable,
    size: u32,
}

impl Table for SizedTable {
    #[inline]
    fn lookup(&self, hash: u64) -> Option<u32> {
        self.maglev.lookup(hash)
    }
}

impl<S: Send + Sync + 'static> Maglev<S> {
    /// Consistent hashing over `set`, the table size chosen from the endpoint count.
    pub fn new(set: EndpointSet<S>) -> Self {
        Maglev {
            keyed: Keyed::new(set),
            pinned: None,
        }
    }

    /// Pins the table size to the smallest prime ≥ `size` (at least 3): no size step ever
    /// remaps keys, at the cost of balance when there are more than `size / 100` endpoints.
    pub fn with_table_size(mut self, size: u32) -> Self {
        self.pinned = Some(next_prime(size.max(3)));
        self
    }

    /// The table size in use for the current snapshot (0 while no endpoint can be picked).
    pub fn table_size(&self) -> usize {
        self.keyed
            .with_table(|e, previous| self.build(e, previous), |t, _| t.maglev.len())
    }

    fn build(&self, endpoints: &Endpoints<S>, previous: Option<&SizedTable>) -> SizedTable {
        let members: Vec<(u32, &str)> =
            members(endpoints).iter().map(|m| (m.index, m.id)).collect();
        let size = self
            .pinned
            .unwrap_or_else(|| table_size_for(members.len(), previous.map(|t| t.size)));
        SizedTable {
            maglev: MaglevTable::build(&members, size),
            size,
        }
    }
}

keyed_balancer!(Maglev);

/// The table sizes used by default: primes near powers of two, so that a size keeps serving
/// while the member count moves within a factor of eight (see [`table_size_for`]).
const LADDER: [u32; 9] = [
    65_537, 131_071, 262_139, 524_287, 1_048_573, 2_097_143, 4_194_301, 8_388_593, 16_777_213,
];

/// Slots per member aimed at when a size is chosen (shares then even to 1 %)…
const TARGET_SLOTS_PER_MEMBER: u64 = 100;
/// …as long as the table stays within this many slots (256 KiB of two-byte slots: it stays in
/// a core's L2 cache beside the endpoints, so a pick with a new key does not wait for L3 or
/// memory, and a build is 8 × cheaper than a 100-slot table at 10 000 members)…
const COMPACT_SLOTS: u64 = 131_071;
/// …but never with fewer than this many slots per member (shares then within 1/12 ≈ 8 %).
const FLOOR_SLOTS_PER_MEMBER: u64 = 12;
/// A kept size must give each member at least this many slots…
const MIN_SLOTS_PER_MEMBER: u64 = 10;
/// …and may be at most 8 × the size a fresh choice would want (beyond it the table wastes
/// memory and cache).
const MAX_OVER_WANTED: u64 = 8;

const EMPTY: u32 = u32::MAX;

/// The slots wanted for `n` members: 100 each while that fits in [`COMPACT_SLOTS`], else the
/// compact size, and at least 12 each.
fn wanted(n: u64) -> u64 {
    n.saturating_mul(TARGET_SLOTS_PER_MEMBER)
        .min(COMPACT_SLOTS)
        .max(n.saturating_mul(FLOOR_SLOTS_PER_MEMBER))
}

/// The size of the table for `members` members: a fresh size is the smallest ladder prime
/// with the [`wanted`] slots — ≥ 100 slots per member up to 1 310 members, the 131 071-slot
/// table up to 10 922, then ≥ 12 per member (capped at 16 777 213). `previous` is kept while it
/// gives each member at least half the wanted share (and ≥ 10 slots) and is at most 8 × the
/// wanted size: changing the size remaps nearly every key once, so the hysteresis keeps the
/// size through ordinary churn.
pub(crate) fn table_size_for(members: usize, previous: Option<u32>) -> u32 {
    let n = members.max(1) as u64;
    let want = wanted(n);
    if let Some(p) = previous {
        let p64 = u64::from(p);
        let enough = p64 >= want / 2 && p64 >= n * MIN_SLOTS_PER_MEMBER;
        if enough && (p64 <= want * MAX_OVER_WANTED || p == LADDER[0]) {
            return p;
        }
    }
    LADDER
        .iter()
        .copied()
        .find(|&m| u64::from(m) >= want)
        .unwrap_or(LADDER[LADDER.len() - 1])
}

/// A built Maglev table: slot → member value, two bytes a slot while every value fits (up to
/// 65 535 endpoints: half the memory, fewer cache misses per pick), else four.
#[derive(Clone)]
pub(crate) struct MaglevTable {
    slots: Slots,
}

#[derive(Clone)]
enum Slots {
    Narrow(Box<[u16]>),
    Wide(Box<[u32]>),
}

impl Slots {
    fn len(&self) -> usize {
        match self {
            Slots::Narrow(s) => s.len(),
            Slots::Wide(s) => s.len(),
        }
    }
}

impl std::fmt::Debug for MaglevTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaglevTable")
            .field("size", &self.slots.len())
            .finish()
    }
}

impl MaglevTable {
    /// Builds the table of `size` slots (a prime, see [`table_size_for`]) for `members`, given
    /// as `(value, id)`: a slot holds the `value` of the member that owns it. The table depends
    /// only on the set of ids (not on their order) when ids are unique. Empty when `members`
    /// is empty.
    pub(crate) fn build(members: &[(u32, &str)], size: u32) -> MaglevTable {
        if members.is_empty() || size == 0 {
            return MaglevTable {
                slots: Slots::Narrow(Box::new([])),
            };
        }
        // Members take turns in the order of their ids so that the result does not depend on
        // the order they were given in.
        let mut order: Vec<(u32, &str)> = members.to_vec();
        order.sort_unstable_by(|a, b| a.1.cmp(b.1));
        let m = u64::from(size);
        // (current slot, skip) per member.
        let mut cursors: Vec<(u64, u64)> = order
            .iter()
            .map(|(_, id)| {
                let offset = scale(hash_bytes(0x6d61_676c_6576_0001, id.as_bytes()), m);
                let skip = scale(hash_bytes(0x6d61_676c_6576_0002, id.as_bytes()), m - 1) + 1;
                (offset, skip)
            })
            .collect();
        let mut slots = vec![EMPTY; size as usize].into_boxed_slice();
        let mut filled = 0u64;
        'fill: loop {
            for (cursor, (value, _)) in cursors.iter_mut().zip(&order) {
                let (slot, skip) = cursor;
                // Every skip is coprime with the prime size, so this walk visits every slot
                // and finds a free one while any is left.
                while slots[*slot as usize] != EMPTY {
                    *slot = advance(*slot, *skip, m);
                }
                slots[*slot as usize] = *value;
                *slot = advance(*slot, *skip, m);
                filled += 1;
                if filled == m {
                    break 'fill;
                }
            }
        }
        let narrow: Option<Box<[u16]>> = slots.iter().map(|&v| u16::try_from(v).ok()).collect();
        MaglevTable {
            slots: match narrow {
                Some(narrow) => Slots::Narrow(narrow),
                None => Slots::Wide(slots),
            },
        }
    }

    /// The number of slots (0 when built from no member).
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The member value owning the slot of `hash` (`None` when the table is empty).
    #[inline]
    pub(crate) fn lookup(&self, hash: u64) -> Option<u32> {
        match &self.slots {
            Slots::Narrow(s) => s
                .get(scale(hash, s.len() as u64) as usize)
                .map(|&v| u32::from(v)),
            Slots::Wide(s) => s.get(scale(hash, s.len() as u64) as usize).copied(),
        }
    }

    /// All slots, in order (for tests).
    #[cfg(test)]
    pub(crate) fn slots(&self) -> Vec<u32> {
        match &self.slots {
            Slots::Narrow(s) => s.iter().map(|&v| u32::from(v)).collect(),
            Slots::Wide(s) => s.to_vec(),
        }
    }
}

/// The smallest prime ≥ `n` (trial division: table sizes are below 2²⁴).
pub(crate) fn next_prime(mut n: u32) -> u32 {
    while !is_prime(n) {
        n = n.saturating_add(1);
    }
    n
}

fn is_prime(n: u32) -> bool {
    n >= 2
        && (2u32..)
            .take_while(|d| d.saturating_mul(*d) <= n)
            .all(|d| !n.is_multiple_of(d))
}

#[inline]
fn advance(slot: u64, skip: u64, m: u64) -> u64 {
    let next = slot + skip;
    if next >= m { next - m } else { next }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_prime_rounds_up() {
        assert_eq!(
            (next_prime(0), next_prime(3), next_prime(1_000)),
            (2, 3, 1_009)
        );
    }

    #[test]
    fn ladder_is_prime_and_growing() {
        assert!(LADDER.iter().all(|&p| is_prime(p)));
        assert!(LADDER.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn sizes_follow_the_member_count_with_hysteresis() {
        assert_eq!(table_size_for(3, None), 65_537);
        assert_eq!(table_size_for(655, None), 65_537);
        assert_eq!(table_size_for(656, None), 131_071);
        // The compact table up to 10 922 members (≥ 12 slots each), then ≥ 12 per member.
        assert_eq!(table_size_for(10_000, None), 131_071);
        assert_eq!(table_size_for(10_923, None), 262_139);
        assert_eq!(table_size_for(100_000, None), 2_097_143);
        // 1 % churn keeps the size.
        assert_eq!(table_size_for(9_900, Some(131_071)), 131_071);
        assert_eq!(table_size_for(990, Some(131_071)), 131_071);
        // Far too few slots per member: grow; far too many: shrink.
        assert_eq!(table_size_for(10_000, Some(65_537)), 131_071);
        assert_eq!(table_size_for(10_000, Some(2_097_143)), 131_071);
        assert_eq!(table_size_for(100, Some(1_048_573)), 65_537);
        // The smallest size is kept however few the members.
        assert_eq!(table_size_for(1, Some(65_537)), 65_537);
    }

    #[test]
    fn shares_differ_by_at_most_one_slot() {
        let ids: Vec<String> = (0..7).map(|i| format!("10.0.0.{i}:80")).collect();
        let members: Vec<(u32, &str)> = ids
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u32, s.as_str()))
            .collect();
        let table = MaglevTable::build(&members, 65_537);
        let mut counts = [0usize; 7];
        for s in table.slots() {
            counts[s as usize] += 1;
        }
        let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(hi - lo <= 1, "{counts:?}");
    }

    #[test]
    fn wide_values_keep_four_bytes_and_the_same_layout() {
        let narrow = MaglevTable::build(&[(1, "a"), (2, "b")], 65_537);
        let wide = MaglevTable::build(&[(70_001, "a"), (70_002, "b")], 65_537);
        assert!(matches!(narrow.slots, Slots::Narrow(_)));
        assert!(matches!(wide.slots, Slots::Wide(_)));
        let shifted: Vec<u32> = narrow.slots().iter().map(|v| v + 70_000).collect();
        assert_eq!(wide.slots(), shifted);
        assert_eq!(wide.lookup(12345), narrow.lookup(12345).map(|v| v + 70_000));
    }

    #[test]
    fn empty_table_finds_nothing() {
        let table = MaglevTable::build(&[], 65_537);
        assert_eq!(table.len(), 0);
        assert_eq!(table.lookup(42), None);
    }
}
