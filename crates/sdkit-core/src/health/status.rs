//! [`HealthStatus`]: one endpoint's health as a small state machine over check results.

use super::HealthConfig;

/// The health of one endpoint, driven by check results and the thresholds.
///
/// ```
/// use sdkit_core::health::{HealthConfig, HealthStatus};
///
/// let config = HealthConfig::default(); // unhealthy after 3 failures, healthy after 2 passes
/// let mut status = HealthStatus::new();
/// assert_eq!(status.observe(false, &config), None);
/// assert_eq!(status.observe(false, &config), None);
/// assert_eq!(status.observe(false, &config), Some(false)); // turned unhealthy
/// assert_eq!(status.observe(true, &config), None);
/// assert_eq!(status.observe(true, &config), Some(true)); // healthy again
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthStatus {
    healthy: bool,
    /// Results in a row that disagree with `healthy`.
    streak: u32,
}

impl Default for HealthStatus {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthStatus {
    /// A new endpoint: healthy until checks say otherwise.
    pub fn new() -> Self {
        HealthStatus {
            healthy: true,
            streak: 0,
        }
    }

    /// Whether the endpoint is healthy.
    pub fn is_healthy(&self) -> bool {
        self.healthy
    }

    /// Records one check result; returns the new health when it changed.
    pub fn observe(&mut self, passed: bool, config: &HealthConfig) -> Option<bool> {
        if passed == self.healthy {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.healthy {
            config.unhealthy_threshold()
        } else {
            config.healthy_threshold()
        };
        if self.streak < needed {
            return None;
        }
        self.healthy = passed;
        self.streak = 0;
        Some(passed)
    }
}
