//! [`P2c`]: power of two choices over a load — in-flight calls, or PeakEWMA latency × in-flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::context::PickContext;
use super::guard::{CallGuard, Picked};
use super::reader::Reader;
use super::slow_start::{SlowStart, latest_join, now_if_warming};
use super::state::DEFAULT_DECAY;
use super::{Balancer, non_empty, ready};
use crate::endpoint::Endpoints;
use crate::endpoint_set::EndpointSet;
use crate::error::NoEndpoints;
use crate::registrar::BoxFuture;

/// The load [`P2c`] compares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// Calls in flight (Envoy's least-request, tower's `PendingRequests`).
    InFlight,
    /// PeakEWMA latency × (calls in flight + 1) (linkerd, Finagle, tower's `PeakEwma`).
    PeakEwma {
        /// The latency assumed for an endpoint with no observation yet.
        default_rtt: Duration,
        /// How fast the estimate forgets (an idle endpoint's estimate decays toward zero).
        decay: Duration,
    },
}

/// The default latency assumed before any observation (tower's examples use 30 ms).
pub const DEFAULT_RTT: Duration = Duration::from_millis(30);

impl Load {
    /// PeakEWMA with [`DEFAULT_RTT`] and [`DEFAULT_DECAY`].
    pub const PEAK_EWMA: Load = Load::PeakEwma {
        default_rtt: DEFAULT_RTT,
        decay: DEFAULT_DECAY,
    };
}

/// Power of two choices: draw two distinct endpoints at random, take the one with the lower
/// load divided by its weight (and slow-start factor). Native on the feedback path: its guards
/// track each call (in-flight count at pick, outcome and latency when the guard ends), so the
/// calls must end their guards — [`BalancedService`](crate::BalancedService) and
/// [`Retry`](crate::retry::Retry) do.
///
/// Weight 0 is never picked; a set whose weights are all 0 has [`NoEndpoints`]. A pick costs
/// the same at 3 or 10 000 endpoints: two random draws, two loads, and with
/// [`Load::PeakEwma`] one clock read.
///
/// ```
/// use sdkit_core::lb::{Balancer, P2c, PickContext};
/// use sdkit_core::{EndpointSet, Instance};
///
/// let set = EndpointSet::fixed([(Instance::from_addr("a:1"), 'a'), (Instance::from_addr("b:1"), 'b')]);
/// let p2c = P2c::least_in_flight(set);
/// let busy = p2c.pick_with(&PickContext::new()).unwrap(); // one call in flight on it…
/// let other = p2c.pick_with(&PickContext::new()).unwrap(); // …so the next goes to the other
/// assert_ne!(busy.service, other.service);
/// busy.guard.success();
/// other.guard.success();
/// ```
#[derive(Debug)]
pub struct P2c<S> {
    reader: Reader<S>,
    load: Load,
    slow_start: Option<SlowStart>,
}

impl<S: Send + Sync + 'static> P2c<S> {
    /// Power of two choices over `load`, seeded from the thread RNG.
    pub fn new(set: EndpointSet<S>, load: Load) -> Self {
        Self::with_seed(set, load, rand::random())
    }

    /// Least calls in flight.
    pub fn least_in_flight(set: EndpointSet<S>) -> Self {
        Self::new(set, Load::InFlight)
    }

    /// PeakEWMA latency × in-flight, with [`DEFAULT_RTT`] and [`DEFAULT_DECAY`].
    pub fn peak_ewma(set: EndpointSet<S>) -> Self {
        Self::new(set, Load::PEAK_EWMA)
    }

    /// With a fixed seed for the random draws.
    pub fn with_seed(set: EndpointSet<S>, load: Load, seed: u64) -> Self {
        P2c {
            reader: Reader::new(set, seed),
            load,
            slow_start: None,
        }
    }

    /// Ramps new endpoints up (see [`SlowStart`]): a ramping endpoint's load counts as divided
    /// by its factor.
    pub fn with_slow_start(mut self, slow_start: SlowStart) -> Self {
        self.slow_start = Some(slow_start);
        self
    }

    /// The load compared.
    pub fn load(&self) -> Load {
        self.load
    }
}

/// The endpoints of non-zero weight (`None`: all of them) and their weights.
pub(crate) struct Eligible {
    index: Option<Vec<u32>>,
    weight: Vec<f64>,
    uniform: bool,
    latest_join: Option<Instant>,
}

impl Eligible {
    pub(crate) fn build<S>(endpoints: &Endpoints<S>) -> Self {
        let weight: Vec<f64> = endpoints
            .iter()
            .map(|e| f64::from(e.instance().weight()))
            .collect();
        let index = weight.contains(&0.0).then(|| {
            (0..weight.len() as u32)
                .filter(|&i| weight[i as usize] > 0.0)
                .collect()
        });
        let uniform = weight.windows(2).all(|w| w[0] == w[1]);
        Eligible {
            index,
            weight,
            uniform,
            latest_join: latest_join(endpoints),
        }
    }

    fn len(&self, endpoints: usize) -> usize {
        self.index.as_ref().map_or(endpoints, Vec::len)
    }

    #[inline]
    fn at(&self, k: usize) -> usize {
        self.index.as_ref().map_or(k, |index| index[k] as usize)
    }
}

impl<S: Clone + Send + Sync + 'static> P2c<S> {
    #[inline]
    fn choose(&self, cx: &PickContext<'_>) -> Result<Picked<S>, NoEndpoints> {
        self.reader.with(|endpoints, local| {
            local.with_derived(endpoints, Eligible::build, |eligible, local| {
                let m = eligible.len(endpoints.len());
                if m == 0 {
                    return Err(NoEndpoints);
                }
                let a = local.below(m);
                let (first, other) = if m == 1 {
                    (eligible.at(a), eligible.at(a))
                } else {
                    let mut b = local.below(m - 1);
                    if b >= a {
                        b += 1;
                    }
                    let (a, b) = (eligible.at(a), eligible.at(b));
                    let now = match self.load {
                        Load::PeakEwma { .. } => Some(Instant::now()),
                        Load::InFlight => None,
                    };
                    let ramp_now =
                        now_if_warming(self.slow_start.as_ref(), eligible.latest_join, local);
                    let cost = |i: usize| self.cost(endpoints, eligible, i, now, ramp_now);
                    if cost(b) < cost(a) { (b, a) } else { (a, b) }
                };
                let i = ready::filter(endpoints, local, cx, first, |local, k| {
                    if k == 1 {
                        other
                    } else {
                        eligible.at(local.below(m))
                    }
                });
                let e = &endpoints.as_slice()[i];
                Ok(Picked {
                    service: e.service().clone(),
                    guard: CallGuard::track(Arc::clone(e.state())),
                    key: e.key(),
                })
            })
        })
    }

    #[inline]
    fn cost(
        &self,
        endpoints: &Endpoints<S>,
        eligible: &Eligible,
        i: usize,
        now: Option<Instant>,
        ramp_now: Option<Instant>,
    ) -> f64 {
        let state = endpoints.as_slice()[i].state();
        let pending = f64::from(state.in_flight()) + 1.0;
        let mut cost = match (self.load, now) {
            (Load::PeakEwma { default_rtt, decay }, Some(now)) => {
                let rtt = state.latency_nanos_at(now, decay);
                let rtt = if rtt > 0.0 {
                    rtt
                } else {
                    default_rtt.as_nanos() as f64
                };
                rtt * pending
            }
            _ => pending,
        };
        if !eligible.uniform {
            cost /= eligible.weight[i];
        }
        if let (Some(now), Some(slow_start)) = (ramp_now, &self.slow_start) {
            cost /= slow_start.factor(state, now);
        }
        cost
    }
}

impl<S: Clone + Send + Sync + 'static> Balancer<S> for P2c<S> {
    fn pick_with(&self, cx: &PickContext<'_>) -> Result<Picked<S>, NoEndpoints> {
        self.choose(cx)
    }

    fn endpoints_available(&self) -> BoxFuture<'static, ()> {
        non_empty(self.reader.set())
    }
}
