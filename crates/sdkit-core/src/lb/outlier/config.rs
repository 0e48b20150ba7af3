//! Configuration of outlier detection: Envoy's consecutive-failure ejection and gRPC A50's
//! success-rate and failure-percentage ejection, with their defaults.

use std::time::Duration;

use crate::lb::FailureClass;

/// When and for how long endpoints are ejected. See the [module docs](super).
///
/// Defaults: Envoy's consecutive failures (5), interval 10 s, base ejection 30 s × number of
/// ejections, at most 300 s, at most 10 % of the endpoints ejected (always at least one may be);
/// gRPC A50's success-rate and failure-percentage ejection with their defaults.
///
/// ```
/// use std::time::Duration;
/// use sdkit_core::lb::outlier::OutlierConfig;
///
/// let config = OutlierConfig::default()
///     .with_consecutive_failures(Some(3))
///     .with_base_ejection_time(Duration::from_secs(10))
///     .with_max_ejection_percent(50);
/// assert_eq!(config.consecutive_failures(), Some(3));
/// assert_eq!(config.interval(), Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierConfig {
    consecutive_failures: Option<u32>,
    interval: Duration,
    base_ejection_time: Duration,
    max_ejection_time: Duration,
    max_ejection_percent: u32,
    success_rate: Option<SuccessRate>,
    failure_percentage: Option<FailurePercentage>,
    failure_classes: FailureClasses,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            consecutive_failures: Some(5),
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
            success_rate: Some(SuccessRate::default()),
            failure_percentage: Some(FailurePercentage::default()),
            failure_classes: FailureClasses::default(),
        }
    }
}

impl OutlierConfig {
    /// Ejects an endpoint after this many failures in a row (`None`: never for that reason).
    /// Default 5 (Envoy's `consecutive_5xx`). `Some(0)` is taken as `Some(1)`.
    pub fn with_consecutive_failures(mut self, n: Option<u32>) -> Self {
        self.consecutive_failures = n.map(|n| n.max(1));
        self
    }

    /// How often success rates and failure percentages are evaluated and ejection multipliers
    /// decay. Default 10 s. At least 1 ms.
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The first ejection lasts this long; the n-th lasts n times as long. Default 30 s.
    pub fn with_base_ejection_time(mut self, base: Duration) -> Self {
        self.base_ejection_time = base;
        self
    }

    /// The longest ejection (the base time if that is longer). Default 300 s.
    pub fn with_max_ejection_time(mut self, max: Duration) -> Self {
        self.max_ejection_time = max;
        self
    }

    /// At most this percentage of the endpoints is ejected at once, but one endpoint may always
    /// be (Envoy's rule). Default 10; capped at 100; 0 disables ejection.
    pub fn with_max_ejection_percent(mut self, percent: u32) -> Self {
        self.max_ejection_percent = percent.min(100);
        self
    }

    /// Success-rate ejection (`None`: off). Default: on, with A50's defaults.
    pub fn with_success_rate(mut self, success_rate: Option<SuccessRate>) -> Self {
        self.success_rate = success_rate;
        self
    }

    /// Failure-percentage ejection (`None`: off). Default: on, with A50's defaults.
    pub fn with_failure_percentage(
        mut self,
        failure_percentage: Option<FailurePercentage>,
    ) -> Self {
        self.failure_percentage = failure_percentage;
        self
    }

    /// Which failure classes count as failures (the others are ignored, as cancelled calls
    /// are). Default: everything but [`FailureClass::Other`] (an application error says nothing
    /// about the endpoint).
    pub fn with_failure_classes(mut self, classes: FailureClasses) -> Self {
        self.failure_classes = classes;
        self
    }

    /// The failure classes that count.
    pub fn failure_classes(&self) -> FailureClasses {
        self.failure_classes
    }

    /// Failures in a row that eject an endpoint.
    pub fn consecutive_failures(&self) -> Option<u32> {
        self.consecutive_failures
    }

    /// The evaluation interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The base ejection time.
    pub fn base_ejection_time(&self) -> Duration {
        self.base_ejection_time
    }

    /// The longest ejection.
    pub fn max_ejection_time(&self) -> Duration {
        self.max_ejection_time.max(self.base_ejection_time)
    }

    /// The most endpoints ejected at once, in percent (one may always be).
    pub fn max_ejection_percent(&self) -> u32 {
        self.max_ejection_percent
    }

    /// Success-rate ejection, if on.
    pub fn success_rate(&self) -> Option<&SuccessRate> {
        self.success_rate.as_ref()
    }

    /// Failure-percentage ejection, if on.
    pub fn failure_percentage(&self) -> Option<&FailurePercentage> {
        self.failure_percentage.as_ref()
    }

    /// How long the `multiplier`-th ejection lasts: base × multiplier, at most the max time.
    pub fn ejection_time(&self, multiplier: u32) -> Duration {
        self.base_ejection_time
            .saturating_mul(multiplier.max(1))
            .min(self.max_ejection_time())
    }

    /// The most endpoints out of `total` that may be ejected at once.
    pub fn max_ejected(&self, total: usize) -> usize {
        if self.max_ejection_percent == 0 || total == 0 {
            return 0;
        }
        (total * self.max_ejection_percent as usize / 100).max(1)
    }
}

/// gRPC A50's success-rate ejection: an endpoint whose success rate over the last interval is
/// below `mean − stdev × factor` of the endpoints with enough requests is ejected.
#[derive(Debug, Clone, PartialEq)]
pub struct SuccessRate {
    /// The standard-deviation factor, in thousandths (1900 = 1.9). Default 1900.
    pub stdev_factor: u32,
    /// Chance, in percent, that a detected outlier is ejected. Default 100.
    pub enforcement_percentage: u32,
    /// Endpoints with enough requests needed before any is judged. Default 5.
    pub minimum_hosts: u32,
    /// Requests in the interval an endpoint needs to be judged. Default 100.
    pub request_volume: u32,
}

impl Default for SuccessRate {
    fn default() -> Self {
        SuccessRate {
            stdev_factor: 1900,
            enforcement_percentage: 100,
            minimum_hosts: 5,
            request_volume: 100,
        }
    }
}

/// gRPC A50's failure-percentage ejection: an endpoint whose failures in the last interval
/// exceed `threshold` percent is ejected.
#[derive(Debug, Clone, PartialEq)]
pub struct FailurePercentage {
    /// Failure percentage above which an endpoint is ejected. Default 85.
    pub threshold: u32,
    /// Chance, in percent, that a detected outlier is ejected. Default 100.
    pub enforcement_percentage: u32,
    /// Endpoints needed before any is judged. Default 5.
    pub minimum_hosts: u32,
    /// Requests in the interval an endpoint needs to be judged. Default 50.
    pub request_volume: u32,
}

impl Default for FailurePercentage {
    fn default() -> Self {
        FailurePercentage {
            threshold: 85,
            enforcement_percentage: 100,
            minimum_hosts: 5,
            request_volume: 50,
        }
    }
}

/// A set of [`FailureClass`]es: which failures outlier detection counts.
///
/// ```
/// use sdkit_core::lb::FailureClass;
/// use sdkit_core::lb::outlier::FailureClasses;
///
/// let classes = FailureClasses::default();
/// assert!(classes.contains(FailureClass::Timeout));
/// assert!(!classes.contains(FailureClass::Other));
/// let strict = FailureClasses::none().with(FailureClass::ConnectFailed);
/// assert!(!strict.contains(FailureClass::ServerError));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureClasses(u8);

impl Default for FailureClasses {
    /// Connect failures, timeouts, unavailable, server errors.
    fn default() -> Self {
        FailureClasses::none()
            .with(FailureClass::ConnectFailed)
            .with(FailureClass::Timeout)
            .with(FailureClass::Unavailable)
            .with(FailureClass::ServerError)
    }
}

impl FailureClasses {
    /// No class counts.
    pub const fn none() -> Self {
        FailureClasses(0)
    }

    /// Every class counts (unknown errors too).
    pub fn all() -> Self {
        FailureClasses::default().with(FailureClass::Other)
    }

    const fn bit(class: FailureClass) -> u8 {
        match class {
            FailureClass::ConnectFailed => 1,
            FailureClass::Timeout => 2,
            FailureClass::Unavailable => 4,
            FailureClass::ServerError => 8,
            FailureClass::Other => 16,
        }
    }

    /// This set plus `class`.
    pub const fn with(self, class: FailureClass) -> Self {
        FailureClasses(self.0 | Self::bit(class))
    }

    /// This set without `class`.
    pub const fn without(self, class: FailureClass) -> Self {
        FailureClasses(self.0 & !Self::bit(class))
    }

    /// Whether `class` counts.
    #[inline]
    pub const fn contains(self, class: FailureClass) -> bool {
        self.0 & Self::bit(class) != 0
    }
}
