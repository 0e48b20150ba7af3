//! Balancers: round-robin order, random distribution and seeding, empty sets.

use std::collections::HashMap;
use std::sync::Arc;

use sdkit_core::lb::{Balancer, Random, RoundRobin};
use sdkit_core::{EndpointSet, Instance, NoEndpoints};

fn set(n: usize) -> EndpointSet<usize> {
    EndpointSet::fixed((0..n).map(|i| (Instance::from_addr(format!("10.0.0.{i}:80")), i)))
}

#[test]
fn round_robin_starts_at_index_zero_and_cycles() {
    let rr = RoundRobin::new(set(3));
    let picks: Vec<usize> = (0..7).map(|_| rr.pick().unwrap()).collect();
    assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0]);
}

#[test]
fn empty_sets_give_no_endpoints() {
    assert_eq!(RoundRobin::new(set(0)).pick(), Err(NoEndpoints));
    assert_eq!(Random::new(set(0)).pick(), Err(NoEndpoints));
}

#[test]
fn random_is_roughly_uniform() {
    let random = Random::with_seed(set(5), 42);
    let mut counts = HashMap::new();
    for _ in 0..50_000 {
        *counts.entry(random.pick().unwrap()).or_insert(0u32) += 1;
    }
    assert_eq!(counts.len(), 5);
    for (endpoint, count) in counts {
        // 10 000 expected each; 5 % tolerance is > 10 standard deviations.
        assert!(
            (9_500..=10_500).contains(&count),
            "endpoint {endpoint}: {count}"
        );
    }
}

#[test]
fn random_with_a_seed_is_reproducible() {
    let a = Random::with_seed(set(10), 7);
    let b = Random::with_seed(set(10), 7);
    let c = Random::with_seed(set(10), 8);
    let seq = |r: &Random<usize>| (0..32).map(|_| r.pick().unwrap()).collect::<Vec<_>>();
    let (sa, sb, sc) = (seq(&a), seq(&b), seq(&c));
    assert_eq!(sa, sb);
    assert_ne!(sa, sc);
}

#[test]
fn picks_from_many_threads_are_safe_and_cover_every_endpoint() {
    let random = Arc::new(Random::new(set(4)));
    let rr = Arc::new(RoundRobin::new(set(4)));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (random, rr) = (random.clone(), rr.clone());
            std::thread::spawn(move || {
                let mut seen = [0u32; 4];
                for _ in 0..10_000 {
                    seen[random.pick().unwrap()] += 1;
                    seen[rr.pick().unwrap()] += 1;
                }
                seen
            })
        })
        .collect();
    let mut total = [0u32; 4];
    for t in threads {
        for (i, n) in t.join().unwrap().iter().enumerate() {
            total[i] += n;
        }
    }
    assert_eq!(total.iter().sum::<u32>(), 80_000);
    assert!(total.iter().all(|&n| n > 15_000), "{total:?}");
}
