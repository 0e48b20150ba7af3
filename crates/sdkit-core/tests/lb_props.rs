//! Random sequences of snapshot updates, picks and guard completions against the feedback
//! path's invariants, and a multi-threaded stress of picks during rapid updates.

mod support;

use support::generations::{self, Generations};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use sdkit_core::lb::{
    Balancer, CallGuard, EndpointState, FailureClass, Outcome, P2c, PickContext, RoundRobin,
    WeightedRoundRobin,
};
use sdkit_core::{BoxError, EndpointKey, EndpointSet, Endpointer, Instance, InstanceCache};

const IDS: usize = 6;

#[derive(Debug, Clone)]
enum Op {
    /// For each identity: absent, or present at address variant 0 or 1 with a weight.
    Update(Vec<Option<(u8, u32)>>),
    /// A pick, avoiding the endpoint of held guard `avoid % held` if any.
    Pick { avoid: Option<usize> },
    /// End held guard `i % held` with an outcome.
    Finish(usize, u8),
    /// Drop held guard `i % held` unfinished.
    Drop(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => prop::collection::vec(prop::option::of((0u8..2, 0u32..4)), IDS).prop_map(Op::Update),
        4 => prop::option::of(0usize..8).prop_map(|avoid| Op::Pick { avoid }),
        2 => (0usize..8, 0u8..3).prop_map(|(i, o)| Op::Finish(i, o)),
        1 => (0usize..8).prop_map(Op::Drop),
    ]
}

fn instances(spec: &[Option<(u8, u32)>]) -> Vec<Instance> {
    spec.iter()
        .enumerate()
        .filter_map(|(i, s)| {
            s.map(|(addr, w)| {
                Instance::new(format!("id-{i}"), format!("10.0.{addr}.{i}:80")).with_weight(w)
            })
        })
        .collect()
}

struct Held {
    state: Arc<EndpointState>,
    key: EndpointKey,
    guard: CallGuard,
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = InstanceCache::new();
    let first = vec![Some((0, 1)); IDS];
    cache.update(instances(&first));
    let endpointer = rt.block_on(async {
        let e = Endpointer::new(&cache, |i: &Instance| Ok::<_, BoxError>(i.id().to_owned()));
        e.ready(Duration::from_secs(10)).await.unwrap();
        e
    });
    let set = endpointer.endpoint_set();
    let p2c = P2c::with_seed(set.clone(), sdkit_core::lb::Load::PEAK_EWMA, 5);
    // Every state ever seen, by identity and address (kept alive so pointers are never reused).
    let mut seen: Vec<(String, String, Arc<EndpointState>)> = Vec::new();
    let record = |set: &EndpointSet<String>,
                  seen: &mut Vec<(String, String, Arc<EndpointState>)>| {
        for e in set.snapshot().iter() {
            if !seen.iter().any(|(_, _, s)| Arc::ptr_eq(s, e.state())) {
                seen.push((
                    e.instance().id().to_owned(),
                    e.instance().addr().to_owned(),
                    Arc::clone(e.state()),
                ));
            }
        }
    };
    record(&set, &mut seen);
    let mut held: Vec<Held> = Vec::new();
    for op in ops {
        match op {
            Op::Update(spec) => {
                let before = set.snapshot();
                let version = set.version();
                if cache.update(instances(&spec)) {
                    rt.block_on(async {
                        tokio::time::timeout(Duration::from_secs(10), set.changed_since(version))
                            .await
                    })
                    .map_err(|_| TestCaseError::fail("no snapshot after an update"))?;
                }
                let after = set.snapshot();
                for e in after.iter() {
                    let kept = before.iter().find(|b| {
                        b.instance().id() == e.instance().id()
                            && b.instance().addr() == e.instance().addr()
                    });
                    match kept {
                        // Unchanged identity and address: the same state.
                        Some(b) => prop_assert!(Arc::ptr_eq(b.state(), e.state())),
                        // New, re-added or moved: a state never seen before.
                        None => {
                            prop_assert!(!seen.iter().any(|(_, _, s)| Arc::ptr_eq(s, e.state())))
                        }
                    }
                }
                record(&set, &mut seen);
            }
            Op::Pick { avoid } => {
                let avoid: Vec<EndpointKey> = avoid
                    .filter(|_| !held.is_empty())
                    .map(|i| held[i % held.len()].key)
                    .into_iter()
                    .collect();
                let snapshot = set.snapshot();
                match p2c.pick_with(&PickContext::new().with_avoid(&avoid)) {
                    Ok(picked) => {
                        let e = snapshot.iter().find(|e| e.key() == picked.key);
                        let e =
                            e.ok_or_else(|| TestCaseError::fail("picked outside the snapshot"))?;
                        prop_assert!(
                            e.instance().weight() > 0,
                            "weight 0 picked: {:?} from {:?}",
                            e.instance(),
                            snapshot
                                .iter()
                                .map(|e| (
                                    e.instance().id().to_owned(),
                                    e.instance().weight(),
                                    e.state().is_ready()
                                ))
                                .collect::<Vec<_>>()
                        );
                        prop_assert_eq!(e.service(), &picked.service);
                        held.push(Held {
                            state: Arc::clone(e.state()),
                            key: picked.key,
                            guard: picked.guard,
                        });
                    }
                    Err(_) => prop_assert!(snapshot.iter().all(|e| e.instance().weight() == 0)),
                }
            }
            Op::Finish(i, o) if !held.is_empty() => {
                let h = held.remove(i % held.len());
                let outcome = match o {
                    0 => Outcome::Success,
                    1 => Outcome::Failure(FailureClass::Timeout),
                    _ => Outcome::Cancelled,
                };
                let failures = h.state.consecutive_failures();
                h.guard.finish(outcome);
                match outcome {
                    Outcome::Success => prop_assert_eq!(h.state.consecutive_failures(), 0),
                    Outcome::Failure(_) => {
                        prop_assert_eq!(h.state.consecutive_failures(), failures + 1)
                    }
                    Outcome::Cancelled => prop_assert_eq!(h.state.consecutive_failures(), failures),
                }
            }
            Op::Drop(i) if !held.is_empty() => {
                let h = held.remove(i % held.len());
                let failures = h.state.consecutive_failures();
                drop(h.guard);
                prop_assert_eq!(
                    h.state.consecutive_failures(),
                    failures,
                    "a dropped guard is no failure"
                );
            }
            Op::Finish(..) | Op::Drop(_) => {}
        }
        // In flight = the guards held on that state, for every state ever seen.
        for (_, _, state) in &seen {
            let expected = held.iter().filter(|h| Arc::ptr_eq(&h.state, state)).count() as u32;
            prop_assert_eq!(state.in_flight(), expected);
        }
    }
    held.clear();
    for (_, _, state) in &seen {
        prop_assert_eq!(state.in_flight(), 0, "in flight returns to zero");
    }
    drop(endpointer);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn feedback_invariants_hold_over_random_sequences(ops in prop::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}

/// Generation `g` has `size(g)` endpoints, each serving `(g, i)`.
fn size(g: u64) -> u64 {
    1 + (g * 7) % 40
}

fn generation(g: u64) -> Vec<Instance> {
    (0..size(g))
        .map(|i| {
            Instance::new(
                format!("g{g:06}-{i:02}"),
                format!("10.{}.{}.{i}:80", g / 250, g % 250),
            )
        })
        .collect()
}

#[test]
fn picks_during_rapid_updates_never_see_a_torn_set_and_follow_the_latest() {
    let Generations {
        rt: _rt,
        cache,
        endpointer,
    } = generations::start(generation(0));
    let set = endpointer.endpoint_set();
    let stop = Arc::new(AtomicBool::new(false));
    let last = Arc::new(AtomicU64::new(0));
    let balancers: Vec<Arc<dyn Balancer<(u64, u64)>>> = vec![
        Arc::new(RoundRobin::new(set.clone())),
        Arc::new(WeightedRoundRobin::new(set.clone())),
        Arc::new(P2c::least_in_flight(set.clone())),
    ];
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let pickers: Vec<_> = balancers
        .iter()
        .map(|b| {
            let (b, stop, set, errors) = (
                Arc::clone(b),
                Arc::clone(&stop),
                set.clone(),
                Arc::clone(&errors),
            );
            std::thread::spawn(move || {
                let mut newest = 0;
                let mut picks = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let (g, i) = b.pick().expect("never empty");
                    picks += 1;
                    if i >= size(g) || g < newest {
                        errors
                            .lock()
                            .unwrap()
                            .push(format!("picked ({g}, {i}) after generation {newest}"));
                    }
                    newest = newest.max(g);
                    // A snapshot is whole: one generation, all of it.
                    let snapshot = set.load();
                    let g0 = snapshot.get(0).unwrap().service().0;
                    if snapshot.len() as u64 != size(g0)
                        || snapshot.iter().any(|e| e.service().0 != g0)
                    {
                        errors
                            .lock()
                            .unwrap()
                            .push(format!("torn snapshot at generation {g0}"));
                    }
                }
                picks
            })
        })
        .collect();
    let updater = {
        let (cache, stop, last) = (cache.clone(), Arc::clone(&stop), Arc::clone(&last));
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut g = 0;
            while start.elapsed() < Duration::from_millis(800) {
                g += 1;
                cache.update(generation(g));
                last.store(g, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(5));
            }
            let _ = stop;
            g
        })
    };
    let final_g = updater.join().unwrap();
    // The endpointer catches up with the last generation; then every balancer picks from it.
    generations::wait_for_generation(&set, final_g);
    for b in &balancers {
        assert_eq!(b.pick().unwrap().0, final_g);
    }
    stop.store(true, Ordering::Relaxed);
    let picks: Vec<u64> = pickers.into_iter().map(|p| p.join().unwrap()).collect();
    generations::assert_no_errors(&errors);
    assert!(final_g > 100, "only {final_g} updates");
    assert!(
        picks.iter().all(|&p| p > 100),
        "picks per thread: {picks:?}"
    );
    drop(endpointer);
}
