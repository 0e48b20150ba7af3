//! Zone preference through the public balancer (issue #13, item 4). Readiness sequences are
//! covered by the proptest beside the zone rule in `src/lb/zone.rs`.

use sdkit_core::lb::Balancer;
use sdkit_core::lb::zone::{Within, ZoneAware};
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
    let c = counts(|| lb.pick_in_zone("a").unwrap(), 100);
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
    assert!(lb.pick_in_zone("a").is_err());
}
