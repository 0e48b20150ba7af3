//! The outlier detector as a pure state machine: fed call results and the current time, it
//! answers which endpoints to eject and when they return. No clock, no task, no lock: the
//! [`OutlierDetector`](super::OutlierDetector) drives it; tests drive it directly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use super::config::OutlierConfig;

/// Lock-free per-endpoint call counters: what the call path updates (two atomic additions per
/// call), read and reset by the detector once per interval.
#[derive(Debug, Default)]
pub struct Counters {
    /// Failures since the last success (or ejection).
    consecutive: AtomicU32,
    /// Calls since the last interval: successes in the low 32 bits, failures in the high 32.
    calls: AtomicU64,
}

const FAILURE: u64 = 1 << 32;

impl Counters {
    /// Records one finished call; returns the failures in a row after it (0 after a success).
    #[inline]
    pub fn record(&self, success: bool) -> u32 {
        if success {
            self.calls.fetch_add(1, Ordering::Relaxed);
            if self.consecutive.load(Ordering::Relaxed) != 0 {
                self.consecutive.store(0, Ordering::Relaxed);
            }
            0
        } else {
            self.calls.fetch_add(FAILURE, Ordering::Relaxed);
            self.consecutive
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1)
        }
    }

    /// Failures since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive.load(Ordering::Relaxed)
    }

    /// Takes the interval's `(successes, failures)` and starts a new interval.
    fn take(&self) -> (u64, u64) {
        let calls = self.calls.swap(0, Ordering::Relaxed);
        (calls & (FAILURE - 1), calls >> 32)
    }
}

/// Why an endpoint was ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `consecutive_failures` failures in a row.
    ConsecutiveFailures,
    /// Its success rate was an outlier among the endpoints' (A50).
    SuccessRate,
    /// Its failure percentage passed the threshold (A50).
    FailurePercentage,
}

/// A change of an endpoint's ejection status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<K> {
    /// The endpoint is ejected until `until`.
    Ejected {
        /// The endpoint.
        key: K,
        /// When it returns.
        until: Instant,
        /// Why.
        reason: Reason,
    },
    /// The endpoint's ejection ran out: it is picked again.
    Returned {
        /// The endpoint.
        key: K,
    },
}

#[derive(Debug)]
struct Host {
    counters: Arc<Counters>,
    /// Ejected until then.
    until: Option<Instant>,
    /// Ejections not yet forgiven: +1 per ejection, −1 per interval spent not ejected.
    multiplier: u32,
}

impl Host {
    fn new() -> Self {
        Host {
            counters: Arc::new(Counters::default()),
            until: None,
            multiplier: 0,
        }
    }
}

/// Outlier detection over a set of endpoints keyed by `K` (their identity). See the
/// [module docs](super).
///
/// ```
/// use std::time::{Duration, Instant};
/// use sdkit_core::lb::outlier::{Change, Detector, OutlierConfig};
///
/// let mut detector = Detector::new(OutlierConfig::default().with_max_ejection_percent(50), 1);
/// detector.update(["a", "b", "c"]);
/// let t0 = Instant::now();
/// for _ in 0..4 {
///     assert_eq!(detector.record(&"b", false, t0), None);
/// }
/// // The fifth failure in a row ejects "b" for the base ejection time, 30 s.
/// let ejected = detector.record(&"b", false, t0).unwrap();
/// assert!(matches!(ejected, Change::Ejected { key: "b", until, .. } if until == t0 + Duration::from_secs(30)));
/// assert!(detector.is_ejected(&"b"));
/// // It returns when its time runs out.
/// assert_eq!(detector.expire(t0 + Duration::from_secs(30)), vec![Change::Returned { key: "b" }]);
/// ```
#[derive(Debug)]
pub struct Detector<K> {
    config: OutlierConfig,
    hosts: BTreeMap<K, Host>,
    ejected: usize,
    rng: u64,
}

impl<K: Ord + Clone> Detector<K> {
    /// A detector with no endpoints; `seed` drives the enforcement-percentage rolls.
    pub fn new(config: OutlierConfig, seed: u64) -> Self {
        Detector {
            config,
            hosts: BTreeMap::new(),
            ejected: 0,
            rng: seed,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &OutlierConfig {
        &self.config
    }

    /// Sets the endpoints: an unchanged key keeps its state (ejection included), a removed key
    /// drops it, a new key starts fresh.
    pub fn update<I: IntoIterator<Item = K>>(&mut self, keys: I) {
        let mut old = std::mem::take(&mut self.hosts);
        for key in keys {
            let host = old.remove(&key).unwrap_or_else(Host::new);
            self.hosts.entry(key).or_insert(host);
        }
        self.ejected = self.hosts.values().filter(|h| h.until.is_some()).count();
    }

    /// The counters the call path updates for `key`.
    pub fn counters(&self, key: &K) -> Option<&Arc<Counters>> {
        self.hosts.get(key).map(|h| &h.counters)
    }

    /// The number of endpoints.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// `true` when there is no endpoint.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Endpoints ejected now.
    pub fn ejected_count(&self) -> usize {
        self.ejected
    }

    /// Whether `key` is ejected.
    pub fn is_ejected(&self, key: &K) -> bool {
        self.hosts.get(key).is_some_and(|h| h.until.is_some())
    }

    /// When `key`'s ejection ends, if it is ejected.
    pub fn ejected_until(&self, key: &K) -> Option<Instant> {
        self.hosts.get(key).and_then(|h| h.until)
    }

    /// The ejection multiplier of `key` (ejections not yet forgiven).
    pub fn multiplier(&self, key: &K) -> u32 {
        self.hosts.get(key).map_or(0, |h| h.multiplier)
    }

    /// The earliest time an ejected endpoint returns.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.hosts.values().filter_map(|h| h.until).min()
    }

    /// Records one finished call of `key` and applies the consecutive-failure rule at once.
    /// (The concurrent driver calls [`Counters::record`] lock-free and
    /// [`on_failure_streak`](Self::on_failure_streak) only when the streak is long enough.)
    pub fn record(&mut self, key: &K, success: bool, now: Instant) -> Option<Change<K>> {
        let streak = self.hosts.get(key)?.counters.record(success);
        match self.config.consecutive_failures() {
            Some(n) if streak >= n => self.on_failure_streak(key, now),
            _ => None,
        }
    }

    /// Ejects `key` if its failures in a row reached the threshold, it is not ejected, and the
    /// ejection cap allows it.
    pub fn on_failure_streak(&mut self, key: &K, now: Instant) -> Option<Change<K>> {
        let threshold = self.config.consecutive_failures()?;
        let host = self.hosts.get(key)?;
        if host.until.is_some() || host.counters.consecutive_failures() < threshold {
            return None;
        }
        self.eject(key, now, Reason::ConsecutiveFailures)
    }

    fn may_eject(&self) -> bool {
        self.ejected < self.config.max_ejected(self.hosts.len())
    }

    fn eject(&mut self, key: &K, now: Instant, reason: Reason) -> Option<Change<K>> {
        if !self.may_eject() {
            return None;
        }
        let host = self.hosts.get_mut(key)?;
        if host.until.is_some() {
            return None;
        }
        host.multiplier = host.multiplier.saturating_add(1);
        let until = now + self.config.ejection_time(host.multiplier);
        host.until = Some(until);
        host.counters.consecutive.store(0, Ordering::Relaxed);
        self.ejected += 1;
        Some(Change::Ejected {
            key: key.clone(),
            until,
            reason,
        })
    }

    /// Returns every endpoint whose ejection has run out by `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Change<K>> {
        let mut changes = Vec::new();
        for (key, host) in &mut self.hosts {
            if host.until.is_some_and(|until| until <= now) {
                host.until = None;
                host.counters.consecutive.store(0, Ordering::Relaxed);
                self.ejected -= 1;
                changes.push(Change::Returned { key: key.clone() });
            }
        }
        changes
    }

    /// The interval's evaluation (call it every `interval`): success-rate and
    /// failure-percentage ejection over the calls since the last tick, multiplier decay for
    /// endpoints not ejected, and returns of expired ejections.
    pub fn tick(&mut self, now: Instant) -> Vec<Change<K>> {
        let volumes: Vec<(K, u64, u64)> = self
            .hosts
            .iter()
            .map(|(key, host)| {
                let (ok, failed) = host.counters.take();
                (key.clone(), ok, failed)
            })
            .collect();
        let mut changes = Vec::new();
        if let Some(sr) = self.config.success_rate().cloned() {
            let judged: Vec<&(K, u64, u64)> = volumes
                .iter()
                .filter(|(_, ok, failed)| ok + failed >= u64::from(sr.request_volume))
                .collect();
            if judged.len() >= sr.minimum_hosts.max(1) as usize {
                let rates: Vec<f64> = judged.iter().map(|(_, ok, f)| rate(*ok, *f)).collect();
                let mean = rates.iter().sum::<f64>() / rates.len() as f64;
                let variance =
                    rates.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / rates.len() as f64;
                let threshold = mean - variance.sqrt() * f64::from(sr.stdev_factor) / 1000.0;
                for ((key, _, _), rate) in judged.iter().zip(rates) {
                    if rate < threshold && self.roll(sr.enforcement_percentage) {
                        changes.extend(self.eject(key, now, Reason::SuccessRate));
                    }
                }
            }
        }
        if let Some(fp) = self.config.failure_percentage().cloned()
            && self.hosts.len() >= fp.minimum_hosts as usize
        {
            for (key, ok, failed) in &volumes {
                let total = ok + failed;
                if total >= u64::from(fp.request_volume.max(1))
                    && failed * 100 > u64::from(fp.threshold) * total
                    && self.roll(fp.enforcement_percentage)
                {
                    changes.extend(self.eject(key, now, Reason::FailurePercentage));
                }
            }
        }
        for host in self.hosts.values_mut() {
            if host.until.is_none() && host.multiplier > 0 {
                host.multiplier -= 1;
            }
        }
        changes.extend(self.expire(now));
        changes
    }

    /// `true` with `percent` % probability.
    fn roll(&mut self, percent: u32) -> bool {
        if percent >= 100 {
            return true;
        }
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        z % 100 < u64::from(percent)
    }
}

fn rate(ok: u64, failed: u64) -> f64 {
    ok as f64 / (ok + failed) as f64
}
