//! Fan-out: one distinct snapshot published to 1 000 subscribers, until every subscriber has
//! received it.
//!
//! `cargo bench -p sdkit-core --bench fanout`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sdkit_core::{Instance, InstanceCache};

const SUBSCRIBERS: u64 = 1_000;

fn fanout(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cache = InstanceCache::new();
    let received = Arc::new(AtomicU64::new(0));
    let sets: Vec<Vec<Instance>> = (0..2)
        .map(|v| {
            (0..10)
                .map(|i| Instance::from_addr(format!("10.0.{v}.{i}:80")))
                .collect()
        })
        .collect();
    cache.update(sets[0].clone());
    rt.block_on(async {
        for _ in 0..SUBSCRIBERS {
            let mut sub = cache.subscribe();
            let received = received.clone();
            tokio::spawn(async move {
                while let Some(snapshot) = sub.next().await {
                    std::hint::black_box(snapshot.len());
                    received.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // Every subscriber has seen the initial state.
        while received.load(Ordering::Relaxed) < SUBSCRIBERS {
            tokio::task::yield_now().await;
        }
    });
    let mut flip = 0usize;
    c.bench_function("publish_to_1000_subscribers", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                flip ^= 1;
                let next = sets[flip].clone();
                let target = received.load(Ordering::Relaxed) + SUBSCRIBERS;
                total += rt.block_on(async {
                    let start = Instant::now();
                    assert!(cache.update(next));
                    while received.load(Ordering::Relaxed) < target {
                        tokio::task::yield_now().await;
                    }
                    start.elapsed()
                });
            }
            total
        })
    });
    cache.close();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = fanout
}
criterion_main!(benches);
