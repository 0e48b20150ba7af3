//! What metrics add to a pick: round-robin bare, wrapped in `Metered` without a recorder
//! (no-op handles), and wrapped in `Metered` with a recorder whose counters are atomics (the
//! representation Prometheus exporters use), in the same run. Also `pick_with`, the path
//! `Retry` and `BalancedService` take.
//!
//! `cargo bench -p sdkit-core --bench metrics -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use criterion::{Criterion, criterion_group, criterion_main};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use sdkit_core::lb::{Balancer, Metered, PickContext, RoundRobin};
use sdkit_core::{EndpointSet, Instance};

/// Counters are atomics; gauges and histograms are not on the pick path.
struct Atomics;

impl Recorder for Atomics {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(AtomicU64::new(0)))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

fn set() -> EndpointSet<u32> {
    EndpointSet::fixed((0..16u32).map(|i| (Instance::from_addr(format!("10.0.0.{i}:80")), i)))
}

fn bench(c: &mut Criterion) {
    let set = set();
    let bare = RoundRobin::new(set.clone());
    let off = Metered::new(RoundRobin::new(set.clone()), &set, "round_robin");
    let on = metrics::with_local_recorder(&Atomics, || {
        Metered::new(RoundRobin::new(set.clone()), &set, "round_robin")
    });
    let mut g = c.benchmark_group("metrics/pick");
    g.bench_function("round_robin", |b| b.iter(|| black_box(bare.pick())));
    g.bench_function("metered_no_recorder", |b| b.iter(|| black_box(off.pick())));
    g.bench_function("metered_recorder", |b| b.iter(|| black_box(on.pick())));
    g.finish();

    let cx = PickContext::new();
    let mut g = c.benchmark_group("metrics/pick_with");
    g.bench_function("round_robin", |b| b.iter(|| black_box(bare.pick_with(&cx))));
    g.bench_function("metered_no_recorder", |b| {
        b.iter(|| black_box(off.pick_with(&cx)))
    });
    g.bench_function("metered_recorder", |b| {
        b.iter(|| black_box(on.pick_with(&cx)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
