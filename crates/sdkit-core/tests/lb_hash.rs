//! Consistent hashing (Maglev): stability, balance and the remap bound (issue #13, item 6).

use proptest::prelude::*;
use sdkit_core::lb::hash::{Maglev, hash_key};
use sdkit_core::lb::{Balancer, PickContext};
use sdkit_core::{EndpointSet, Instance};
use std::collections::BTreeSet;

fn addr(i: usize) -> String {
    format!("10.{}.{}.{}:8080", i / 65_536, (i / 256) % 256, i % 256)
}

fn maglev(members: &BTreeSet<usize>) -> Maglev<usize> {
    Maglev::new(EndpointSet::fixed(
        members.iter().map(|&i| (Instance::from_addr(addr(i)), i)),
    ))
}

fn keys(n: usize) -> Vec<u64> {
    (0..n)
        .map(|k| hash_key(format!("key-{k}").as_bytes()))
        .collect()
}

fn pick(lb: &Maglev<usize>, key: u64) -> usize {
    lb.pick_with(&PickContext::new().with_hash(key))
        .unwrap()
        .service
}

fn mapping(lb: &Maglev<usize>, keys: &[u64]) -> Vec<usize> {
    keys.iter().map(|&k| pick(lb, k)).collect()
}

fn moved(a: &[usize], b: &[usize]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x != y).count() as f64 / a.len() as f64
}

#[test]
fn removing_one_of_n_remaps_at_most_1_over_n_plus_2_percent() {
    let keys = keys(50_000);
    for n in [3usize, 10, 100, 1_000] {
        let all: BTreeSet<usize> = (0..n).collect();
        let before = mapping(&maglev(&all), &keys);
        let mut worst = 0.0f64;
        for removed in [0, n / 2, n - 1] {
            let mut rest = all.clone();
            rest.remove(&removed);
            let after = mapping(&maglev(&rest), &keys);
            // Keys that were not on the removed endpoint and moved anyway.
            let m = moved(&before, &after);
            assert!(
                m <= 1.0 / n as f64 + 0.02,
                "n = {n}, removed {removed}: {m:.4} moved"
            );
            // Every key of the removed endpoint moved, to a live one.
            assert!(after.iter().all(|i| *i != removed));
            worst = worst.max(m);
        }
        println!(
            "maglev: n = {n}: worst remapped share {worst:.4} (bound {:.4})",
            1.0 / n as f64 + 0.02
        );
    }
}

#[test]
fn keys_spread_evenly() {
    let keys = keys(100_000);
    let all: BTreeSet<usize> = (0..10).collect();
    let mut counts = [0usize; 10];
    for i in mapping(&maglev(&all), &keys) {
        counts[i] += 1;
    }
    // 10 000 expected each; 3σ of a binomial is ~285 plus ≤ 1 % table imbalance.
    assert!(
        counts.iter().all(|&c| (9_600..=10_400).contains(&c)),
        "{counts:?}"
    );
}

#[test]
fn keyless_picks_spread_and_empty_sets_fail() {
    let all: BTreeSet<usize> = (0..4).collect();
    let lb = maglev(&all);
    let mut counts = [0usize; 4];
    for _ in 0..4_000 {
        counts[lb.pick().unwrap()] += 1;
    }
    assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    let empty = Maglev::<usize>::new(EndpointSet::fixed([]));
    assert!(empty.pick_with(&PickContext::new().with_hash(1)).is_err());
    assert_eq!(empty.table_size(), 0);
}

#[test]
fn weight_zero_endpoints_get_no_keys() {
    let set = EndpointSet::fixed([
        (Instance::from_addr("10.0.0.1:80").with_weight(0), 0),
        (Instance::from_addr("10.0.0.2:80"), 1),
        (Instance::from_addr("10.0.0.3:80"), 2),
    ]);
    let lb = Maglev::new(set);
    assert!(keys(5_000).iter().all(|&k| pick(&lb, k) != 0));
    let zeros = EndpointSet::fixed([
        (Instance::from_addr("10.0.0.1:80").with_weight(0), 0),
        (Instance::from_addr("10.0.0.2:80").with_weight(0), 1),
    ]);
    assert!(Maglev::new(zeros).pick().is_err());
}

#[test]
fn keys_of_a_not_ready_endpoint_move_and_come_back() {
    let set = EndpointSet::fixed((0..10).map(|i| (Instance::from_addr(addr(i)), i)));
    let lb = Maglev::new(set.clone());
    let keys = keys(20_000);
    let before = mapping(&lb, &keys);
    let down = set.load().as_slice()[3].state().clone();
    down.set_transport_ready(false);
    let during = mapping(&lb, &keys);
    down.set_transport_ready(true);
    // Only the down endpoint's keys moved, all of them, and not all to one place.
    let mut moved_to = BTreeSet::new();
    for (b, d) in before.iter().zip(&during) {
        if *b == 3 {
            assert_ne!(*d, 3);
            moved_to.insert(*d);
        } else {
            assert_eq!(b, d);
        }
    }
    assert!(moved_to.len() >= 5, "{moved_to:?}");
    assert_eq!(mapping(&lb, &keys), before);
    // A retry that avoids the key's endpoint gets another one.
    let k = keys[0];
    let first = lb.pick_with(&PickContext::new().with_hash(k)).unwrap();
    let avoid = [first.key];
    let retry = lb
        .pick_with(&PickContext::new().with_hash(k).with_avoid(&avoid))
        .unwrap();
    assert_ne!(retry.service, first.service);
}

#[test]
fn table_sizes_follow_the_endpoint_count() {
    let small: BTreeSet<usize> = (0..3).collect();
    assert_eq!(maglev(&small).table_size(), 65_537);
    let big: BTreeSet<usize> = (0..2_000).collect();
    assert_eq!(maglev(&big).table_size(), 262_139);
    let pinned =
        Maglev::new(EndpointSet::fixed([(Instance::from_addr("a:1"), 0)])).with_table_size(1_000);
    assert_eq!(pinned.table_size(), 1_009);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn membership_changes_remap_only_their_share(
        start in 2usize..60,
        ops in prop::collection::vec((any::<bool>(), 0usize..200), 1..10),
    ) {
        let keys = keys(8_000);
        let mut live: BTreeSet<usize> = (0..start).collect();
        let mut before = mapping(&maglev(&live), &keys);
        // Unchanged membership: the same mapping from a fresh balancer.
        prop_assert_eq!(&before, &mapping(&maglev(&live), &keys));
        for (join, which) in ops {
            let old = live.clone();
            if join { live.insert(which); } else if live.len() > 1 {
                let w = *live.iter().nth(which % live.len()).unwrap();
                live.remove(&w);
            }
            if old == live { continue; }
            let after = mapping(&maglev(&live), &keys);
            prop_assert!(after.iter().all(|i| live.contains(i)));
            let n = old.len().max(live.len()) as f64;
            // One member joined or left: its share plus ≤ 2 %, with 3σ of sampling noise
            // over 8 000 keys.
            let bound = 1.0 / n + 0.02 + 3.0 * ((1.0 / n) / 8_000.0).sqrt();
            let m = moved(&before, &after);
            prop_assert!(m <= bound, "{} -> {} members: {:.4} moved (bound {:.4})", old.len(), live.len(), m, bound);
            before = after;
        }
    }
}
