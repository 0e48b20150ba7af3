//! [`P2c`]: power of two choices over a load — in-flight calls, or PeakEWMA latency × in-flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::context::PickContext;
use super::guard::{CallGuard, Picked};
use super::reader::{Local, Reader};
use super::slow_start::{SlowStart, latest_join, now_if_warming};
use super::weighted_random::Alias;
use super::{Balancer, non_empty, ready};
use crate::endpoint::Endpoints;
use crate::endpoint_set::EndpointSet;
use crate::error::NoEndpoints;
use crate::feedback::state::DEFAULT_DECAY;
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

/// Power of two choices: draw two endpoints at random (in proportion to their weights when
/// weights differ, as Envoy's least-request does), take the one with the lower load (divided
/// by its slow-start factor); on a tie, the first drawn — so an idle set is balanced exactly
/// like [`WeightedRandom`](super::WeightedRandom). Native on the feedback path: its guards
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
pub struct P2c<S: Send + Sync> {
    reader: Reader<S, Candidates>,
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
            reader: Reader::with_table(set, seed, Candidates::build),
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

/// How candidates are drawn: uniformly when every weight is equal, else from the alias table.
pub(crate) struct Candidates {
    alias: Option<Alias>,
    latest_join: Option<Instant>,
}

impl Candidates {
    pub(crate) fn build<S>(endpoints: &Endpoints<S>) -> Self {
        let uniform = endpoints
            .as_slice()
            .windows(2)
            .all(|w| w[0].instance().weight() == w[1].instance().weight());
        let all_zero = endpoints.iter().all(|e| e.instance().weight() == 0);
        Candidates {
            alias: (!uniform || all_zero).then(|| Alias::build(endpoints)),
            latest_join: latest_join(endpoints),
        }
    }

    /// The number of endpoints that can be drawn.
    fn len(&self, endpoints: usize) -> usize {
        self.alias.as_ref().map_or(endpoints, Alias::len)
    }

    /// Two candidates, distinct when possible (uniform: always; weighted: after up to three
    /// redraws).
    #[inline]
    fn two(&self, local: &mut Local, len: usize) -> (usize, usize) {
        match &self.alias {
            None if len > 1 => {
                let a = local.below(len);
                let mut b = local.below(len - 1);
                if b >= a {
                    b += 1;
                }
                (a, b)
            }
            None => (0, 0),
            Some(alias) => {
                let a = alias.draw(local);
                let mut b = alias.draw(local);
                for _ in 0..3 {
                    if b != a || alias.len() == 1 {
                        break;
                    }
                    b = alias.draw(local);
                }
                (a, b)
            }
        }
    }

    #[inline]
    fn draw(&self, local: &mut Local, len: usize) -> usize {
        match &self.alias {
            Some(alias) => alias.draw(local),
            None => local.below(len),
        }
    }
}

impl<S: Clone + Send + Sync + 'static> P2c<S> {
    #[inline]
    fn choose(&self, cx: &PickContext<'_>) -> Result<Picked<S>, NoEndpoints> {
        self.reader.with(|endpoints, candidates, local| {
            let len = endpoints.len();
            let m = candidates.len(len);
            if m == 0 {
                return Err(NoEndpoints);
            }
            let (a, b) = candidates.two(local, len);
            let now = match self.load {
                Load::PeakEwma { .. } => Some(Instant::now()),
                Load::InFlight => None,
            };
            let (first, other) = if a == b {
                (a, b)
            } else {
                let ramp_now =
                    now_if_warming(self.slow_start.as_ref(), candidates.latest_join, local);
                let cost = |i: usize| self.cost(endpoints, i, now, ramp_now);
                if cost(b) < cost(a) { (b, a) } else { (a, b) }
            };
            let i = ready::filter(endpoints, local, cx, true, first, |local, k| {
                if k == 1 {
                    other
                } else {
                    candidates.draw(local, len)
                }
            });
            let e = &endpoints.as_slice()[i];
            Ok(Picked {
                service: e.service().clone(),
                guard: match now {
                    Some(now) => CallGuard::track_from(Arc::clone(e.state()), now),
                    None => CallGuard::track_untimed(Arc::clone(e.state())),
                },
                key: e.key(),
            })
        })
    }

    #[inline]
    fn cost(
        &self,
        endpoints: &Endpoints<S>,
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
