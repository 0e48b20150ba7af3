//! [`WeightedRoundRobin`]: smooth, exact weighted round-robin from a per-snapshot schedule.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::context::PickContext;
use super::guard::Picked;
use super::reader::{Local, Reader};
use super::slow_start::{SlowStart, latest_join, now_if_warming, ramp};
use super::{Balancer, non_empty, ready};
use crate::endpoint::Endpoints;
use crate::endpoint_set::EndpointSet;
use crate::error::NoEndpoints;
use crate::registrar::BoxFuture;

/// Schedule entries per endpoint beyond which weights are scaled down (see
/// [`WeightedRoundRobin`]).
pub const MAX_SCHEDULE_PER_ENDPOINT: u64 = 64;

/// Weighted round-robin by [`Instance::weight`](crate::Instance::weight): over one cycle of
/// `W` picks (`W` the sum of the weights divided by their GCD) each endpoint is picked exactly
/// its weight's share of times, interleaved (earliest-deadline-first on deadlines
/// `(k − ½) / w`: after any `t` picks each endpoint has been picked within one of its exact
/// share `t · w / W`, so weights 99:1 never send a burst of 99 followed by one).
/// Weight 0 is never picked; a set whose weights are all 0 has [`NoEndpoints`].
///
/// The schedule is built once per snapshot (on the first pick, `O(W log n)`), after which a pick
/// costs the same at 3 or 10 000 endpoints. When `W` exceeds `max(64 × n, 65 536)` the weights
/// are scaled down to that total (each keeps at least 1), so shares are exact to within one
/// pick per scaled cycle. Each thread walks the schedule from its own position (thread `t`
/// starts at `t`), so picks write nothing shared. Opt-in [`SlowStart`] ramps new endpoints up.
/// No feedback of its own: its guards are detached unless outlier detection
/// watches the set (then they report the outcome alone).
///
/// ```
/// use sdkit_core::lb::{Balancer, WeightedRoundRobin};
/// use sdkit_core::{EndpointSet, Instance};
///
/// let set = EndpointSet::fixed([
///     (Instance::from_addr("a:1").with_weight(3), 'a'),
///     (Instance::from_addr("b:1").with_weight(1), 'b'),
/// ]);
/// let wrr = WeightedRoundRobin::new(set);
/// let picks: String = (0..8).map(|_| wrr.pick().unwrap()).collect();
/// assert_eq!(picks, "aaba".repeat(2));
/// ```
#[derive(Debug)]
pub struct WeightedRoundRobin<S: Send + Sync> {
    reader: Reader<S, Schedule>,
    slow_start: Option<SlowStart>,
}

impl<S: Send + Sync + 'static> WeightedRoundRobin<S> {
    /// Weighted round-robin over `set`.
    pub fn new(set: EndpointSet<S>) -> Self {
        WeightedRoundRobin {
            reader: Reader::with_table(set, 0x5EED, Schedule::build),
            slow_start: None,
        }
    }

    /// Ramps new endpoints up (see [`SlowStart`]).
    pub fn with_slow_start(mut self, slow_start: SlowStart) -> Self {
        self.slow_start = Some(slow_start);
        self
    }
}

/// One cycle of endpoint indices, and `⌈2⁶⁴ / len⌉` to reduce positions without a division.
pub(crate) struct Schedule {
    order: Vec<u32>,
    magic: u64,
    latest_join: Option<Instant>,
}

/// A pending deadline `(2k − 1) / (2w)` of endpoint `index`.
#[derive(PartialEq, Eq)]
struct Deadline {
    k: u64,
    weight: u64,
    index: u32,
}

impl Ord for Deadline {
    fn cmp(&self, other: &Self) -> Ordering {
        // Min-heap on the deadline, then on the index: compare (2k−1)/(2w) exactly.
        let lhs = u128::from(2 * self.k - 1) * u128::from(other.weight);
        let rhs = u128::from(2 * other.k - 1) * u128::from(self.weight);
        rhs.cmp(&lhs).then(other.index.cmp(&self.index))
    }
}

impl PartialOrd for Deadline {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Schedule {
    pub(crate) fn build<S>(endpoints: &Endpoints<S>) -> Self {
        let weights: Vec<u64> = endpoints
            .iter()
            .map(|e| u64::from(e.instance().weight()))
            .collect();
        Schedule {
            order: schedule(&weights),
            magic: 0,
            latest_join: latest_join(endpoints),
        }
        .with_magic()
    }

    fn with_magic(mut self) -> Self {
        let len = u64::try_from(self.order.len()).unwrap_or(u64::MAX).max(1);
        self.magic = (u64::MAX / len).wrapping_add(1);
        self
    }

    #[inline]
    fn at(&self, n: u32) -> usize {
        let low = self.magic.wrapping_mul(u64::from(n));
        let position = ((u128::from(low) * self.order.len() as u128) >> 64) as usize;
        self.order[position] as usize
    }
}

/// One smooth cycle over `weights` (indices into `weights`; zeros never appear).
pub(crate) fn schedule(weights: &[u64]) -> Vec<u32> {
    let g = weights.iter().fold(0, |g, &w| gcd(g, w));
    if g == 0 {
        return Vec::new();
    }
    let mut scaled: Vec<u64> = weights.iter().map(|w| w / g).collect();
    let total: u64 = scaled.iter().sum();
    let cap = (weights.len() as u64 * MAX_SCHEDULE_PER_ENDPOINT).max(65_536);
    if total > cap {
        for w in &mut scaled {
            if *w > 0 {
                *w = ((u128::from(*w) * u128::from(cap) / u128::from(total)) as u64).max(1);
            }
        }
    }
    let total: u64 = scaled.iter().sum();
    let mut heap: BinaryHeap<Deadline> = scaled
        .iter()
        .enumerate()
        .filter(|(_, w)| **w > 0)
        .map(|(i, &weight)| Deadline {
            k: 1,
            weight,
            index: i as u32,
        })
        .collect();
    let mut order = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    while let Some(mut next) = heap.pop() {
        order.push(next.index);
        if next.k < next.weight {
            next.k += 1;
            heap.push(next);
        }
    }
    order
}

impl<S: Clone + Send + Sync + 'static> WeightedRoundRobin<S> {
    #[inline]
    fn choose<R>(
        &self,
        cx: &PickContext<'_>,
        f: impl FnOnce(&Endpoints<S>, usize) -> R,
    ) -> Result<R, NoEndpoints> {
        self.reader.with(|endpoints, schedule, local| {
            if schedule.order.is_empty() {
                return Err(NoEndpoints);
            }
            let next = |local: &mut Local| {
                let n = local.counter;
                local.counter = n.wrapping_add(1);
                schedule.at(n)
            };
            let mut first = next(local);
            if let Some(now) = now_if_warming(self.slow_start.as_ref(), schedule.latest_join, local)
                && let Some(slow_start) = &self.slow_start
            {
                first = ramp(slow_start, endpoints, now, local, first, next);
            }
            let i = ready::filter(endpoints, local, cx, true, first, |local, _| next(local));
            Ok(f(endpoints, i))
        })
    }
}

impl<S: Clone + Send + Sync + 'static> Balancer<S> for WeightedRoundRobin<S> {
    #[inline]
    fn pick(&self) -> Result<S, NoEndpoints> {
        self.choose(&PickContext::new(), |e, i| {
            e.as_slice()[i].service().clone()
        })
    }

    #[inline]
    fn pick_with(&self, cx: &PickContext<'_>) -> Result<Picked<S>, NoEndpoints> {
        self.choose(cx, |e, i| Picked::reporting(&e.as_slice()[i]))
    }

    fn endpoints_available(&self) -> BoxFuture<'static, ()> {
        non_empty(self.reader.set())
    }
}

#[cfg(test)]
mod tests {
    use super::schedule;

    #[test]
    fn a_cycle_is_exact_and_smooth() {
        for weights in [
            vec![5u64, 1, 1],
            vec![3, 1],
            vec![1, 2, 3, 4],
            vec![99, 1],
            vec![7, 7, 7],
            vec![10, 0, 3, 6],
        ] {
            let order = schedule(&weights);
            let g = weights.iter().fold(0, |g, &w| super::gcd(g, w));
            let weights: Vec<u64> = weights.iter().map(|w| w / g).collect();
            let total: u64 = weights.iter().sum();
            assert_eq!(order.len() as u64, total, "{weights:?}");
            // Over two cycles, after every pick, each endpoint is within one of its share.
            let mut counts = vec![0u64; weights.len()];
            for (t, &i) in order.iter().chain(order.iter()).enumerate() {
                counts[i as usize] += 1;
                for (j, &w) in weights.iter().enumerate() {
                    let ideal = (t + 1) as f64 * w as f64 / total as f64;
                    assert!(
                        (counts[j] as f64 - ideal).abs() <= 1.0,
                        "{weights:?} after {} picks: endpoint {j} has {} (ideal {ideal:.2}) in {order:?}",
                        t + 1,
                        counts[j]
                    );
                }
            }
            for (j, &w) in weights.iter().enumerate() {
                assert_eq!(counts[j], 2 * w, "{weights:?}");
            }
        }
        assert_eq!(schedule(&[0, 0]), Vec::<u32>::new());
        assert_eq!(schedule(&[4, 0, 2]), vec![0, 2, 0]);
    }

    #[test]
    fn huge_weights_are_scaled_to_the_cap() {
        let order = schedule(&[u64::from(u32::MAX), 1, 65_535]);
        assert!(order.len() <= 65_536 + 3);
        assert!(order.contains(&1) && order.contains(&2));
    }
}
