//! Outlier detection bound to endpoint sets: outcomes from round-robin's guards and from
//! endpoint states reach it, ejection is a readiness bit every balancer skips, ejections return
//! on time (paused Tokio time), state follows identities across registry updates.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sdkit_core::lb::outlier::{
    FailureClasses, OutlierConfig, OutlierDetector, OutlierEvent, Reason,
};
use sdkit_core::lb::{Balancer, FailureClass, Outcome, PickContext, RoundRobin};
use sdkit_core::{EndpointSet, Endpointer, Instance, InstanceCache};
use support::wait::wait_until;

fn set(n: usize) -> EndpointSet<usize> {
    EndpointSet::fixed(
        (0..n).map(|i| (Instance::new(format!("i{i}"), format!("10.0.0.{i}:80")), i)),
    )
}

/// Picks until endpoint `target` comes up, then ends its guard with `outcome`.
fn call(rr: &RoundRobin<usize>, target: usize, outcome: Outcome) {
    for _ in 0..100 {
        let picked = rr.pick_with(&PickContext::new()).unwrap();
        if picked.service == target {
            assert!(
                picked.guard.is_tracking(),
                "observed endpoints report outcomes"
            );
            picked.guard.finish(outcome);
            return;
        }
        picked.guard.success();
    }
    panic!("endpoint {target} never picked");
}

const TIMEOUT: Outcome = Outcome::Failure(FailureClass::Timeout);

/// Waits (in paused time: auto-advancing) until `cond` holds.
async fn until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..100_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("never: {what}");
}

#[tokio::test(start_paused = true)]
async fn five_failures_eject_through_round_robin_and_the_endpoint_returns_after_30s() {
    let set = set(3);
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&events);
    let detector = OutlierDetector::spawn_with(&set, OutlierConfig::default(), move |e| {
        log.lock().unwrap().push(e.clone())
    });
    let rr = RoundRobin::new(set.clone());
    for _ in 0..4 {
        call(&rr, 1, TIMEOUT);
    }
    assert!(detector.ejected().is_empty());
    let ejected_at = tokio::time::Instant::now();
    call(&rr, 1, TIMEOUT);
    assert_eq!(detector.ejected(), vec![Arc::from("i1")]);
    assert!(set.load().get(1).unwrap().state().is_ejected());
    assert!(matches!(
        &events.lock().unwrap()[0],
        OutlierEvent::Ejected { id, reason: Reason::ConsecutiveFailures, duration }
            if &**id == "i1" && *duration == Duration::from_secs(30)
    ));
    // Round-robin skips it now.
    for _ in 0..30 {
        assert_ne!(rr.pick().unwrap(), 1);
    }
    until("i1 returns", || detector.ejected().is_empty()).await;
    let after = ejected_at.elapsed();
    assert!(
        after >= Duration::from_secs(30) && after < Duration::from_millis(30_100),
        "returned after {after:?}"
    );
    assert!((0..6).any(|_| rr.pick().unwrap() == 1), "picked again");
    assert!(matches!(&events.lock().unwrap()[1], OutlierEvent::Returned { id } if &**id == "i1"));
}

#[tokio::test(start_paused = true)]
async fn only_configured_failure_classes_count_and_cancelled_calls_never_do() {
    let set = set(3);
    let detector = OutlierDetector::spawn(&set, OutlierConfig::default());
    let rr = RoundRobin::new(set.clone());
    for _ in 0..10 {
        call(&rr, 0, Outcome::Failure(FailureClass::Other));
        call(&rr, 0, Outcome::Cancelled);
    }
    assert!(
        detector.ejected().is_empty(),
        "application errors are not the endpoint's fault"
    );
    drop(detector);

    let set = self::set(3);
    let config = OutlierConfig::default().with_failure_classes(FailureClasses::all());
    let detector = OutlierDetector::spawn(&set, config);
    let rr = RoundRobin::new(set.clone());
    for _ in 0..5 {
        call(&rr, 0, Outcome::Failure(FailureClass::Other));
    }
    assert_eq!(detector.ejected(), vec![Arc::from("i0")]);
    // Dropping the detector returns every ejected endpoint.
    drop(detector);
    assert!(set.load().iter().all(|e| e.state().is_ready()));
}

#[tokio::test(start_paused = true)]
async fn a_success_in_between_resets_the_streak() {
    let set = set(3);
    let detector = OutlierDetector::spawn(&set, OutlierConfig::default());
    let state = Arc::clone(set.load().get(2).unwrap().state());
    for _ in 0..10 {
        for _ in 0..4 {
            state.record(TIMEOUT, Duration::from_millis(1));
        }
        state.record(Outcome::Success, Duration::from_millis(1));
    }
    assert!(detector.ejected().is_empty());
}

#[tokio::test(start_paused = true)]
async fn success_rate_ejects_on_the_interval() {
    let set = set(5);
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&events);
    let detector = OutlierDetector::spawn_with(&set, OutlierConfig::default(), move |e| {
        log.lock().unwrap().push(e.clone())
    });
    for (i, e) in set.load().iter().enumerate() {
        for n in 0..200 {
            // i4 fails every other call: 50 % against 100 % for the others.
            let outcome = if i == 4 && n % 2 == 0 {
                TIMEOUT
            } else {
                Outcome::Success
            };
            e.state().record(outcome, Duration::from_millis(1));
        }
    }
    assert!(detector.ejected().is_empty(), "nothing before the interval");
    until("the interval evaluation", || !detector.ejected().is_empty()).await;
    assert_eq!(detector.ejected(), vec![Arc::from("i4")]);
    assert!(matches!(
        &events.lock().unwrap()[0],
        OutlierEvent::Ejected {
            reason: Reason::SuccessRate,
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn ejecting_below_half_ready_reports_panic_mode_and_picks_go_on() {
    let set = set(2);
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&events);
    let config = OutlierConfig::default().with_max_ejection_percent(100);
    let detector =
        OutlierDetector::spawn_with(&set, config, move |e| log.lock().unwrap().push(e.clone()));
    for e in set.load().iter() {
        for _ in 0..5 {
            e.state().record(TIMEOUT, Duration::from_millis(1));
        }
    }
    assert_eq!(detector.ejected().len(), 2);
    assert!(events.lock().unwrap().iter().any(|e| matches!(
        e,
        OutlierEvent::PanicMode {
            entered: true,
            ready: 0,
            total: 2
        }
    )));
    // Panic mode: readiness ignored, both still picked.
    let rr = RoundRobin::new(set.clone());
    let picks: Vec<usize> = (0..4).map(|_| rr.pick().unwrap()).collect();
    assert!(picks.contains(&0) && picks.contains(&1), "{picks:?}");
}

#[tokio::test(start_paused = true)]
async fn ejection_follows_identity_across_registry_updates() {
    let source = InstanceCache::new();
    let inst = |i: u32| Instance::new(format!("i{i}"), format!("10.0.0.{i}:80"));
    source.update(vec![inst(1), inst(2), inst(3)]);
    let endpointer = Endpointer::new(&source, |i: &Instance| {
        Ok::<_, sdkit_core::BoxError>(i.id().to_owned())
    });
    endpointer.ready(Duration::from_secs(5)).await.unwrap();
    let set = endpointer.endpoint_set();
    let config = OutlierConfig::default().with_max_ejection_percent(50);
    let detector = OutlierDetector::spawn(&set, config);
    let fail = |id: &str| {
        let endpoints = set.load();
        let e = endpoints.iter().find(|e| e.instance().id() == id).unwrap();
        for _ in 0..5 {
            e.state().record(TIMEOUT, Duration::from_millis(1));
        }
    };
    fail("i1");
    assert!(detector.is_ejected("i1"));

    // A new instance joins: i1 stays ejected (same identity, same state).
    let v = set.version();
    source.update(vec![inst(1), inst(2), inst(3), inst(4)]);
    set.changed_since(v).await;
    until("i4 tracked", || {
        let endpoints = set.load();
        endpoints.iter().all(|e| e.state().is_observed())
    })
    .await;
    assert!(detector.is_ejected("i1"));
    assert!(set.load().get(0).unwrap().state().is_ejected());
    // The new one is watched too.
    fail("i4");
    assert!(detector.is_ejected("i4"));

    // i1 leaves and comes back: a fresh endpoint, not ejected.
    let v = set.version();
    source.update(vec![inst(2), inst(3)]);
    set.changed_since(v).await;
    let v = set.version();
    source.update(vec![inst(1), inst(2), inst(3)]);
    set.changed_since(v).await;
    until("i1 fresh", || !detector.is_ejected("i1")).await;
    assert!(set.load().get(0).unwrap().state().is_ready());
}

#[tokio::test(start_paused = true)]
async fn every_balancer_feeds_and_honours_outlier_detection() {
    use sdkit_core::lb::{P2c, Random, WeightedRandom, WeightedRoundRobin};
    type Make = fn(EndpointSet<usize>) -> Box<dyn Balancer<usize>>;
    let balancers: Vec<(&str, Make)> = vec![
        ("round_robin", |s| Box::new(RoundRobin::new(s))),
        ("random", |s| Box::new(Random::with_seed(s, 3))),
        ("weighted_round_robin", |s| {
            Box::new(WeightedRoundRobin::new(s))
        }),
        ("weighted_random", |s| {
            Box::new(WeightedRandom::with_seed(s, 3))
        }),
        ("p2c_peak_ewma", |s| Box::new(P2c::peak_ewma(s))),
    ];
    for (name, make) in balancers {
        let set = set(3);
        let detector = OutlierDetector::spawn(&set, OutlierConfig::default());
        let balancer = make(set.clone());
        // Calls steered to endpoint 1 (the others avoided: least-loaded balancers would stop
        // choosing it on their own after its first failure) all fail.
        let others: Vec<_> = set
            .load()
            .iter()
            .filter(|e| *e.service() != 1)
            .map(|e| e.key())
            .collect();
        let mut calls = 0;
        while !detector.is_ejected("i1") {
            calls += 1;
            assert!(calls <= 5, "{name}: not ejected after {calls} failures");
            let picked = balancer
                .pick_with(&PickContext::new().with_avoid(&others))
                .unwrap();
            assert_eq!(picked.service, 1, "{name}");
            picked.guard.failure(FailureClass::ConnectFailed);
        }
        for _ in 0..50 {
            assert_ne!(
                balancer.pick().unwrap(),
                1,
                "{name} picked an ejected endpoint"
            );
        }
    }
}

/// The set changes after the detector read it but before its task first runs (a loaded
/// machine): the detector still follows the change. The detector's task lives on a runtime of
/// its own that is not driven until the change is published, which makes the race certain.
#[test]
fn a_change_published_before_the_detectors_task_runs_is_followed() {
    let current = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let (registry_side, detector_side) = (current(), current());
    let source = InstanceCache::new();
    let inst = |i: u32| Instance::new(format!("i{i}"), format!("10.0.0.{i}:80"));
    let endpointer = registry_side.block_on(async {
        Endpointer::new(&source, |i: &Instance| {
            Ok::<_, sdkit_core::BoxError>(i.id().to_owned())
        })
    });
    let set = endpointer.endpoint_set();
    let seen = set.version();
    let detector = {
        let _enter = detector_side.enter();
        OutlierDetector::spawn(&set, OutlierConfig::default())
    };
    registry_side.block_on(async {
        source.update(vec![inst(1), inst(2), inst(3)]);
        tokio::time::timeout(Duration::from_secs(10), set.changed_since(seen))
            .await
            .expect("the endpointer publishes");
    });
    assert_eq!(set.load().len(), 3);
    detector_side.block_on(wait_until(
        Duration::from_secs(10),
        "the detector follows the published set",
        || set.load().iter().all(|e| e.state().is_observed()),
    ));
    let endpoints = set.load();
    for _ in 0..5 {
        endpoints
            .get(1)
            .unwrap()
            .state()
            .record(TIMEOUT, Duration::from_millis(1));
    }
    assert_eq!(detector.ejected(), vec![Arc::from("i2")]);
}
