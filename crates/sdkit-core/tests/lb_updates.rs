//! Maglev, the hash ring, zone preference and subsetting build a table per snapshot: picks
//! racing a stream of snapshot updates must always use a table built for the snapshot they pick
//! from (never an index from an older or newer one), and follow the newest snapshot.

mod support;

use support::generations::{self, Generations};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sdkit_core::Instance;
use sdkit_core::lb::hash::{Maglev, RingHash};
use sdkit_core::lb::subset::Subset;
use sdkit_core::lb::zone::ZoneAware;
use sdkit_core::lb::{Balancer, PickContext};

/// A named balancer over `(generation, index)` endpoints.
type Named = (&'static str, Arc<dyn Balancer<(u64, u64)>>);

/// Generation `g` has `members(g)` instances, ids `g{g}-{i}`, half of them in zone `z0`.
fn members(g: u64) -> u64 {
    2 + (g * 13) % 60
}

fn generation(g: u64) -> Vec<Instance> {
    (0..members(g))
        .map(|i| {
            Instance::new(
                format!("g{g:05}-{i:02}"),
                format!("10.{}.{}.{i}:80", g / 250, g % 250),
            )
            .with_zone(if i % 2 == 0 { "z0" } else { "z1" })
        })
        .collect()
}

#[test]
fn picks_racing_updates_use_their_own_snapshot_table() {
    let Generations {
        rt: _rt,
        cache,
        endpointer,
    } = generations::start(generation(0));
    let set = endpointer.endpoint_set();
    let balancers: Vec<Named> = vec![
        ("maglev", Arc::new(Maglev::new(set.clone()))),
        ("ring_hash", Arc::new(RingHash::new(set.clone()))),
        (
            "zone_aware",
            Arc::new(ZoneAware::new(set.clone()).with_zone("z0")),
        ),
        (
            "subset",
            Arc::new(Subset::by_index(set.clone(), 3).with_size(5)),
        ),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let pickers: Vec<_> = balancers
        .iter()
        .map(|(name, b)| {
            let (name, b, stop, errors) =
                (*name, Arc::clone(b), Arc::clone(&stop), Arc::clone(&errors));
            std::thread::spawn(move || {
                let (mut newest, mut picks, mut key) = (0, 0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    key = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    let (g, i) = b
                        .pick_with(&PickContext::new().with_hash(key))
                        .expect("never empty")
                        .service;
                    picks += 1;
                    let wrong_zone = name == "zone_aware" && i % 2 != 0;
                    if i >= members(g) || g < newest || wrong_zone {
                        errors.lock().unwrap().push(format!(
                            "{name}: picked ({g}, {i}) after generation {newest}"
                        ));
                    }
                    newest = newest.max(g);
                }
                picks
            })
        })
        .collect();
    let last = 200;
    for g in 1..=last {
        cache.update(generation(g));
        std::thread::yield_now();
    }
    // The endpointer catches up with the last generation; then every balancer picks from it.
    generations::wait_for_generation(&set, last);
    for (name, b) in &balancers {
        assert_eq!(b.pick().unwrap().0, last, "{name}");
    }
    stop.store(true, Ordering::Relaxed);
    let picks: Vec<u64> = pickers.into_iter().map(|p| p.join().unwrap()).collect();
    generations::assert_no_errors(&errors);
    assert!(picks.iter().all(|&p| p > 0), "picks per thread: {picks:?}");
    drop(endpointer);
}
