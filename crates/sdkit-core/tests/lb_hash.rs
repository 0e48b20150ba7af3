//! Consistent hashing (Maglev and the ketama ring): stability, balance, weights and the remap
//! bound (issue #13, item 6).

use proptest::prelude::*;
use sdkit_core::lb::hash::{Maglev, RingHash, hash_key};
use sdkit_core::lb::{Balancer, PickContext};
use sdkit_core::{EndpointSet, Instance};
use std::collections::BTreeSet;

/// The two consistent-hash balancers, with their default options.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Maglev,
    Ring,
}

fn build(kind: Kind, set: EndpointSet<usize>) -> Box<dyn Balancer<usize>> {
    match kind {
        Kind::Maglev => Box::new(Maglev::new(set)),
        Kind::Ring => Box::new(RingHash::new(set)),
    }
}

fn fixed(members: &BTreeSet<usize>) -> EndpointSet<usize> {
    EndpointSet::fixed(members.iter().map(|&i| (Instance::from_addr(addr(i)), i)))
}

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

fn pick(lb: &dyn Balancer<usize>, key: u64) -> usize {
    lb.pick_with(&PickContext::new().with_hash(key))
        .unwrap()
        .service
}

fn mapping(lb: &dyn Balancer<usize>, keys: &[u64]) -> Vec<usize> {
    keys.iter().map(|&k| pick(lb, k)).collect()
}

/// Adds `which`, or removes the `which`-th member (keeping one): `false` when nothing changed.
fn apply(live: &mut BTreeSet<usize>, join: bool, which: usize) -> bool {
    if join {
        live.insert(which)
    } else if live.len() > 1 {
        let w = *live.iter().nth(which % live.len()).unwrap();
        live.remove(&w)
    } else {
        false
    }
}

fn moved(a: &[usize], b: &[usize]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x != y).count() as f64 / a.len() as f64
}

#[test]
fn removing_one_of_n_remaps_at_most_1_over_n_plus_2_percent() {
    let keys = keys(50_000);
    for (kind, n) in [Kind::Maglev, Kind::Ring]
        .into_iter()
        .flat_map(|k| [3usize, 10, 100, 1_000].map(|n| (k, n)))
    {
        let all: BTreeSet<usize> = (0..n).collect();
        let before = mapping(&*build(kind, fixed(&all)), &keys);
        let mut worst = 0.0f64;
        for removed in [0, n / 2, n - 1] {
            let mut rest = all.clone();
            rest.remove(&removed);
            let after = mapping(&*build(kind, fixed(&rest)), &keys);
            // Keys that were not on the removed endpoint and moved anyway.
            let m = moved(&before, &after);
            assert!(
                m <= 1.0 / n as f64 + 0.02,
                "{kind:?}: n = {n}, removed {removed}: {m:.4} moved"
            );
            // Every key of the removed endpoint moved, to a live one.
            assert!(after.iter().all(|i| *i != removed));
            worst = worst.max(m);
        }
        println!(
            "{kind:?}: n = {n}: worst remapped share {worst:.4} (bound {:.4})",
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
    for kind in [Kind::Maglev, Kind::Ring] {
        let set = EndpointSet::fixed([
            (Instance::from_addr("10.0.0.1:80").with_weight(0), 0),
            (Instance::from_addr("10.0.0.2:80"), 1),
            (Instance::from_addr("10.0.0.3:80"), 2),
        ]);
        let lb = build(kind, set);
        assert!(keys(5_000).iter().all(|&k| pick(&*lb, k) != 0), "{kind:?}");
        let zeros = EndpointSet::fixed([
            (Instance::from_addr("10.0.0.1:80").with_weight(0), 0),
            (Instance::from_addr("10.0.0.2:80").with_weight(0), 1),
        ]);
        assert!(build(kind, zeros).pick().is_err(), "{kind:?}");
    }
}

#[test]
fn keys_of_a_not_ready_endpoint_move_and_come_back() {
    for kind in [Kind::Maglev, Kind::Ring] {
        not_ready_keys_move_and_come_back(kind);
    }
}

fn not_ready_keys_move_and_come_back(kind: Kind) {
    let set = EndpointSet::fixed((0..10).map(|i| (Instance::from_addr(addr(i)), i)));
    let lb = build(kind, set.clone());
    let keys = keys(20_000);
    let before = mapping(&*lb, &keys);
    let down = set.load().as_slice()[3].state().clone();
    down.set_transport_ready(false);
    let during = mapping(&*lb, &keys);
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
    assert!(moved_to.len() >= 5, "{kind:?}: {moved_to:?}");
    assert_eq!(mapping(&*lb, &keys), before);
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
    // ≥ 100 slots per endpoint up to 1 310 endpoints, then the compact 131 071-slot table
    // while it gives ≥ 12 each.
    let big: BTreeSet<usize> = (0..2_000).collect();
    assert_eq!(maglev(&big).table_size(), 131_071);
    let bigger: BTreeSet<usize> = (0..11_000).collect();
    assert_eq!(maglev(&bigger).table_size(), 262_139);
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
            if !apply(&mut live, join, which) { continue; }
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

// ---- The ring (ketama) alone: shares, weights, ring sizes, live membership changes. ----

fn ring_counts(lb: &RingHash<usize>, n: usize, keys: &[u64]) -> Vec<usize> {
    let mut counts = vec![0usize; n];
    for i in mapping(lb, keys) {
        counts[i] += 1;
    }
    counts
}

#[test]
fn ring_keys_spread_within_the_stated_tolerance() {
    let keys = keys(100_000);
    let all: BTreeSet<usize> = (0..10).collect();
    // Envoy's defaults: 128 points each (1 280 ≥ 1 024): a share varies by about 1/√128 ≈ 9 %;
    // allowed ± 30 % (over 3σ).
    let lb = RingHash::new(fixed(&all));
    assert_eq!(lb.ring_size(), 1_280);
    let counts = ring_counts(&lb, 10, &keys);
    assert!(
        counts.iter().all(|&c| (7_000..=13_000).contains(&c)),
        "{counts:?}"
    );
    // 16 384 points each (a minimum of 100 000): ± 5 % (1/√16384 ≈ 0.8 %, plus sampling).
    let lb = RingHash::new(fixed(&all)).with_minimum_ring_size(100_000);
    assert_eq!(lb.ring_size(), 163_840);
    let counts = ring_counts(&lb, 10, &keys);
    assert!(
        counts.iter().all(|&c| (9_500..=10_500).contains(&c)),
        "{counts:?}"
    );
}

#[test]
fn ring_points_follow_weights() {
    let keys = keys(100_000);
    // Weights 1, 2, 3, 4: shares 10, 20, 30, 40 %, each within ± 5 % of itself.
    let set = EndpointSet::fixed(
        (0..4).map(|i| (Instance::from_addr(addr(i)).with_weight(i as u32 + 1), i)),
    );
    let lb = RingHash::new(set).with_minimum_ring_size(100_000);
    // 16 384 points per unit of weight.
    assert_eq!(lb.ring_size(), 163_840);
    let counts = ring_counts(&lb, 4, &keys);
    for (i, &c) in counts.iter().enumerate() {
        let expected = 10_000.0 * (i + 1) as f64;
        assert!((c as f64 - expected).abs() <= 0.05 * expected, "{counts:?}");
    }
}

#[test]
fn ring_sizes_respect_the_bounds() {
    let ten: BTreeSet<usize> = (0..10).collect();
    assert_eq!(
        RingHash::new(fixed(&ten))
            .with_maximum_ring_size(500)
            .ring_size(),
        320
    );
    // A minimum above the maximum counts as the maximum.
    assert_eq!(
        RingHash::new(fixed(&ten))
            .with_minimum_ring_size(10_000)
            .with_maximum_ring_size(1_000)
            .ring_size(),
        640
    );
    // More endpoints than the minimum: one point each; more than the maximum: still one each.
    let many: BTreeSet<usize> = (0..3_000).collect();
    assert_eq!(RingHash::new(fixed(&many)).ring_size(), 3_000);
    assert_eq!(
        RingHash::new(fixed(&many))
            .with_maximum_ring_size(1_000)
            .ring_size(),
        3_000
    );
    let empty = RingHash::<usize>::new(EndpointSet::fixed([]));
    assert_eq!(empty.ring_size(), 0);
    assert!(empty.pick_with(&PickContext::new().with_hash(1)).is_err());
}

/// A live endpoint set fed through an [`InstanceCache`] and an [`Endpointer`], so that one
/// balancer sees a sequence of snapshots.
struct Live {
    rt: tokio::runtime::Runtime,
    cache: sdkit_core::InstanceCache,
    endpointer: Option<sdkit_core::Endpointer<usize>>,
}

impl Live {
    fn new(members: &BTreeSet<usize>) -> Live {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let cache = sdkit_core::InstanceCache::new();
        cache.update(Self::instances(members));
        let endpointer = rt.block_on(async {
            let e = sdkit_core::Endpointer::new(&cache, |i: &Instance| {
                Ok::<_, sdkit_core::BoxError>(i.id().parse::<usize>()?)
            });
            e.ready(std::time::Duration::from_secs(10)).await.unwrap();
            e
        });
        Live {
            rt,
            cache,
            endpointer: Some(endpointer),
        }
    }

    fn instances(members: &BTreeSet<usize>) -> Vec<Instance> {
        members
            .iter()
            .map(|&i| Instance::new(i.to_string(), addr(i)))
            .collect()
    }

    fn set(&self) -> EndpointSet<usize> {
        self.endpointer.as_ref().unwrap().endpoint_set()
    }

    /// Publishes `members` and waits (with a deadline) until the set holds exactly them and
    /// says so through its version, which is what balancers read: the snapshot is swapped in
    /// before the version moves, so a publisher preempted between the two shows the new
    /// snapshot to `snapshot()` while a balancer still rightly serves the previous one.
    fn update(&self, members: &BTreeSet<usize>) {
        let _rt = self.rt.enter();
        let set = self.set();
        let seen = set.version();
        self.cache.update(Self::instances(members));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let now: BTreeSet<usize> = set.snapshot().iter().map(|e| *e.service()).collect();
            if set.version() > seen && &now == members {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "never published");
            std::thread::yield_now();
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _rt = self.rt.enter();
        self.endpointer.take();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// One ring balancer over a live set: while the points per unit of weight stay (the ring
    /// between the minimum and four times it), a leave moves only the departed endpoint's keys
    /// and a join moves keys only to the newcomer (same key → same endpoint across snapshots);
    /// a step of the scale moves about half the keys, never more than 60 % + 1/N.
    #[test]
    fn ring_membership_sequences_keep_their_invariants(
        start in 2usize..60,
        ops in prop::collection::vec((any::<bool>(), 0usize..200), 1..12),
    ) {
        let keys = keys(4_000);
        let mut live: BTreeSet<usize> = (0..start).collect();
        let env = Live::new(&live);
        let lb = RingHash::new(env.set());
        let mut before = mapping(&lb, &keys);
        let mut points = lb.ring_size() / live.len();
        for (join, which) in ops {
            let old = live.clone();
            if !apply(&mut live, join, which) { continue; }
            env.update(&live);
            let after = mapping(&lb, &keys);
            let size = lb.ring_size();
            prop_assert!((1_024..=4_096).contains(&size), "ring of {} points", size);
            prop_assert!(after.iter().all(|i| live.contains(i)));
            let now = size / live.len();
            let n = old.len().max(live.len()) as f64;
            if now == points {
                for (b, a) in before.iter().zip(&after) {
                    // A key moves only off a departed endpoint, or onto a new one.
                    prop_assert!(b == a || !live.contains(b) || !old.contains(a), "{} -> {}", b, a);
                }
                let bound = 1.0 / n + 0.02 + 3.0 * ((1.0 / n) / 4_000.0).sqrt();
                prop_assert!(moved(&before, &after) <= bound);
            } else {
                prop_assert!(moved(&before, &after) <= 0.6 + 1.0 / n);
            }
            points = now;
            before = after;
        }
    }
}
