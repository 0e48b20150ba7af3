//! Outlier detection: the state machine against a reference model over random sequences of
//! calls, ticks and time steps, its invariants with every rule on, and the A50 rules by example.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use sdkit_core::lb::outlier::{
    Change, Detector, FailurePercentage, OutlierConfig, Reason, SuccessRate,
};

#[derive(Debug, Clone)]
enum Op {
    /// One finished call of host `0` (success or failure).
    Call(usize, bool),
    /// `n` failures in a row of one host.
    Burst(usize, u8),
    /// Time passes by this many ms; expired ejections return.
    Advance(u64),
    /// The interval's evaluation.
    Tick,
    /// The endpoint set becomes the hosts whose bit is set.
    Update(u16),
}

fn op(hosts: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..hosts, any::<bool>()).prop_map(|(h, ok)| Op::Call(h, ok)),
        3 => (0..hosts, 1u8..12).prop_map(|(h, n)| Op::Burst(h, n)),
        3 => (1u64..120_000).prop_map(Op::Advance),
        2 => Just(Op::Tick),
        1 => any::<u16>().prop_map(Op::Update),
    ]
}

#[derive(Debug, Default, Clone)]
struct ModelHost {
    until: Option<Instant>,
    multiplier: u32,
    streak: u32,
}

/// Consecutive failures only: the detector must do exactly what the model says.
fn consecutive_only(percent: u32) -> OutlierConfig {
    OutlierConfig::default()
        .with_success_rate(None)
        .with_failure_percentage(None)
        .with_max_ejection_percent(percent)
}

struct Model {
    config: OutlierConfig,
    hosts: BTreeMap<usize, ModelHost>,
}

impl Model {
    fn ejected(&self) -> usize {
        self.hosts.values().filter(|h| h.until.is_some()).count()
    }

    fn call(&mut self, key: usize, ok: bool, now: Instant) -> Option<Change<usize>> {
        let may_eject = self.ejected() < self.config.max_ejected(self.hosts.len());
        let host = self.hosts.get_mut(&key)?;
        if ok {
            host.streak = 0;
            return None;
        }
        host.streak += 1;
        let threshold = self.config.consecutive_failures()?;
        if host.streak < threshold || host.until.is_some() || !may_eject {
            return None;
        }
        host.streak = 0;
        host.multiplier += 1;
        let until = now + self.config.ejection_time(host.multiplier);
        host.until = Some(until);
        Some(Change::Ejected {
            key,
            until,
            reason: Reason::ConsecutiveFailures,
        })
    }

    fn expire(&mut self, now: Instant) -> Vec<Change<usize>> {
        let mut out = Vec::new();
        for (key, host) in &mut self.hosts {
            if host.until.is_some_and(|u| u <= now) {
                host.until = None;
                host.streak = 0;
                out.push(Change::Returned { key: *key });
            }
        }
        out
    }

    fn tick(&mut self, now: Instant) -> Vec<Change<usize>> {
        for host in self.hosts.values_mut() {
            if host.until.is_none() {
                host.multiplier = host.multiplier.saturating_sub(1);
            }
        }
        self.expire(now)
    }

    fn update(&mut self, keys: &[usize]) {
        let mut old = std::mem::take(&mut self.hosts);
        for key in keys {
            self.hosts.insert(*key, old.remove(key).unwrap_or_default());
        }
    }
}

fn members(mask: u16, hosts: usize) -> Vec<usize> {
    (0..hosts).filter(|i| mask & (1 << i) != 0).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn consecutive_failure_ejection_follows_the_model(
        hosts in 1usize..12,
        percent in prop_oneof![Just(0u32), Just(10), Just(34), Just(50), Just(100)],
        ops in proptest::collection::vec(op(12), 1..200),
    ) {
        let config = consecutive_only(percent);
        let mut detector = Detector::new(config.clone(), 7);
        let mut model = Model { config: config.clone(), hosts: BTreeMap::new() };
        let all: Vec<usize> = (0..hosts).collect();
        detector.update(all.iter().copied());
        model.update(&all);
        let mut now = Instant::now();
        for op in ops {
            match op {
                Op::Call(h, ok) => {
                    prop_assert_eq!(detector.record(&h, ok, now), model.call(h, ok, now));
                }
                Op::Burst(h, n) => {
                    for _ in 0..n {
                        prop_assert_eq!(detector.record(&h, false, now), model.call(h, false, now));
                    }
                }
                Op::Advance(ms) => {
                    now += Duration::from_millis(ms);
                    prop_assert_eq!(detector.expire(now), model.expire(now));
                }
                Op::Tick => prop_assert_eq!(detector.tick(now), model.tick(now)),
                Op::Update(mask) => {
                    let keys = members(mask, hosts);
                    detector.update(keys.iter().copied());
                    model.update(&keys);
                }
            }
            prop_assert_eq!(detector.ejected_count(), model.ejected());
            for (key, host) in &model.hosts {
                prop_assert_eq!(detector.ejected_until(key), host.until);
                prop_assert_eq!(detector.multiplier(key), host.multiplier);
            }
        }
    }

    #[test]
    fn invariants_hold_with_every_rule_on(
        hosts in 1usize..12,
        percent in prop_oneof![Just(0u32), Just(10), Just(25), Just(50), Just(100)],
        ops in proptest::collection::vec(op(12), 1..300),
        seed in any::<u64>(),
    ) {
        // Low volumes so that the A50 rules fire in short sequences.
        let config = OutlierConfig::default()
            .with_max_ejection_percent(percent)
            .with_success_rate(Some(SuccessRate { request_volume: 3, minimum_hosts: 2, enforcement_percentage: 80, ..SuccessRate::default() }))
            .with_failure_percentage(Some(FailurePercentage { request_volume: 3, minimum_hosts: 2, ..FailurePercentage::default() }));
        let mut detector = Detector::new(config.clone(), seed);
        let all: Vec<usize> = (0..hosts).collect();
        detector.update(all.iter().copied());
        let mut until: BTreeMap<usize, Instant> = BTreeMap::new();
        let mut now = Instant::now();
        for op in ops {
            let changes = match op {
                Op::Call(h, ok) => detector.record(&h, ok, now).into_iter().collect(),
                Op::Burst(h, n) => (0..n).filter_map(|_| detector.record(&h, false, now)).collect(),
                Op::Advance(ms) => {
                    now += Duration::from_millis(ms);
                    detector.expire(now)
                }
                Op::Tick => detector.tick(now),
                Op::Update(mask) => {
                    let keys = members(mask, hosts);
                    until.retain(|k, _| keys.contains(k));
                    detector.update(keys);
                    Vec::new()
                }
            };
            for change in changes {
                match change {
                    Change::Ejected { key, until: end, .. } => {
                        // The cap: never more than the percentage, except the one always allowed.
                        prop_assert!(percent > 0);
                        prop_assert!(detector.ejected_count() <= config.max_ejected(detector.len()));
                        prop_assert!(detector.ejected_count() == 1
                            || detector.ejected_count() * 100 <= percent as usize * detector.len());
                        // The duration: base × multiplier, capped.
                        let multiplier = detector.multiplier(&key);
                        prop_assert!(multiplier >= 1);
                        prop_assert_eq!(end - now, config.ejection_time(multiplier));
                        prop_assert!(end - now <= config.max_ejection_time());
                        prop_assert!(until.insert(key, end).is_none(), "ejected twice");
                    }
                    Change::Returned { key } => {
                        let end = until.remove(&key);
                        prop_assert!(end.is_some(), "returned without being ejected");
                        prop_assert!(end.is_some_and(|e| e <= now), "returned early");
                    }
                }
            }
            // Every ejection that ran out has returned; every other is still in force.
            prop_assert_eq!(detector.ejected_count(), until.len());
            for (key, end) in &until {
                prop_assert!(*end > now);
                prop_assert_eq!(detector.ejected_until(key), Some(*end));
            }
        }
    }
}

fn feed(detector: &mut Detector<&'static str>, key: &'static str, ok: u32, failed: u32) {
    let now = Instant::now();
    // Interleaved so that no streak reaches the consecutive-failure threshold.
    for i in 0..ok.max(failed) {
        if i < failed {
            detector.record(&key, false, now);
        }
        if i < ok {
            detector.record(&key, true, now);
        }
    }
}

const FIVE: [&str; 5] = ["a", "b", "c", "d", "e"];

#[test]
fn success_rate_ejects_the_statistical_outlier() {
    let mut detector = Detector::new(
        OutlierConfig::default()
            .with_failure_percentage(None)
            .with_max_ejection_percent(100),
        1,
    );
    detector.update(FIVE);
    for key in ["a", "b", "c", "d"] {
        feed(&mut detector, key, 200, 0);
    }
    // Rates 1, 1, 1, 1, 0.5: mean 0.9, stdev 0.2, threshold 0.9 − 1.9 × 0.2 = 0.52.
    feed(&mut detector, "e", 100, 100);
    let now = Instant::now();
    let changes = detector.tick(now);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(matches!(
        changes[0],
        Change::Ejected {
            key: "e",
            reason: Reason::SuccessRate,
            ..
        }
    ));
    // The counters were reset: the next interval starts from zero.
    assert!(detector.tick(now).is_empty());
}

#[test]
fn success_rate_needs_minimum_hosts_with_enough_volume() {
    let mut detector = Detector::new(
        OutlierConfig::default()
            .with_failure_percentage(None)
            .with_max_ejection_percent(100),
        1,
    );
    detector.update(FIVE);
    for key in ["a", "b", "c"] {
        feed(&mut detector, key, 200, 0);
    }
    feed(&mut detector, "d", 50, 0); // below the request volume of 100
    feed(&mut detector, "e", 100, 100);
    assert!(detector.tick(Instant::now()).is_empty());
}

#[test]
fn failure_percentage_ejects_above_the_threshold_with_enough_volume() {
    let mut detector = Detector::new(
        OutlierConfig::default()
            .with_success_rate(None)
            .with_consecutive_failures(None)
            .with_max_ejection_percent(100),
        1,
    );
    detector.update(FIVE);
    feed(&mut detector, "a", 6, 54); // 90 % of 60 calls
    feed(&mut detector, "b", 4, 36); // 90 % of 40 calls: below the volume of 50
    feed(&mut detector, "c", 10, 50); // 83 %: below the threshold of 85 %
    let changes = detector.tick(Instant::now());
    assert_eq!(
        changes
            .iter()
            .map(|c| match c {
                Change::Ejected { key, reason, .. } => (*key, *reason),
                Change::Returned { key } => (*key, Reason::ConsecutiveFailures),
            })
            .collect::<Vec<_>>(),
        [("a", Reason::FailurePercentage)]
    );
}

#[test]
fn ten_percent_of_five_still_ejects_one() {
    let mut detector = Detector::new(OutlierConfig::default(), 1);
    detector.update(FIVE);
    let now = Instant::now();
    for key in ["a", "b"] {
        for _ in 0..5 {
            detector.record(&key, false, now);
        }
    }
    assert!(detector.is_ejected(&"a"));
    assert!(!detector.is_ejected(&"b"), "10 % of 5 allows only one");
    // "b" keeps failing: it is ejected once "a" returns and "b" fails again.
    detector.expire(now + Duration::from_secs(30));
    assert!(!detector.is_ejected(&"a"));
    assert!(
        detector
            .record(&"b", false, now + Duration::from_secs(30))
            .is_some()
    );
}

#[test]
fn repeated_ejections_last_longer_up_to_the_max_and_are_forgiven() {
    let config = OutlierConfig::default();
    let mut detector = Detector::new(config.clone(), 1);
    detector.update(["a"]);
    let mut now = Instant::now();
    let mut lengths = Vec::new();
    for _ in 0..12 {
        let mut change = None;
        for _ in 0..5 {
            change = detector.record(&"a", false, now);
        }
        let Some(Change::Ejected { until, .. }) = change else {
            panic!("not ejected: {change:?}")
        };
        lengths.push((until - now).as_secs());
        now = until;
        detector.expire(now);
    }
    assert_eq!(
        lengths,
        [30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 300, 300]
    );
    // Twelve intervals without ejection bring the multiplier back to zero.
    for _ in 0..12 {
        now += config.interval();
        detector.tick(now);
    }
    assert_eq!(detector.multiplier(&"a"), 0);
}

#[test]
fn state_survives_updates_by_identity_and_a_readded_endpoint_starts_fresh() {
    let mut detector = Detector::new(OutlierConfig::default().with_max_ejection_percent(100), 1);
    detector.update(["a", "b"]);
    let now = Instant::now();
    for _ in 0..5 {
        detector.record(&"a", false, now);
    }
    detector.update(["a", "b", "c"]);
    assert!(detector.is_ejected(&"a"), "kept across an update");
    detector.update(["b", "c"]);
    detector.update(["a", "b", "c"]);
    assert!(!detector.is_ejected(&"a"), "removed then re-added: fresh");
    assert_eq!(detector.multiplier(&"a"), 0);
    assert_eq!(detector.ejected_count(), 0);
}
