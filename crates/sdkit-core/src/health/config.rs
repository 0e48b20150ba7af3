//! [`HealthConfig`]: how often, how long, how many.

use std::time::Duration;

/// Timing and thresholds of active health checks.
///
/// Defaults: every 5 s ± 10 % jitter, 1 s timeout, unhealthy after 3 failed checks in a row,
/// healthy again after 2 passed ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthConfig {
    interval: Duration,
    jitter: f64,
    timeout: Duration,
    healthy_threshold: u32,
    unhealthy_threshold: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval: Duration::from_secs(5),
            jitter: 0.1,
            timeout: Duration::from_secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        }
    }
}

impl HealthConfig {
    /// Time between two checks of one endpoint (at least 1 ms).
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Each interval is drawn from `interval × (1 ± jitter)` (0.0–1.0) so that checks of many
    /// endpoints and clients spread out.
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// How long one check may take before it counts as failed.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Passed checks in a row that make an unhealthy endpoint healthy (at least 1).
    pub fn with_healthy_threshold(mut self, n: u32) -> Self {
        self.healthy_threshold = n.max(1);
        self
    }

    /// Failed checks in a row that make a healthy endpoint unhealthy (at least 1).
    pub fn with_unhealthy_threshold(mut self, n: u32) -> Self {
        self.unhealthy_threshold = n.max(1);
        self
    }

    /// The interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The jitter fraction.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// The per-check timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Passed checks needed to turn healthy.
    pub fn healthy_threshold(&self) -> u32 {
        self.healthy_threshold
    }

    /// Failed checks needed to turn unhealthy.
    pub fn unhealthy_threshold(&self) -> u32 {
        self.unhealthy_threshold
    }

    /// The interval jittered by `unit` (a uniform draw in [0, 1)).
    pub fn jittered(&self, unit: f64) -> Duration {
        let factor = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        self.interval.mul_f64(factor.max(0.0))
    }
}
