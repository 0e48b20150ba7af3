//! Deterministic subsetting: sizes, stability, balance and churn (issue #13, item 5).

use proptest::prelude::*;
use sdkit_core::lb::subset::{subset_by_index, subset_by_key};
use std::collections::{BTreeSet, HashMap};

fn backends(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.{}.{}.{}:8080", i / 65_536, (i / 256) % 256, i % 256))
        .collect()
}

fn names<'a>(ids: &[&'a str], picked: &[usize]) -> BTreeSet<&'a str> {
    picked.iter().map(|&i| ids[i]).collect()
}

/// Per-backend client counts for clients `0..clients`.
fn loads(ids: &[&str], k: usize, clients: u64) -> HashMap<String, usize> {
    let mut load: HashMap<String, usize> = ids.iter().map(|id| (id.to_string(), 0)).collect();
    for c in 0..clients {
        for i in subset_by_index(ids, k, c) {
            *load.get_mut(ids[i]).unwrap() += 1;
        }
    }
    load
}

/// The share of clients `0..clients` whose subset changes when `ids[removed]` leaves.
fn churn(ids: &[&str], k: usize, clients: u64, removed: usize, by_key: bool) -> f64 {
    let rest: Vec<&str> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != removed)
        .map(|(_, s)| *s)
        .collect();
    let subset = |list: &[&str], c: u64| {
        if by_key {
            subset_by_key(list, k, &format!("client-{c}"))
        } else {
            subset_by_index(list, k, c)
        }
    };
    let changed = (0..clients)
        .filter(|&c| names(ids, &subset(ids, c)) != names(&rest, &subset(&rest, c)))
        .count();
    changed as f64 / clients as f64
}

/// The SRE book's scheme (Site Reliability Engineering, ch. 20): shuffle per round, slice.
fn sre_book(ids: &[&str], k: usize, client: u64) -> BTreeSet<String> {
    let count = (ids.len() / k).max(1) as u64;
    let round = client / count;
    let mut list: Vec<&str> = ids.to_vec();
    let mut state = round.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5eed;
    for i in (1..list.len()).rev() {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        list.swap(i, (z % (i as u64 + 1)) as usize);
    }
    let start = (client % count) as usize * k;
    list[start..(start + k).min(list.len())]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn hundred_clients_on_300_backends_are_balanced_within_1_25() {
    let owned = backends(300);
    let ids: Vec<&str> = owned.iter().map(String::as_str).collect();
    let load = loads(&ids, 25, 100);
    let (lo, hi) = (*load.values().min().unwrap(), *load.values().max().unwrap());
    println!("index scheme, 100 clients, 300 backends, k = 25: min {lo}, max {hi}");
    assert!(lo > 0 && hi as f64 <= 1.25 * lo as f64, "min {lo} max {hi}");
    assert_eq!(load.values().sum::<usize>(), 2_500);
}

#[test]
fn churn_when_one_of_300_backends_leaves() {
    let owned = backends(300);
    let ids: Vec<&str> = owned.iter().map(String::as_str).collect();
    // Every 15th backend leaves in turn (20 cases); the mean and worst share of the 100
    // clients whose subset changed.
    let removals: Vec<usize> = (0..300).step_by(15).collect();
    let index: Vec<f64> = removals
        .iter()
        .map(|&r| churn(&ids, 25, 100, r, false))
        .collect();
    let key: Vec<f64> = removals
        .iter()
        .map(|&r| churn(&ids, 25, 100, r, true))
        .collect();
    let sre: Vec<f64> = removals
        .iter()
        .map(|&r| {
            let rest: Vec<&str> = ids
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != r)
                .map(|(_, s)| *s)
                .collect();
            (0..100u64)
                .filter(|&c| sre_book(&ids, 25, c) != sre_book(&rest, 25, c))
                .count() as f64
                / 100.0
        })
        .collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    println!(
        "churn (share of 100 clients whose subset changes, 1 of 300 backends leaves): \
         index mean {:.3} max {:.3}; key mean {:.3} max {:.3}; SRE book mean {:.3} max {:.3}",
        mean(&index),
        max(&index),
        mean(&key),
        max(&key),
        mean(&sre),
        max(&sre)
    );
    // Rendezvous: only the holders of the removed backend change (k/n ≈ 8.3 % on average).
    assert!(mean(&key) <= 0.12, "{key:?}");
    // The index scheme: well under the SRE book's near-total reshuffle.
    assert!(mean(&index) <= 0.35, "{index:?}");
    assert!(
        mean(&sre) >= 0.8,
        "the reference scheme should reshuffle: {sre:?}"
    );
}

#[test]
fn key_scheme_balance_is_binomial() {
    let owned = backends(300);
    let ids: Vec<&str> = owned.iter().map(String::as_str).collect();
    let mut load = vec![0usize; 300];
    for c in 0..100 {
        for i in subset_by_key(&ids, 25, &format!("client-{c}")) {
            load[i] += 1;
        }
    }
    let mean = 2_500.0 / 300.0;
    let var = load.iter().map(|&l| (l as f64 - mean).powi(2)).sum::<f64>() / 300.0;
    println!(
        "key scheme: min {} max {} sd {:.2}",
        load.iter().min().unwrap(),
        load.iter().max().unwrap(),
        var.sqrt()
    );
    // Binomial(100, 1/12): sd ≈ 2.76.
    assert!((1.8..4.0).contains(&var.sqrt()), "sd {}", var.sqrt());
}

#[test]
fn small_lists_are_used_whole() {
    let ids = ["a", "b", "c"];
    assert_eq!(subset_by_index(&ids, 25, 9), vec![0, 1, 2]);
    assert_eq!(subset_by_key(&ids, 3, "x"), vec![0, 1, 2]);
    assert!(subset_by_index(&ids, 0, 1).is_empty());
    assert!(subset_by_key(&[], 5, "x").is_empty());
}

fn id_list() -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set("[a-z]{1,6}:[0-9]{1,4}", 1..120)
        .prop_map(|s| s.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn size_is_min_k_n_and_order_never_matters(ids in id_list(), k in 1usize..40, client in 0u64..500, seed in any::<u64>()) {
        let list: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut shuffled = list.clone();
        // A deterministic shuffle from the seed.
        let len = shuffled.len();
        for i in (1..len).rev() {
            let j = (seed.rotate_left(i as u32) ^ i as u64) as usize % (i + 1);
            shuffled.swap(i, j);
        }
        for (a, b) in [
            (subset_by_index(&list, k, client), subset_by_index(&shuffled, k, client)),
            (subset_by_key(&list, k, &client.to_string()), subset_by_key(&shuffled, k, &client.to_string())),
        ] {
            prop_assert_eq!(a.len(), k.min(len));
            prop_assert!(a.windows(2).all(|w| w[0] < w[1]));
            prop_assert_eq!(names(&list, &a), names(&shuffled, &b));
        }
    }

    #[test]
    fn full_rounds_are_exactly_balanced(rounds in 1u64..5, k in 1usize..12, per_round in 1usize..12) {
        // n a multiple of k: every backend is claimed once per round.
        let owned = backends(k * per_round);
        let ids: Vec<&str> = owned.iter().map(String::as_str).collect();
        let load = loads(&ids, k, rounds * per_round as u64);
        prop_assert!(load.values().all(|&l| l as u64 == rounds), "{:?}", load);
    }

    #[test]
    fn membership_changes_move_only_what_they_must(
        ops in prop::collection::vec((any::<bool>(), 0usize..400), 1..12),
        k in 1usize..10,
    ) {
        // A random sequence of joins and leaves over a pool of 400 ids.
        let pool = backends(400);
        let mut live: BTreeSet<usize> = (0..40).collect();
        for (join, which) in ops {
            let before: Vec<&str> = live.iter().map(|&i| pool[i].as_str()).collect();
            if join { live.insert(which); } else if live.len() > 1 { let w = *live.iter().nth(which % live.len()).unwrap(); live.remove(&w); }
            let after: Vec<&str> = live.iter().map(|&i| pool[i].as_str()).collect();
            if before == after { continue; }
            for c in 0..30u64 {
                // Rendezvous: a subset changes only when the id that joined or left is in
                // it, and then by that one id and its replacement.
                let old = names(&before, &subset_by_key(&before, k, &c.to_string()));
                let new = names(&after, &subset_by_key(&after, k, &c.to_string()));
                let moved = before.iter().chain(&after).find(|s| !before.contains(s) || !after.contains(s)).unwrap();
                if old != new {
                    prop_assert!(old.contains(moved) || new.contains(moved));
                    prop_assert!(old.difference(&new).count() <= 1 && new.difference(&old).count() <= 1);
                }
                // Index scheme, one id removed and ⌈n/k⌉ unchanged: a client whose round
                // predecessors (and itself) never claimed the removed id keeps its subset.
                if after.len() + 1 == before.len() && before.len().div_ceil(k) == after.len().div_ceil(k) {
                    let gone = before.iter().find(|s| !after.contains(s)).unwrap();
                    let g = before.len().div_ceil(k) as u64;
                    let first = c - c % g;
                    let claimed = (first..=c).any(|p| names(&before, &subset_by_index(&before, k, p)).contains(gone));
                    if !claimed {
                        prop_assert_eq!(
                            names(&before, &subset_by_index(&before, k, c)),
                            names(&after, &subset_by_index(&after, k, c))
                        );
                    }
                }
            }
        }
    }
}

mod balancer {
    use sdkit_core::lb::subset::{Subset, Within};
    use sdkit_core::lb::{Balancer, BalancerConfig, PickContext};
    use sdkit_core::{EndpointSet, Instance};
    use std::collections::BTreeMap;

    fn set(n: usize) -> EndpointSet<usize> {
        EndpointSet::fixed((0..n).map(|i| (Instance::from_addr(super::backends(n)[i].clone()), i)))
    }

    fn counts(lb: &dyn Balancer<usize>, picks: usize) -> BTreeMap<usize, usize> {
        let mut c = BTreeMap::new();
        for _ in 0..picks {
            *c.entry(lb.pick().unwrap()).or_default() += 1;
        }
        c
    }

    #[test]
    fn picks_stay_in_the_subset_in_turn() {
        let set = set(300);
        let lb = Subset::by_index(set.clone(), 42);
        let members = lb.members();
        assert_eq!(members.len(), 25);
        let c = counts(&lb, 2_500);
        assert_eq!(c.len(), 25);
        assert!(c.values().all(|&v| v == 100), "{c:?}");
        let snapshot = set.load();
        for i in c.keys() {
            let e = snapshot.iter().find(|e| e.service() == i).unwrap();
            assert!(members.contains(&e.instance().id().to_owned()));
        }
    }

    #[test]
    fn a_subset_short_of_ready_members_spills_and_comes_back() {
        let set = set(60);
        let lb = Subset::by_key(set.clone(), "pod-7").with_size(4);
        let members: Vec<usize> = counts(&lb, 40).into_keys().collect();
        assert_eq!(members.len(), 4);
        let snapshot = set.load();
        let state = |i: usize| {
            snapshot
                .iter()
                .find(|e| *e.service() == i)
                .unwrap()
                .state()
                .clone()
        };
        // Half the subset down: still inside, on the two ready members.
        state(members[0]).set_transport_ready(false);
        state(members[1]).set_transport_ready(false);
        let c = counts(&lb, 100);
        assert_eq!(c.keys().copied().collect::<Vec<_>>(), members[2..].to_vec());
        // Three of four down: spill to every ready endpoint.
        state(members[2]).set_transport_ready(false);
        let c = counts(&lb, 570);
        assert_eq!(c.len(), 57, "{c:?}");
        assert!(!c.contains_key(&members[0]));
        for &m in &members[..3] {
            state(m).set_transport_ready(true);
        }
        assert_eq!(counts(&lb, 40).into_keys().collect::<Vec<_>>(), members);
        // A retry avoids the endpoint that failed.
        let first = lb.pick_with(&PickContext::new()).unwrap();
        let avoid = [first.key];
        let again = lb
            .pick_with(&PickContext::new().with_avoid(&avoid))
            .unwrap();
        assert_ne!(first.service, again.service);
    }

    #[test]
    fn configured_by_json() {
        let config: BalancerConfig =
            r#"{"policy": "subset", "size": 10, "client_index": 3, "within": "p2c"}"#
                .parse()
                .unwrap();
        assert!(config.uses_feedback());
        let lb = config.build(set(100));
        assert_eq!(counts(&*lb, 1_000).len(), 10);
        let same = Subset::by_index(set(100), 3)
            .with_size(10)
            .with_within(Within::Random);
        assert_eq!(
            counts(&*lb, 100).into_keys().collect::<Vec<_>>(),
            counts(&same, 1_000).into_keys().collect::<Vec<_>>()
        );
        for json in [
            r#"{"policy": "zone_aware", "zone": "a", "min_local_share": 0.3}"#,
            r#"{"policy": "maglev", "table_size": 1000}"#,
        ] {
            let config: BalancerConfig = json.parse().unwrap();
            assert_eq!(counts(&*config.build(set(5)), 500).len(), 5, "{json}");
        }
    }
}
