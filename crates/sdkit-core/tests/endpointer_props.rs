//! Random sequences of snapshots (joins, leaves, changes of metadata, weight, zone and address,
//! republished in any order) through an `InstanceCache` into an `Endpointer`: after every
//! update the endpoint set is exactly what a build from scratch would give, a kept identity and
//! address keeps its service and state, and the factory is called for new or moved instances
//! only.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use sdkit_core::lb::EndpointState;
use sdkit_core::{BoxError, EndpointKey, Endpointer, Instance, InstanceCache};

const IDS: u8 = 8;

/// What the model knows of one identity.
#[derive(Debug, Clone, PartialEq)]
struct Spec {
    addr: u8,
    weight: u32,
    zone: Option<u8>,
    meta: u8,
}

#[derive(Debug, Clone)]
enum Op {
    Join(u8, u8),
    Leave(u8),
    Meta(u8, u8),
    Weight(u8, u32),
    Zone(u8, Option<u8>),
    Move(u8, u8),
    /// Publish the same set again, in reverse order.
    Republish,
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0..IDS;
    prop_oneof![
        3 => (id.clone(), 0u8..3).prop_map(|(i, a)| Op::Join(i, a)),
        2 => id.clone().prop_map(Op::Leave),
        2 => (id.clone(), 0u8..4).prop_map(|(i, m)| Op::Meta(i, m)),
        2 => (id.clone(), 0u32..4).prop_map(|(i, w)| Op::Weight(i, w)),
        1 => (id.clone(), prop::option::of(0u8..2)).prop_map(|(i, z)| Op::Zone(i, z)),
        2 => (id, 0u8..3).prop_map(|(i, a)| Op::Move(i, a)),
        1 => Just(Op::Republish),
    ]
}

fn instance(id: u8, spec: &Spec) -> Instance {
    let i = Instance::new(format!("id-{id}"), format!("10.0.{}.{id}:80", spec.addr))
        .with_weight(spec.weight)
        .with_meta("version", format!("v{}", spec.meta));
    match spec.zone {
        Some(z) => i.with_zone(format!("z{z}")),
        None => i,
    }
}

/// The instances a from-scratch build would show, sorted by identity.
fn expected(model: &BTreeMap<u8, Spec>) -> Vec<Instance> {
    model.iter().map(|(id, spec)| instance(*id, spec)).collect()
}

/// The service: the identity and address the factory was called with, and a serial number.
type Svc = (String, String, u64);

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut model: BTreeMap<u8, Spec> = (0..IDS / 2)
        .map(|i| {
            let spec = Spec {
                addr: 0,
                weight: 1,
                zone: None,
                meta: 0,
            };
            (i, spec)
        })
        .collect();
    let cache = InstanceCache::new();
    cache.update(expected(&model));
    let serial = Arc::new(AtomicU64::new(0));
    let made = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let endpointer = rt.block_on(async {
        let (serial, made) = (Arc::clone(&serial), Arc::clone(&made));
        let e = Endpointer::new(&cache, move |i: &Instance| {
            made.lock()
                .unwrap()
                .push((i.id().to_owned(), i.addr().to_owned()));
            let n = serial.fetch_add(1, Ordering::SeqCst);
            Ok::<Svc, BoxError>((i.id().to_owned(), i.addr().to_owned(), n))
        });
        e.ready(Duration::from_secs(10)).await.unwrap();
        e
    });
    let set = endpointer.endpoint_set();
    // Every state ever handed out (kept alive, so that a pointer is never reused).
    let mut seen: Vec<Arc<EndpointState>> = set
        .snapshot()
        .iter()
        .map(|e| Arc::clone(e.state()))
        .collect();
    made.lock().unwrap().clear();
    for op in ops {
        let mut order_reversed = false;
        match op {
            Op::Join(id, addr) => {
                model.entry(id).or_insert(Spec {
                    addr,
                    weight: 1,
                    zone: None,
                    meta: 0,
                });
            }
            Op::Leave(id) => {
                model.remove(&id);
            }
            Op::Meta(id, m) => {
                if let Some(s) = model.get_mut(&id) {
                    s.meta = m;
                }
            }
            Op::Weight(id, w) => {
                if let Some(s) = model.get_mut(&id) {
                    s.weight = w;
                }
            }
            Op::Zone(id, z) => {
                if let Some(s) = model.get_mut(&id) {
                    s.zone = z;
                }
            }
            Op::Move(id, a) => {
                if let Some(s) = model.get_mut(&id) {
                    s.addr = a;
                }
            }
            Op::Republish => order_reversed = true,
        }
        let before = set.snapshot();
        let version = set.version();
        let mut publish = expected(&model);
        if order_reversed {
            publish.reverse();
        }
        if cache.update(publish) {
            rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), set.changed_since(version)).await
            })
            .map_err(|_| TestCaseError::fail("no endpoint snapshot after an update"))?;
        }
        let after = set.snapshot();

        // Exactly what a build from scratch would show, every field of every instance.
        let shown: Vec<Instance> = after.iter().map(|e| e.instance().clone()).collect();
        prop_assert_eq!(&shown, &expected(&model));

        let mut fresh = Vec::new();
        for e in after.iter() {
            let (id, addr) = (e.instance().id(), e.instance().addr());
            prop_assert_eq!(e.key(), EndpointKey::of(id));
            // The service was made for this identity and address.
            prop_assert_eq!((e.service().0.as_str(), e.service().1.as_str()), (id, addr));
            let kept = before
                .iter()
                .find(|b| b.instance().id() == id && b.instance().addr() == addr);
            match kept {
                // Same identity and address: the same service and state, whatever else changed.
                Some(b) => {
                    prop_assert!(
                        Arc::ptr_eq(b.state(), e.state()),
                        "state of {} not kept",
                        id
                    );
                    prop_assert_eq!(b.service(), e.service());
                }
                // New, re-joined or moved: a new service and a state never seen before.
                None => {
                    prop_assert!(!seen.iter().any(|s| Arc::ptr_eq(s, e.state())));
                    seen.push(Arc::clone(e.state()));
                    fresh.push((id.to_owned(), addr.to_owned()));
                }
            }
        }
        // The factory was called for the new or moved instances, and for nothing else.
        let mut calls = std::mem::take(&mut *made.lock().unwrap());
        calls.sort();
        fresh.sort();
        prop_assert_eq!(calls, fresh);
    }
    drop(endpointer);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn endpoint_set_equals_a_fresh_build_and_keeps_state_by_identity(ops in prop::collection::vec(op(), 1..50)) {
        run(ops)?;
    }
}

/// A large set (past the size whose leftovers are dropped off the endpointer's task) with a
/// changed weight and metadata on every instance, one moved instance and one new one: the
/// endpoints show the new instances, keep every other state and call the factory twice.
#[tokio::test]
async fn a_large_update_shows_every_changed_field_and_keeps_the_states() {
    let n = 3_000usize;
    let inst = |i: usize, v: u32| {
        Instance::new(
            format!("web-{i:05}"),
            format!("10.0.{}.{}:80", i / 250, i % 250),
        )
        .with_weight(v)
        .with_meta("version", format!("v{v}"))
    };
    let made = Arc::new(AtomicU64::new(0));
    let cache = InstanceCache::new();
    cache.update((0..n).map(|i| inst(i, 1)).collect());
    let counted = Arc::clone(&made);
    let endpointer = Endpointer::new(&cache, move |i: &Instance| {
        counted.fetch_add(1, Ordering::SeqCst);
        Ok::<_, BoxError>(i.addr().to_owned())
    });
    let first = endpointer.ready(Duration::from_secs(10)).await.unwrap();
    assert_eq!(made.load(Ordering::SeqCst), n as u64);

    let mut next: Vec<Instance> = (0..n).map(|i| inst(i, 2)).collect();
    next[7] = Instance::new("web-00007", "10.9.9.9:80").with_weight(2);
    next.push(inst(n, 2));
    let version = endpointer.endpoint_set().version();
    cache.update(next.clone());
    tokio::time::timeout(
        Duration::from_secs(10),
        endpointer.endpoint_set().changed_since(version),
    )
    .await
    .unwrap();
    let after = endpointer.endpoints();
    let shown: Vec<Instance> = after.iter().map(|e| e.instance().clone()).collect();
    assert_eq!(shown, next);
    assert_eq!(made.load(Ordering::SeqCst), n as u64 + 2);
    for (i, e) in after.iter().enumerate() {
        if i < n && i != 7 {
            let old = first.get(i).unwrap();
            assert!(Arc::ptr_eq(e.state(), old.state()), "state {i} kept");
            assert_eq!(e.service(), old.service());
        } else {
            assert!(
                first.iter().all(|o| !Arc::ptr_eq(o.state(), e.state())),
                "{i} fresh"
            );
        }
        assert_eq!(e.service(), e.instance().addr());
    }
}
