//! [`WeightedRandom`]: random choice in proportion to weight, by Vose's alias method.

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

/// Random choice with probability proportional to [`Instance::weight`](crate::Instance::weight).
///
/// An alias table (Vose's method) is built once per snapshot (`O(n)`, on the first pick); a
/// pick then draws one 64-bit random number and reads two table entries, whatever the number of
/// endpoints. Weight 0 is never picked; a set whose weights are all 0 has [`NoEndpoints`].
/// Per-thread random sequences (seedable), nothing shared written. Opt-in [`SlowStart`].
/// No feedback of its own: its guards are detached unless outlier detection
/// watches the set (then they report the outcome alone).
///
/// ```
/// use sdkit_core::lb::{Balancer, WeightedRandom};
/// use sdkit_core::{EndpointSet, Instance};
///
/// let set = EndpointSet::fixed([
///     (Instance::from_addr("a:1").with_weight(0), 'a'),
///     (Instance::from_addr("b:1").with_weight(1), 'b'),
/// ]);
/// let wr = WeightedRandom::with_seed(set, 7);
/// assert!((0..1000).all(|_| wr.pick().unwrap() == 'b'));
/// ```
#[derive(Debug)]
pub struct WeightedRandom<S: Send + Sync> {
    reader: Reader<S, Alias>,
    slow_start: Option<SlowStart>,
}

impl<S: Send + Sync + 'static> WeightedRandom<S> {
    /// Weighted random choice over `set`, seeded from the thread RNG.
    pub fn new(set: EndpointSet<S>) -> Self {
        Self::with_seed(set, rand::random())
    }

    /// Weighted random choice over `set` with a fixed seed.
    pub fn with_seed(set: EndpointSet<S>, seed: u64) -> Self {
        WeightedRandom {
            reader: Reader::with_table(set, seed, Alias::build),
            slow_start: None,
        }
    }

    /// Ramps new endpoints up (see [`SlowStart`]).
    pub fn with_slow_start(mut self, slow_start: SlowStart) -> Self {
        self.slow_start = Some(slow_start);
        self
    }
}

/// Vose's alias table over the endpoints of non-zero weight: one column per such endpoint, each
/// column one 16-byte entry, so a draw reads one entry and nothing else before the endpoint.
pub(crate) struct Alias {
    columns: Vec<Column>,
    latest_join: Option<Instant>,
}

/// One column: its own endpoint when the draw's low 64 bits are below `keep`, else its alias's.
struct Column {
    keep: u64,
    /// The column's own endpoint (index into the snapshot).
    this: u32,
    /// The endpoint of the column's alias.
    other: u32,
}

impl Alias {
    pub(crate) fn build<S>(endpoints: &Endpoints<S>) -> Self {
        let weights: Vec<(u32, f64)> = endpoints
            .iter()
            .enumerate()
            .filter(|(_, e)| e.instance().weight() > 0)
            .map(|(i, e)| (i as u32, f64::from(e.instance().weight())))
            .collect();
        let mut alias = Alias::from_weights(&weights);
        alias.latest_join = latest_join(endpoints);
        alias
    }

    fn from_weights(weights: &[(u32, f64)]) -> Self {
        let n = weights.len();
        let total: f64 = weights.iter().map(|(_, w)| w).sum();
        let mut scaled: Vec<f64> = weights.iter().map(|(_, w)| w * n as f64 / total).collect();
        let mut keep = vec![u64::MAX; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            keep[s] = (scaled[s] * 2f64.powi(64)) as u64;
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Left over (rounding): probability 1 of keeping.
        Alias {
            columns: (0..n)
                .map(|c| Column {
                    keep: keep[c],
                    this: weights[c].0,
                    other: weights[alias[c] as usize].0,
                })
                .collect(),
            latest_join: None,
        }
    }

    /// The number of endpoints of non-zero weight.
    pub(crate) fn len(&self) -> usize {
        self.columns.len()
    }

    #[inline]
    pub(crate) fn draw(&self, local: &mut Local) -> usize {
        let product = u128::from(local.next_u64()) * self.columns.len() as u128;
        let column = &self.columns[(product >> 64) as usize];
        let endpoint = if (product as u64) < column.keep {
            column.this
        } else {
            column.other
        };
        endpoint as usize
    }
}

impl<S: Clone + Send + Sync + 'static> WeightedRandom<S> {
    #[inline]
    fn choose<R>(
        &self,
        cx: &PickContext<'_>,
        f: impl FnOnce(&Endpoints<S>, usize) -> R,
    ) -> Result<R, NoEndpoints> {
        self.reader.with(|endpoints, alias, local| {
            if alias.columns.is_empty() {
                return Err(NoEndpoints);
            }
            let mut first = alias.draw(local);
            if let Some(now) = now_if_warming(self.slow_start.as_ref(), alias.latest_join, local)
                && let Some(slow_start) = &self.slow_start
            {
                first = ramp(slow_start, endpoints, now, local, first, |l| alias.draw(l));
            }
            let i = ready::filter(endpoints, local, cx, true, first, |l, _| alias.draw(l));
            Ok(f(endpoints, i))
        })
    }
}

impl<S: Clone + Send + Sync + 'static> Balancer<S> for WeightedRandom<S> {
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
    use super::Alias;

    #[test]
    fn alias_probabilities_are_the_weights() {
        let weights = [(0u32, 1.0), (1, 2.0), (2, 7.0)];
        let alias = Alias::from_weights(&weights);
        // Exact probability of each endpoint: sum over columns of keep/alias shares.
        let n = alias.columns.len() as f64;
        let mut p = [0.0f64; 3];
        for column in &alias.columns {
            let keep = column.keep as f64 / 2f64.powi(64);
            p[column.this as usize] += keep / n;
            p[column.other as usize] += (1.0 - keep) / n;
        }
        for (i, expected) in [0.1, 0.2, 0.7].iter().enumerate() {
            assert!((p[i] - expected).abs() < 1e-9, "{p:?}");
        }
    }
}
