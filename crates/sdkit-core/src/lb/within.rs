//! Picking within a group of candidate endpoints (a zone, a subset): the inner policy shared by
//! [`ZoneAware`](super::zone::ZoneAware) and [`Subset`](super::subset::Subset).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;

use super::stable_hash::{GOLDEN_GAMMA, mix, scale};

/// How an endpoint is chosen among the candidates a zone or subset balancer settled on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Within {
    /// In turn (the default): even spread, no feedback needed.
    #[default]
    RoundRobin,
    /// Uniformly at random.
    Random,
    /// The less loaded (fewer requests in flight) of two random candidates.
    P2c,
}

/// The per-balancer state of a [`Within`] policy: one counter, advanced once per pick.
#[derive(Debug)]
pub(crate) struct Picker {
    policy: Within,
    counter: AtomicU64,
}

impl Picker {
    pub(crate) fn new(policy: Within) -> Self {
        Picker {
            policy,
            counter: AtomicU64::new(match policy {
                Within::RoundRobin => 0,
                _ => rand::random(),
            }),
        }
    }

    /// One of `candidates` that `usable` accepts (`None` when none does), by the policy;
    /// `load` gives a candidate's requests in flight (read by `P2c` only). A pick starts at
    /// the policy's position and walks forward past unusable candidates, so it costs O(1)
    /// while most candidates are usable.
    #[inline]
    pub(crate) fn pick(
        &self,
        candidates: &[u32],
        usable: impl Fn(u32) -> bool,
        load: impl Fn(u32) -> u32,
    ) -> Option<u32> {
        let len = candidates.len() as u64;
        if len == 0 {
            return None;
        }
        let first_usable = |start: u64| {
            (0..len)
                .map(|step| candidates[((start + step) % len) as usize])
                .find(|&c| usable(c))
        };
        match self.policy {
            Within::RoundRobin => first_usable(self.counter.fetch_add(1, Ordering::Relaxed) % len),
            Within::Random => first_usable(scale(self.next_random(), len)),
            Within::P2c => {
                let a = first_usable(scale(self.next_random(), len))?;
                let b = first_usable(scale(self.next_random(), len))?;
                Some(if load(b) < load(a) { b } else { a })
            }
        }
    }

    fn next_random(&self) -> u64 {
        mix(self.counter.fetch_add(GOLDEN_GAMMA, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_skips_unusable_and_stays_even() {
        let p = Picker::new(Within::RoundRobin);
        let cands = [3, 5, 7, 9];
        let mut counts = [0usize; 10];
        for _ in 0..300 {
            counts[p.pick(&cands, |c| c != 5, |_| 0).unwrap() as usize] += 1;
        }
        assert_eq!(counts[5], 0);
        // 5's turns fall to 7: 75 each for 3 and 9, 150 for 7.
        assert_eq!((counts[3], counts[7], counts[9]), (75, 150, 75));
        assert_eq!(p.pick(&cands, |_| false, |_| 0), None);
        assert_eq!(p.pick(&[], |_| true, |_| 0), None);
    }

    #[test]
    fn random_and_p2c_use_every_usable_candidate() {
        for policy in [Within::Random, Within::P2c] {
            let p = Picker::new(policy);
            let mut counts = [0usize; 4];
            for _ in 0..4_000 {
                counts[p.pick(&[0, 1, 2, 3], |c| c != 2, |_| 0).unwrap() as usize] += 1;
            }
            assert_eq!(counts[2], 0, "{policy:?}");
            assert!(
                [0, 1, 3].iter().all(|&i| counts[i] > 600),
                "{policy:?} {counts:?}"
            );
        }
    }

    #[test]
    fn p2c_prefers_the_less_loaded() {
        let p = Picker::new(Within::P2c);
        let mut busy = 0;
        for _ in 0..4_000 {
            if p.pick(&[0, 1], |_| true, |c| if c == 0 { 10 } else { 0 }) == Some(0) {
                busy += 1;
            }
        }
        // Only when both draws land on 0 (¼ of the time).
        assert!((700..1_300).contains(&busy), "{busy}");
    }
}
