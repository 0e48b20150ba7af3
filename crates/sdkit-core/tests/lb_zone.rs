//! Zone preference through the public balancer (issue #13, item 4). Readiness sequences are
//! covered by the proptest beside the zone rule in `src/lb/zone.rs`.

use sdkit_core::lb::zone::{Within, ZoneAware};
use sdkit_core::lb::{Balancer, PickContext};
use sdkit_core::{EndpointSet, Instance};
use std::collections::HashMap;

fn set() -> EndpointSet<&'static str> {
    EndpointSet::fixed([
        (Instance::from_addr("10.0.0.1:80").with_zone("a"), "a1"),
        (Instance::from_addr("10.0.0.2:80").with_zone("a"), "a2"),
        (Instance::from_addr("10.0.1.1:80").with_zone("b"), "b1"),
        (Instance::from_addr("10.0.1.2:80").with_zone("b"), "b2"),
        (Instance::from_addr("10.0.1.3:80").with_zone("b"), "b3"),
        (Instance::from_addr("10.0.2.1:80"), "none"),
    ])
}

fn counts(mut pick: impl FnMut() -> &'static str, n: usize) -> HashMap<&'static str, usize> {
    let mut c = HashMap::new();
    for _ in 0..n {
        *c.entry(pick()).or_default() += 1;
    }
    c
}

#[test]
fn configured_zone_keeps_calls_local_and_even() {
    let lb = ZoneAware::new(set()).with_zone("b");
    let c = counts(|| lb.pick().unwrap(), 300);
    assert_eq!(c.len(), 3, "{c:?}");
    assert!(["b1", "b2", "b3"].iter().all(|k| c[k] == 100), "{c:?}");
}

#[test]
fn the_pick_zone_overrides_the_configured_one() {
    let lb = ZoneAware::new(set()).with_zone("b");
    let c = counts(
        || {
            lb.pick_with(&PickContext::new().with_zone("a"))
                .unwrap()
                .service
        },
        100,
    );
    assert_eq!((c["a1"], c["a2"]), (50, 50), "{c:?}");
}

#[test]
fn unknown_or_missing_zone_spills_to_everyone() {
    for lb in [
        ZoneAware::new(set()),
        ZoneAware::new(set()).with_zone("mars"),
    ] {
        let c = counts(|| lb.pick().unwrap(), 600);
        assert_eq!(c.len(), 6, "{c:?}");
        assert!(c.values().all(|&v| v == 100), "{c:?}");
    }
}

#[test]
fn every_inner_policy_stays_in_zone() {
    for within in [Within::RoundRobin, Within::Random, Within::P2c] {
        let lb = ZoneAware::new(set()).with_zone("a").with_within(within);
        let c = counts(|| lb.pick().unwrap(), 2_000);
        assert_eq!(c.len(), 2, "{within:?} {c:?}");
        assert!(c.values().all(|&v| v > 800), "{within:?} {c:?}");
    }
}

#[test]
fn empty_set_has_no_endpoint() {
    let lb = ZoneAware::<u8>::new(EndpointSet::fixed([])).with_zone("a");
    assert!(lb.pick().is_err());
    assert!(lb.pick_with(&PickContext::new().with_zone("a")).is_err());
}

fn set_ready(set: &EndpointSet<&'static str>, name: &str, ready: bool) {
    let snapshot = set.load();
    let e = snapshot.iter().find(|e| *e.service() == name).unwrap();
    e.state().set_transport_ready(ready);
}

#[test]
fn half_the_zone_ready_stays_local_less_spills_none_ready_anywhere_is_never_stranded() {
    let set = set();
    let lb = ZoneAware::new(set.clone()).with_zone("b");
    // 2 of 3 ready (≥ 50 %): local, and never the down one.
    set_ready(&set, "b1", false);
    let c = counts(|| lb.pick().unwrap(), 200);
    assert_eq!(
        (c.get("b2"), c.get("b3"), c.len()),
        (Some(&100), Some(&100), 2),
        "{c:?}"
    );
    // 1 of 3 ready (< 50 %): spill to every ready endpoint, b3 included.
    set_ready(&set, "b2", false);
    let c = counts(|| lb.pick().unwrap(), 400);
    assert_eq!(c.len(), 4, "{c:?}");
    assert!(
        ["a1", "a2", "b3", "none"].iter().all(|k| c[k] == 100),
        "{c:?}"
    );
    // A higher share spills earlier; 0 keeps calls local while one is ready.
    let strict = ZoneAware::new(set.clone())
        .with_zone("b")
        .with_min_local_share(0.0);
    let c = counts(|| strict.pick().unwrap(), 50);
    assert_eq!(c.get("b3"), Some(&50), "{c:?}");
    // The whole zone down: spill.
    set_ready(&set, "b3", false);
    let c = counts(|| lb.pick().unwrap(), 300);
    assert!(["a1", "a2", "none"].iter().all(|k| c[k] == 100), "{c:?}");
    // Nothing ready anywhere: readiness is ignored (panic mode) rather than failing.
    for name in ["a1", "a2", "none"] {
        set_ready(&set, name, false);
    }
    let c = counts(|| lb.pick().unwrap(), 300);
    assert_eq!(c.len(), 3, "panic keeps the zone: {c:?}");
    for name in ["a1", "a2", "none", "b1", "b2", "b3"] {
        set_ready(&set, name, true);
    }
    let c = counts(|| lb.pick().unwrap(), 300);
    assert_eq!(c.len(), 3, "back home: {c:?}");
}

#[test]
fn a_retry_avoids_the_failed_endpoint_while_the_zone_has_another() {
    let lb = ZoneAware::new(set()).with_zone("a");
    let first = lb.pick_with(&PickContext::new()).unwrap();
    let avoid = [first.key];
    for _ in 0..10 {
        let again = lb
            .pick_with(&PickContext::new().with_avoid(&avoid))
            .unwrap();
        assert_ne!(again.service, first.service);
        assert!(again.service.starts_with('a'));
    }
}

#[test]
fn p2c_within_the_zone_tracks_calls_and_prefers_the_idle() {
    let set = set();
    let lb = ZoneAware::new(set.clone())
        .with_zone("a")
        .with_within(Within::P2c);
    // Hold five calls on whichever endpoint comes first: the next picks go to the other.
    let held: Vec<_> = (0..5)
        .map(|_| lb.pick_with(&PickContext::new()).unwrap())
        .collect();
    let busiest = set
        .load()
        .iter()
        .filter(|e| e.instance().zone() == Some("a"))
        .map(|e| e.state().in_flight())
        .max();
    assert!(busiest >= Some(3), "{busiest:?}");
    drop(held);
    assert!(set.load().iter().all(|e| e.state().in_flight() == 0));
}
