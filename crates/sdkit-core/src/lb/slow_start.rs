//! Slow start (Envoy's semantics): a new endpoint's effective weight ramps up over a window.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::reader::Local;
use crate::endpoint::Endpoints;
use crate::feedback::state::EndpointState;

/// Slow start: an endpoint that joined the set less than `window` ago gets the effective weight
/// `weight × max(min_weight_percent / 100, (age / window)^(1 / aggression))` (Envoy's
/// formula), so it takes a growing share of requests instead of a full one at once.
///
/// Endpoints of an endpointer's first snapshot count as warm (there is nothing to protect them
/// from). Used by the weighted and least-loaded balancers; opt-in.
///
/// ```
/// use std::time::Duration;
/// use sdkit_core::lb::SlowStart;
/// let s: SlowStart = serde_json::from_str(r#"{"window": "30s"}"#).unwrap();
/// assert_eq!(s.window, Duration::from_secs(30));
/// assert_eq!((s.aggression, s.min_weight_percent), (1.0, 10.0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowStart {
    /// How long the ramp lasts.
    #[serde(
        deserialize_with = "crate::duration::deserialize",
        serialize_with = "serialize_duration"
    )]
    pub window: Duration,
    /// The ramp's shape: 1.0 (the default) is linear, larger values ramp faster at first.
    #[serde(default = "default_aggression")]
    pub aggression: f64,
    /// The smallest share of its weight a new endpoint gets, in percent (default 10).
    #[serde(default = "default_min_weight_percent")]
    pub min_weight_percent: f64,
}

/// Serializes a duration in the [`crate::duration`] grammar.
pub(crate) fn serialize_duration<S: serde::Serializer>(
    d: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&crate::duration::format(*d))
}

fn default_aggression() -> f64 {
    1.0
}

fn default_min_weight_percent() -> f64 {
    10.0
}

impl SlowStart {
    /// A linear ramp over `window`, starting at 10 %.
    pub fn new(window: Duration) -> Self {
        SlowStart {
            window,
            aggression: default_aggression(),
            min_weight_percent: default_min_weight_percent(),
        }
    }

    /// The share (0 < f ≤ 1) of its weight `state` gets at `now`.
    pub fn factor(&self, state: &EndpointState, now: Instant) -> f64 {
        let Some(joined) = state.joined_at() else {
            return 1.0;
        };
        let age = now.saturating_duration_since(joined);
        if age >= self.window || self.window.is_zero() {
            return 1.0;
        }
        let min = (self.min_weight_percent / 100.0).clamp(0.0, 1.0);
        let time = age.as_secs_f64() / self.window.as_secs_f64();
        let aggression = if self.aggression > 0.0 {
            self.aggression
        } else {
            1.0
        };
        time.powf(1.0 / aggression)
            .max(min)
            .clamp(f64::MIN_POSITIVE, 1.0)
    }
}

/// The slow-start clock of a balancer's pick: reads the time only while some endpoint of the
/// snapshot may still ramp up.
pub(crate) fn now_if_warming(
    slow_start: Option<&SlowStart>,
    latest_join: Option<Instant>,
    local: &mut Local,
) -> Option<Instant> {
    let warm_at = latest_join? + slow_start?.window;
    if local.warm {
        return None;
    }
    let now = Instant::now();
    if now >= warm_at {
        local.warm = true;
        return None;
    }
    Some(now)
}

/// Applies the ramp to a balancer's candidate: a ramping endpoint is kept with probability
/// equal to its factor, else the balancer's next candidate is considered (at most 8 times), so
/// each endpoint's share scales with its factor.
pub(crate) fn ramp<S>(
    slow_start: &SlowStart,
    endpoints: &Endpoints<S>,
    now: Instant,
    local: &mut Local,
    mut candidate: usize,
    mut next: impl FnMut(&mut Local) -> usize,
) -> usize {
    for _ in 0..8 {
        let factor = slow_start.factor(endpoints.as_slice()[candidate].state(), now);
        if factor >= 1.0 || local.unit() < factor {
            return candidate;
        }
        candidate = next(local);
    }
    candidate
}

/// The latest join time among `endpoints` (what [`SlowStart::warm_at`] adds the window to).
pub(crate) fn latest_join<S>(endpoints: &Endpoints<S>) -> Option<Instant> {
    endpoints.iter().filter_map(|e| e.state().joined_at()).max()
}
