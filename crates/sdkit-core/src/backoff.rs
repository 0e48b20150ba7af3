//! Capped exponential backoff with jitter, shared by every retry loop in sdkit.
//!
//! The delay before retry `n` (counting from 0) is `min(initial × multiplierⁿ, max)`, of which a
//! `jitter` fraction is randomised: with `jitter = 0.5` the delay is uniform in
//! `[base/2, base]`; with `jitter = 1.0` it is uniform in `[0, base]` ("full jitter").
//!
//! ```
//! use std::time::Duration;
//! use sdkit_core::Backoff;
//!
//! let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5)).with_jitter(0.0);
//! assert_eq!(backoff.delay(0), Duration::from_millis(100));
//! assert_eq!(backoff.delay(3), Duration::from_millis(800));
//! assert_eq!(backoff.delay(30), Duration::from_secs(5));
//! ```
//!
//! In serde configurations a backoff is a table whose fields all default:
//! `{"initial": "100ms", "max": "5s", "multiplier": 2.0, "jitter": 0.5}`.
//!
//! ```
//! use std::time::Duration;
//! use sdkit_core::Backoff;
//!
//! let b: Backoff = serde_json::from_str(r#"{"initial": "50ms", "max": "2s"}"#).unwrap();
//! assert_eq!((b.initial(), b.max()), (Duration::from_millis(50), Duration::from_secs(2)));
//! ```

use std::time::Duration;

use serde::Deserialize;

/// Capped exponential backoff with jitter. See the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(from = "BackoffFields")]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    multiplier: f64,
    jitter: f64,
}

impl Default for Backoff {
    /// 100 ms doubling up to 30 s, half jittered.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// Starts at `initial`, doubles, never exceeds `max`; half jittered.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            ..Backoff::default()
        }
    }

    /// Sets the growth factor (values below 1 are treated as 1).
    pub fn with_multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier.is_finite() {
            multiplier.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// Sets the randomised fraction of each delay, clamped to `[0, 1]`.
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// The first delay.
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The cap.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The delay before retry `attempt` (0-based), jitter applied.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self.base(attempt);
        if self.jitter == 0.0 {
            return base;
        }
        let random: f64 = rand::random_range(0.0..=1.0);
        base.mul_f64(1.0 - self.jitter * random)
    }

    /// The delay before retry `attempt` without jitter.
    pub fn base(&self, attempt: u32) -> Duration {
        let factor = self.multiplier.powi(attempt.min(1024) as i32);
        let secs = self.initial.as_secs_f64() * factor;
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// A stateful iterator-like helper for a retry loop.
    pub fn start(&self) -> BackoffState {
        BackoffState {
            backoff: *self,
            attempt: 0,
        }
    }
}

/// The serde form of a [`Backoff`]: every field optional.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct BackoffFields {
    #[serde(deserialize_with = "crate::duration::deserialize")]
    initial: Duration,
    #[serde(deserialize_with = "crate::duration::deserialize")]
    max: Duration,
    multiplier: f64,
    jitter: f64,
}

impl Default for BackoffFields {
    fn default() -> Self {
        let b = Backoff::default();
        BackoffFields {
            initial: b.initial,
            max: b.max,
            multiplier: b.multiplier,
            jitter: b.jitter,
        }
    }
}

impl From<BackoffFields> for Backoff {
    fn from(f: BackoffFields) -> Self {
        Backoff::new(f.initial, f.max)
            .with_multiplier(f.multiplier)
            .with_jitter(f.jitter)
    }
}

/// The running state of one retry loop: call [`next_delay`](Self::next_delay) after each
/// failure and [`reset`](Self::reset) after a success.
#[derive(Clone, Debug)]
pub struct BackoffState {
    backoff: Backoff,
    attempt: u32,
}

impl BackoffState {
    /// The delay to wait before the next try; advances the attempt count.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.backoff.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// Failures since the last reset.
    pub fn failures(&self) -> u32 {
        self.attempt
    }

    /// Back to the initial delay.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_bounds() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).with_jitter(0.5);
        for attempt in 0..20 {
            let base = b.base(attempt);
            for _ in 0..50 {
                let d = b.delay(attempt);
                assert!(
                    d <= base && d >= base / 2,
                    "{d:?} not in [{:?}, {base:?}]",
                    base / 2
                );
            }
        }
    }

    #[test]
    fn state_grows_and_resets() {
        let mut s = Backoff::new(Duration::from_millis(10), Duration::from_millis(40))
            .with_jitter(0.0)
            .start();
        let seen: Vec<_> = (0..4).map(|_| s.next_delay().as_millis()).collect();
        assert_eq!(seen, [10, 20, 40, 40]);
        s.reset();
        assert_eq!(s.next_delay().as_millis(), 10);
    }

    #[test]
    fn odd_parameters_do_not_panic() {
        let b = Backoff::new(Duration::from_secs(1), Duration::ZERO)
            .with_multiplier(f64::NAN)
            .with_jitter(f64::INFINITY);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1));
    }
}
