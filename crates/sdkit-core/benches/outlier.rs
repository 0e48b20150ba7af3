//! What outlier tracking costs, next to plain round-robin, in the same run.
//!
//! * `round_robin/pick`: the plain pick (no detector), the baseline;
//! * `outlier/pick`: the same pick over a set with a detector attached;
//! * `outlier/pick_one_ejected`: one endpoint ejected, so the readiness filter runs;
//! * `round_robin/pick_with_guard`: pick with a context and end the (detached) guard;
//! * `outlier/pick_with_guard`: the same with a detector attached — the guard now reports the
//!   outcome to the endpoint's counters (the per-call cost of outlier tracking).
//!
//! `cargo bench -p sdkit-core --bench outlier`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sdkit_core::lb::outlier::{OutlierConfig, OutlierDetector};
use sdkit_core::lb::{Balancer, FailureClass, Outcome, PickContext, RoundRobin};
use sdkit_core::{EndpointSet, Instance};

const SIZES: [usize; 2] = [5, 100];

fn set(n: usize) -> EndpointSet<u32> {
    EndpointSet::fixed((0..n).map(|i| {
        (
            Instance::new(
                format!("i{i:05}"),
                format!("10.0.{}.{}:80", i / 256, i % 256),
            ),
            i as u32,
        )
    }))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _entered = rt.enter();
    let mut group = c.benchmark_group("outlier_pick");
    for n in SIZES {
        let plain = RoundRobin::new(set(n));
        group.bench_with_input(BenchmarkId::new("round_robin/pick", n), &n, |b, _| {
            b.iter(|| black_box(plain.pick()))
        });
        group.bench_with_input(
            BenchmarkId::new("round_robin/pick_with_guard", n),
            &n,
            |b, _| {
                b.iter(|| {
                    let picked = plain.pick_with(&PickContext::new()).expect("pick");
                    picked.guard.success();
                    black_box(picked.service)
                })
            },
        );

        let tracked_set = set(n);
        let detector = OutlierDetector::spawn(&tracked_set, OutlierConfig::default());
        let tracked = RoundRobin::new(tracked_set.clone());
        group.bench_with_input(BenchmarkId::new("outlier/pick", n), &n, |b, _| {
            b.iter(|| black_box(tracked.pick()))
        });
        group.bench_with_input(
            BenchmarkId::new("outlier/pick_with_guard", n),
            &n,
            |b, _| {
                b.iter(|| {
                    let picked = tracked.pick_with(&PickContext::new()).expect("pick");
                    picked.guard.success();
                    black_box(picked.service)
                })
            },
        );

        // Eject one endpoint: five failures in a row.
        let victim = tracked_set.load().get(0).expect("endpoint").state().clone();
        for _ in 0..5 {
            victim.record(
                Outcome::Failure(FailureClass::ConnectFailed),
                std::time::Duration::ZERO,
            );
        }
        assert!(victim.is_ejected());
        group.bench_with_input(
            BenchmarkId::new("outlier/pick_one_ejected", n),
            &n,
            |b, _| b.iter(|| black_box(tracked.pick())),
        );
        // Returns the ejected endpoint: the next sizes start with every endpoint ready.
        drop(detector);
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
