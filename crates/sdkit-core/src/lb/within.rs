//! Picking within a group of candidate endpoints (a zone, a subset): the inner policy shared by
//! [`ZoneAware`](super::zone::ZoneAware) and [`Subset`](super::subset::Subset).

use serde::{Deserialize, Serialize};

use super::reader::Local;

/// How an endpoint is chosen among the candidates a zone or subset balancer settled on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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

impl Within {
    /// One of `candidates` that `usable` accepts (`None` when none does), by the policy, using
    /// this thread's scratch (its round-robin position and random state: nothing shared is
    /// written); `load` gives a candidate's requests in flight (read by `P2c` only). A pick
    /// starts at the policy's position and moves on past unusable candidates, so it costs
    /// O(1) while most candidates are usable.
    #[inline]
    pub(crate) fn pick(
        self,
        local: &mut Local,
        candidates: &[u32],
        usable: impl Fn(u32) -> bool,
        load: impl Fn(u32) -> u32,
    ) -> Option<u32> {
        let len = candidates.len();
        if len == 0 {
            return None;
        }
        let first_usable = |start: usize| {
            (0..len)
                .map(|step| candidates[(start + step) % len])
                .find(|&c| usable(c))
        };
        match self {
            Within::RoundRobin => {
                // An unusable candidate's turn goes to the next usable one *in turn* (the
                // position moves past it), so the usable ones keep equal shares.
                for _ in 0..len {
                    let n = local.counter;
                    local.counter = n.wrapping_add(1);
                    let c = candidates[n as usize % len];
                    if usable(c) {
                        return Some(c);
                    }
                }
                None
            }
            Within::Random => first_usable(local.below(len)),
            Within::P2c => {
                let a = first_usable(local.below(len))?;
                let b = first_usable(local.below(len))?;
                Some(if load(b) < load(a) { b } else { a })
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Instance;
    use crate::endpoint_set::EndpointSet;
    use crate::lb::reader::Reader;

    /// Runs `f` with a thread scratch seeded by `seed`.
    pub(crate) fn with_local<R>(seed: u64, f: impl FnOnce(&mut Local) -> R) -> R {
        let reader = Reader::new(EndpointSet::fixed([(Instance::from_addr("x:1"), ())]), seed);
        reader.with(|_, _, local| f(local))
    }

    #[test]
    fn round_robin_skips_unusable_and_stays_even() {
        with_local(0, |local| {
            let cands = [3, 5, 7, 9];
            let mut counts = [0usize; 10];
            for _ in 0..300 {
                let c = Within::RoundRobin.pick(local, &cands, |c| c != 5, |_| 0);
                counts[c.unwrap() as usize] += 1;
            }
            assert_eq!(counts[5], 0);
            // 5's turns go to the next in turn: the others keep equal shares.
            assert_eq!((counts[3], counts[7], counts[9]), (100, 100, 100));
            assert_eq!(
                Within::RoundRobin.pick(local, &cands, |_| false, |_| 0),
                None
            );
            assert_eq!(Within::RoundRobin.pick(local, &[], |_| true, |_| 0), None);
        });
    }

    #[test]
    fn random_and_p2c_use_every_usable_candidate() {
        for policy in [Within::Random, Within::P2c] {
            with_local(7, |local| {
                let mut counts = [0usize; 4];
                for _ in 0..4_000 {
                    let c = policy.pick(local, &[0, 1, 2, 3], |c| c != 2, |_| 0);
                    counts[c.unwrap() as usize] += 1;
                }
                assert_eq!(counts[2], 0, "{policy:?}");
                assert!(
                    [0, 1, 3].iter().all(|&i| counts[i] > 600),
                    "{policy:?} {counts:?}"
                );
            });
        }
    }

    #[test]
    fn p2c_prefers_the_less_loaded() {
        with_local(3, |local| {
            let busy = (0..4_000)
                .filter(|_| {
                    Within::P2c.pick(local, &[0, 1], |_| true, |c| if c == 0 { 10 } else { 0 })
                        == Some(0)
                })
                .count();
            // Only when both draws land on 0 (a quarter of the time).
            assert!((700..1_300).contains(&busy), "{busy}");
        });
    }
}
