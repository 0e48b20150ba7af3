//! Endpointer update cost: a new snapshot with 1 % churn published through the cache until the
//! endpointer has published its new endpoint set, for 10 000 and 100 000 instances.
//!
//! `cargo bench -p sdkit-core --bench endpointer`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sdkit_core::{BoxError, Endpointer, Instance, InstanceCache};

fn inst(n: usize) -> Instance {
    Instance::new(
        format!("web-{n:07}"),
        format!("10.{}.{}.{}:8080", n / 65536, (n / 256) % 256, n % 256),
    )
    .with_zone("sh001")
    .with_meta("version", "1.4.2")
}

fn update(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("endpointer_update_1pct_churn");
    group.sample_size(30);
    for n in [10_000usize, 100_000] {
        let churn = n / 100;
        // Two sets that differ by 1 %: the first `churn` instances swapped for new ones.
        let a: Vec<Instance> = (0..n).map(inst).collect();
        let b: Vec<Instance> = (churn..n + churn).map(inst).collect();
        let source = InstanceCache::new();
        source.update(a.clone());
        let endpointer = rt.block_on(async {
            let e = Endpointer::new(&source, |i: &Instance| {
                Ok::<_, BoxError>(Arc::<str>::from(i.addr()))
            });
            e.ready(Duration::from_secs(60))
                .await
                .expect("first snapshot");
            e
        });
        let set = endpointer.endpoint_set();
        let mut flip = false;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |bench, _| {
            bench.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    flip = !flip;
                    let next = if flip { b.clone() } else { a.clone() };
                    let version = set.version();
                    total += rt.block_on(async {
                        let start = Instant::now();
                        source.update(next);
                        while set.version() == version {
                            tokio::task::yield_now().await;
                        }
                        start.elapsed()
                    });
                }
                total
            })
        });
        drop(endpointer);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    targets = update
}
criterion_main!(benches);
