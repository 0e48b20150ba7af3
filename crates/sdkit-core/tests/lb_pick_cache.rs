//! The caller-owned pick cache ([`PickCache`]): picks through caches racing a stream of snapshot
//! updates only ever see whole snapshots that were live, never go back to an older one and
//! follow the newest; caches stay fair across threads; a cache moved to another balancer picks
//! from that balancer's set; `BalancedService` handles (long-lived or cloned per request) spread
//! their calls over every endpoint.

mod support;

use support::fairness;
use support::generations::{self, Generations};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sdkit_core::lb::{Balancer, BalancerConfig, PickCache, PickContext, Random, RoundRobin};
use sdkit_core::{BalancedService, BoxError, EndpointKey, EndpointSet, Instance};
use tower::{Service, ServiceExt, service_fn};

/// Generation `g` has `size(g)` endpoints, each serving `(g, i)`.
fn size(g: u64) -> u64 {
    1 + (g * 7) % 40
}

fn id(g: u64, i: u64) -> String {
    format!("g{g:06}-{i:02}")
}

fn generation(g: u64) -> Vec<Instance> {
    (0..size(g))
        .map(|i| Instance::new(id(g, i), format!("10.{}.{}.{i}:80", g / 250, g % 250)))
        .collect()
}

/// How a picker thread picks: every path that reads a cache.
#[derive(Clone, Copy, Debug)]
enum Path {
    RoundRobinCached,
    RandomCached,
    RoundRobinWithCached,
    /// Alternates between two caches and the per-thread path on one balancer.
    Mixed,
}

#[test]
fn cached_picks_racing_updates_see_live_snapshots_and_follow_the_latest() {
    let Generations {
        rt: _rt,
        cache,
        endpointer,
    } = generations::start(generation(0));
    let set = endpointer.endpoint_set();
    let rr = Arc::new(RoundRobin::new(set.clone()));
    let random = Arc::new(Random::new(set.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let paths = [
        Path::RoundRobinCached,
        Path::RandomCached,
        Path::RoundRobinWithCached,
        Path::Mixed,
    ];
    let pickers: Vec<_> = paths
        .into_iter()
        .map(|path| {
            let (rr, random, set, stop, errors) = (
                Arc::clone(&rr),
                Arc::clone(&random),
                set.clone(),
                Arc::clone(&stop),
                Arc::clone(&errors),
            );
            std::thread::spawn(move || {
                let mut caches = [PickCache::new(), PickCache::new()];
                let mut newest = [0u64; 3];
                let mut picks = 0u64;
                let mut pick = |n: u64| -> (usize, (u64, u64), Option<EndpointKey>) {
                    match path {
                        Path::RoundRobinCached => {
                            (0, rr.pick_cached(&mut caches[0]).unwrap(), None)
                        }
                        Path::RandomCached => {
                            (0, random.pick_cached(&mut caches[0]).unwrap(), None)
                        }
                        Path::RoundRobinWithCached => {
                            let picked = rr
                                .pick_with_cached(&mut caches[0], &PickContext::new())
                                .unwrap();
                            (0, picked.service, Some(picked.key))
                        }
                        Path::Mixed => match n % 3 {
                            2 => (2, rr.pick().unwrap(), None),
                            k => {
                                let k = k as usize;
                                (k, rr.pick_cached(&mut caches[k]).unwrap(), None)
                            }
                        },
                    }
                };
                let mut check = |source: usize, (g, i): (u64, u64), key: Option<EndpointKey>| {
                    let fail =
                        |what: String| errors.lock().unwrap().push(format!("{path:?}: {what}"));
                    // A whole snapshot of one generation.
                    if i >= size(g) {
                        fail(format!("picked ({g}, {i}): generation {g} has {}", size(g)));
                    }
                    // Never an older snapshot than one this cache (or thread) already used.
                    if g < newest[source] {
                        fail(format!(
                            "picked ({g}, {i}) after generation {}",
                            newest[source]
                        ));
                    }
                    newest[source] = newest[source].max(g);
                    // Live: published no later than the set's current snapshot.
                    let current = set.load().get(0).map_or(0, |e| e.service().0);
                    if g > current {
                        fail(format!(
                            "picked generation {g} before it was published ({current})"
                        ));
                    }
                    // The key is the picked endpoint's own.
                    if let Some(key) = key
                        && key != EndpointKey::of(&id(g, i))
                    {
                        fail(format!("key of ({g}, {i}) is not its own"));
                    }
                };
                while !stop.load(Ordering::Relaxed) {
                    let (source, picked, key) = pick(picks);
                    picks += 1;
                    check(source, picked, key);
                }
                // Stopped once the last generation is published: every cache follows it.
                let finals: Vec<u64> = (0..3).map(|n| pick(picks + n).1.0).collect();
                (picks, finals)
            })
        })
        .collect();
    let updater = {
        let cache = cache.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut g = 0;
            while start.elapsed() < Duration::from_millis(800) {
                g += 1;
                cache.update(generation(g));
                // Pacing (a few microseconds between updates), not synchronisation.
                std::thread::sleep(Duration::from_micros(5));
            }
            g
        })
    };
    let final_g = updater.join().unwrap();
    generations::wait_for_generation(&set, final_g);
    stop.store(true, Ordering::Relaxed);
    let results: Vec<(u64, Vec<u64>)> = pickers.into_iter().map(|p| p.join().unwrap()).collect();
    generations::assert_no_errors(&errors);
    assert!(final_g > 100, "only {final_g} updates");
    for (path, (picks, finals)) in paths.iter().zip(&results) {
        assert!(*picks > 100, "{path:?}: {picks} picks");
        assert!(
            finals.iter().all(|&g| g == final_g),
            "{path:?}: final picks from generations {finals:?}, the last is {final_g}"
        );
    }
    drop(endpointer);
}

fn fixed(n: usize) -> EndpointSet<usize> {
    EndpointSet::fixed((0..n).map(|i| (Instance::from_addr(format!("10.0.0.{i}:80")), i)))
}

#[test]
fn round_robin_caches_on_two_threads_stay_fair_within_one_percent() {
    let n = 7;
    let rr = Arc::new(RoundRobin::new(fixed(n)));
    fairness::assert_even_from_two_threads(n, 50_000, || {
        let rr = Arc::clone(&rr);
        let mut cache = PickCache::new();
        move || rr.pick_cached(&mut cache).unwrap()
    });
}

#[test]
fn a_cache_moved_to_another_balancer_picks_from_that_balancers_set() {
    let small = RoundRobin::new(fixed(2));
    let large = RoundRobin::new(EndpointSet::fixed(
        (0..5).map(|i| (Instance::from_addr(format!("10.1.0.{i}:80")), 100 + i)),
    ));
    let mut cache = PickCache::new();
    for round in 0..20 {
        let from_small = small.pick_cached(&mut cache).unwrap();
        assert!(from_small < 2, "round {round}: {from_small}");
        let from_large = large.pick_cached(&mut cache).unwrap();
        assert!(
            (100..105).contains(&from_large),
            "round {round}: {from_large}"
        );
    }
    // An empty set: no endpoint, through a cache as without one.
    let empty = RoundRobin::new(EndpointSet::<usize>::fixed([]));
    assert!(empty.pick_cached(&mut cache).is_err());
    assert!(empty.pick_cached(&mut cache).is_err());
}

#[test]
fn a_cache_picks_each_endpoint_in_turn_and_random_draws_spread() {
    let rr = RoundRobin::new(fixed(3));
    let mut cache = PickCache::new();
    let picks: Vec<usize> = (0..9)
        .map(|_| rr.pick_cached(&mut cache).unwrap())
        .collect();
    assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0, 1, 2]);
    // Two caches filled one after the other start on different endpoints.
    let (mut a, mut b) = (PickCache::new(), PickCache::new());
    let first: Vec<usize> = (0..2)
        .flat_map(|_| {
            [
                rr.pick_cached(&mut a).unwrap(),
                rr.pick_cached(&mut b).unwrap(),
            ]
        })
        .collect();
    assert_ne!(first[2], first[3], "{first:?}");

    let random = Random::with_seed(fixed(100), 7);
    let mut cache = PickCache::new();
    let mut seen: HashMap<usize, u32> = HashMap::new();
    for _ in 0..10_000 {
        *seen
            .entry(random.pick_cached(&mut cache).unwrap())
            .or_default() += 1;
    }
    // 100 draws expected each: every endpoint drawn, none far from its share (> 5σ apart).
    assert_eq!(seen.len(), 100);
    assert!(seen.values().all(|&k| (50..=150).contains(&k)), "{seen:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn balanced_service_handles_spread_calls_over_every_endpoint() {
    let n = 5;
    let set = EndpointSet::fixed((0..n).map(|i| {
        (
            Instance::from_addr(format!("10.0.0.{i}:80")),
            service_fn(move |_: ()| async move { Ok::<_, BoxError>(i) }),
        )
    }));
    let template = BalancedService::new(RoundRobin::new(set));
    // A long-lived handle (its calls through its own cache).
    let mut handle = template.clone();
    let mut counts = vec![0u32; n];
    for _ in 0..100 * n {
        counts[handle.ready().await.unwrap().call(()).await.unwrap()] += 1;
    }
    assert!(
        counts.iter().all(|&c| c == 100),
        "long-lived handle: {counts:?}"
    );
    // A clone per request (each used once) does not repeat the template's picks.
    let mut counts = vec![0u32; n];
    for _ in 0..100 * n {
        counts[template.clone().oneshot(()).await.unwrap()] += 1;
    }
    assert!(
        counts.iter().all(|&c| c == 100),
        "clone per request: {counts:?}"
    );
}

#[test]
fn a_cache_keeps_its_own_position_through_boxed_and_metered_balancers() {
    let config: BalancerConfig = serde_json::from_str(r#"{"policy": "round_robin"}"#).unwrap();
    let balancers: Vec<(&str, Box<dyn Balancer<usize>>)> = vec![
        ("plain", Box::new(RoundRobin::new(fixed(5)))),
        ("config-built (metered)", config.build(fixed(5))),
    ];
    for (name, rr) in balancers {
        let mut cache = PickCache::new();
        // The cache's first pick takes this thread's position 0, its second fills the cache at
        // position 1; a plain pick then takes this thread's position 2 and the cache goes on
        // from its own (2), not from this thread's (3).
        let picks = [
            rr.pick_cached(&mut cache).unwrap(),
            rr.pick_cached(&mut cache).unwrap(),
            rr.pick().unwrap(),
            rr.pick_cached(&mut cache).unwrap(),
        ];
        assert_eq!(picks, [0, 1, 2, 2], "{name}");
    }
}
