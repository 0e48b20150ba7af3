//! A small, stable 64-bit hash for instance ids and request keys.
//!
//! Subsets and hash tables must come out the same in every process and every release (two
//! clients computing their subsets independently have to agree), so the hash is spelled out
//! here instead of borrowing `std`'s randomly keyed `SipHash`: FNV-1a over the bytes, finished
//! with SplitMix64's output function so that nearby inputs land far apart.

/// The SplitMix64 increment (2⁶⁴ / φ).
pub(crate) const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01B3;

/// SplitMix64's output function: a bijection on `u64` with good avalanche.
#[inline]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The stable hash of `bytes` under `seed` (different seeds give independent-looking hashes).
#[inline]
pub(crate) fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET ^ mix(seed);
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    mix(h ^ (bytes.len() as u64).wrapping_mul(GOLDEN_GAMMA))
}

/// Combines two hashes into one (order matters).
#[inline]
pub(crate) fn combine(a: u64, b: u64) -> u64 {
    mix(a ^ b.wrapping_add(GOLDEN_GAMMA).rotate_left(23))
}

/// `x` scaled onto `[0, n)` by Lemire's multiply-shift (no division, unbiased enough for
/// hashing: `x` is uniform over `u64`).
#[inline]
pub(crate) fn scale(x: u64, n: u64) -> u64 {
    ((u128::from(x) * u128::from(n)) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_values_never_change() {
        // Clients in different processes must agree: these values are part of the contract.
        assert_eq!(hash_bytes(0, b""), hash_bytes(0, b""));
        assert_ne!(hash_bytes(0, b"a"), hash_bytes(1, b"a"));
        assert_ne!(hash_bytes(0, b"ab"), hash_bytes(0, b"ba"));
        assert_eq!(hash_bytes(7, b"10.0.0.1:80"), PINNED);
    }

    const PINNED: u64 = 15_361_475_929_956_676_856;

    #[test]
    fn scale_stays_in_range() {
        for n in [1u64, 2, 3, 65537, u64::MAX] {
            assert!(scale(u64::MAX, n) < n);
            assert_eq!(scale(0, n), 0);
        }
    }
}
