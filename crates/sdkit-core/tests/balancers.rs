//! Distribution of every policy, with stated tolerances: weighted round-robin exact over a
//! cycle, weighted random within 3σ, tower #696's 0.99/0.005/0.005, weight 0, fairness across
//! threads, and the config builder.

mod support;

use support::fairness;

use std::collections::HashMap;
use std::sync::Arc;

use sdkit_core::lb::{
    Balancer, BalancerConfig, P2c, POLICIES, PickContext, Random, RoundRobin, WeightedRandom,
    WeightedRoundRobin,
};
use sdkit_core::{EndpointSet, Instance, NoEndpoints};

fn weighted(weights: &[u32]) -> EndpointSet<usize> {
    EndpointSet::fixed(weights.iter().enumerate().map(|(i, &w)| {
        (
            Instance::new(format!("e{i:02}"), format!("10.0.0.{i}:80")).with_weight(w),
            i,
        )
    }))
}

fn counts(b: &dyn Balancer<usize>, picks: usize, n: usize) -> Vec<u64> {
    let mut counts = vec![0u64; n];
    for _ in 0..picks {
        counts[b.pick().unwrap()] += 1;
    }
    counts
}

#[test]
fn weighted_round_robin_is_exact_over_every_cycle() {
    let weights = [5, 1, 3, 0, 2];
    let wrr = WeightedRoundRobin::new(weighted(&weights));
    let cycle: u32 = weights.iter().sum();
    for _ in 0..10 {
        let c = counts(&wrr, cycle as usize, weights.len());
        assert_eq!(
            c,
            weights.map(u64::from),
            "one cycle gives exactly the weights"
        );
    }
}

#[test]
fn tower_696_weights_come_out_as_configured() {
    // tower #696: weights 0.99 / 0.005 / 0.005 came out about 66 / 17 / 17 % under p2c.
    let weights = [198, 1, 1];
    let n = 100_000;
    let wrr = WeightedRoundRobin::new(weighted(&weights));
    let c = counts(&wrr, n, 3);
    assert_eq!(c, [99_000, 500, 500], "weighted round-robin: exact");
    for (name, b) in [
        (
            "weighted_random",
            Box::new(WeightedRandom::with_seed(weighted(&weights), 696))
                as Box<dyn Balancer<usize>>,
        ),
        // An idle p2c draws its candidates by weight too (the bug of tower #696).
        (
            "p2c",
            Box::new(P2c::with_seed(
                weighted(&weights),
                sdkit_core::lb::Load::InFlight,
                696,
            )),
        ),
    ] {
        let c = counts(&*b, n, 3);
        // 99 % ± 0.3 %, 0.5 % ± 0.15 % (more than 4σ each).
        assert!((98_700..=99_300).contains(&c[0]), "{name}: {c:?}");
        for light in &c[1..] {
            assert!((350..=650).contains(light), "{name}: {c:?}");
        }
    }
}

#[test]
fn weighted_random_is_within_three_sigma_of_each_weight() {
    let weights = [1u32, 2, 3, 4, 10, 0, 30];
    let total: u32 = weights.iter().sum();
    let n = 100_000u64;
    let wr = WeightedRandom::with_seed(weighted(&weights), 7);
    let c = counts(&wr, n as usize, weights.len());
    for (i, &w) in weights.iter().enumerate() {
        let p = f64::from(w) / f64::from(total);
        let mean = p * n as f64;
        let sigma = (n as f64 * p * (1.0 - p)).sqrt();
        assert!(
            (c[i] as f64 - mean).abs() <= 3.0 * sigma,
            "endpoint {i} (weight {w}): {} picks, expected {mean:.0} ± {:.0}",
            c[i],
            3.0 * sigma
        );
    }
    assert_eq!(c[5], 0, "weight 0 is never picked");
}

#[test]
fn weight_zero_is_never_picked_and_all_zero_is_no_endpoints() {
    let set = weighted(&[0, 4, 0]);
    for b in [
        Box::new(WeightedRoundRobin::new(set.clone())) as Box<dyn Balancer<usize>>,
        Box::new(WeightedRandom::with_seed(set.clone(), 1)),
        Box::new(P2c::least_in_flight(set.clone())),
        Box::new(P2c::peak_ewma(set.clone())),
    ] {
        assert!((0..1_000).all(|_| b.pick() == Ok(1)));
    }
    let zero = weighted(&[0, 0]);
    assert_eq!(
        WeightedRoundRobin::new(zero.clone()).pick(),
        Err(NoEndpoints)
    );
    assert_eq!(WeightedRandom::new(zero.clone()).pick(), Err(NoEndpoints));
    assert!(
        P2c::least_in_flight(zero)
            .pick_with(&PickContext::new())
            .is_err()
    );
}

#[test]
fn every_configured_policy_builds_and_spreads_over_the_set() {
    for name in POLICIES {
        let config: BalancerConfig = name.parse().unwrap();
        let b = config.build(weighted(&[1, 1, 1, 1]));
        let c = counts(&*b, 4_000, 4);
        // Equal weights, idle endpoints: every policy is near-uniform (±20 %, far beyond 5σ).
        assert!(
            c.iter().all(|&k| (800..=1_200).contains(&k)),
            "{name}: {c:?}"
        );
        assert_eq!(
            config.build(weighted(&[])).pick(),
            Err(NoEndpoints),
            "{name}"
        );
    }
}

#[test]
fn round_robin_from_two_threads_stays_fair_within_one_percent() {
    let rr = Arc::new(RoundRobin::new(weighted(&[1; 7])));
    fairness::assert_even_from_two_threads(7, 50_000, || {
        let rr = Arc::clone(&rr);
        move || rr.pick().unwrap()
    });
}

#[test]
fn random_from_two_threads_does_not_repeat_the_same_sequence() {
    // Each thread draws its own sequence: two threads never pick in lockstep.
    let random = Arc::new(Random::with_seed(weighted(&[1; 1000]), 3));
    let draw = |r: Arc<Random<usize>>| {
        std::thread::spawn(move || (0..64).map(|_| r.pick().unwrap()).collect::<Vec<_>>())
    };
    let a = draw(Arc::clone(&random)).join().unwrap();
    let b = draw(Arc::clone(&random)).join().unwrap();
    assert_ne!(a, b);
    let mut seen: HashMap<usize, u32> = HashMap::new();
    for i in a.iter().chain(&b) {
        *seen.entry(*i).or_default() += 1;
    }
    assert!(
        seen.len() > 100,
        "128 draws over 1000 endpoints spread: {}",
        seen.len()
    );
}
