//! Pick cost (round-robin, random) over 3, 100 and 10 000 endpoints, and per-request cost of
//! sdkit's round-robin pick-and-call next to `tower::balance::p2c::Balance` with
//! `PendingRequests` over the same endpoints, in the same run.
//!
//! `cargo bench -p sdkit-core --bench pick`

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sdkit_core::lb::{Balancer, Random, RoundRobin};
use sdkit_core::{BalancedService, EndpointSet, Instance};
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PendingRequests};
use tower::{Service, ServiceExt};

/// An endpoint as cheap as a real client handle: cloning bumps one reference count (the
/// count lives in the endpoint's own allocation, as with a hyper client or a tonic channel).
#[derive(Clone)]
struct Echo {
    id: Arc<str>,
}

/// An endpoint whose clone costs nothing, to isolate the balancer's own cost.
#[derive(Clone, Copy)]
struct Id(#[allow(dead_code)] u32);

impl Service<u64> for Echo {
    type Response = u64;
    type Error = Infallible;
    type Future = Ready<Result<u64, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        ready(Ok(req + self.id.len() as u64))
    }
}

const SIZES: [usize; 3] = [3, 100, 10_000];

fn endpoints(n: usize) -> Vec<(Instance, Echo)> {
    (0..n)
        .map(|i| {
            let addr = format!("10.{}.{}.{}:8080", i / 65536, (i / 256) % 256, i % 256);
            (
                Instance::from_addr(addr.clone()),
                Echo {
                    id: Arc::from(addr),
                },
            )
        })
        .collect()
}

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for n in SIZES {
        let ids = EndpointSet::fixed(
            endpoints(n)
                .into_iter()
                .enumerate()
                .map(|(i, (instance, _))| (instance, Id(i as u32))),
        );
        let rr = RoundRobin::new(ids.clone());
        group.bench_with_input(BenchmarkId::new("round_robin", n), &n, |b, _| {
            b.iter(|| black_box(rr.pick()))
        });
        let random = Random::with_seed(ids, 1);
        group.bench_with_input(BenchmarkId::new("random", n), &n, |b, _| {
            b.iter(|| black_box(random.pick()))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("pick_refcounted_endpoint");
    for n in SIZES {
        let set = EndpointSet::fixed(endpoints(n));
        let rr = RoundRobin::new(set.clone());
        group.bench_with_input(BenchmarkId::new("round_robin", n), &n, |b, _| {
            b.iter(|| black_box(rr.pick()))
        });
        let random = Random::with_seed(set, 1);
        group.bench_with_input(BenchmarkId::new("random", n), &n, |b, _| {
            b.iter(|| black_box(random.pick()))
        });
    }
    group.finish();
}

fn pick_and_call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("pick_and_call");
    for n in SIZES {
        let mut sdkit = BalancedService::new(RoundRobin::new(EndpointSet::fixed(endpoints(n))));
        group.bench_with_input(BenchmarkId::new("sdkit_round_robin", n), &n, |b, _| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let ready = sdkit.ready().await.expect("ready");
                        black_box(ready.call(1).await.expect("call"));
                    }
                    start.elapsed()
                })
            })
        });

        let services: Vec<_> = endpoints(n)
            .into_iter()
            .map(|(_, echo)| PendingRequests::new(echo, CompleteOnResponse::default()))
            .collect();
        let mut p2c = Balance::new(ServiceList::new(services));
        group.bench_with_input(
            BenchmarkId::new("tower_p2c_pending_requests", n),
            &n,
            |b, _| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = Instant::now();
                        for _ in 0..iters {
                            let ready = p2c.ready().await.expect("ready");
                            black_box(ready.call(1).await.expect("call"));
                        }
                        start.elapsed()
                    })
                })
            },
        );
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! { name = benches; config = config(); targets = pick, pick_and_call }
criterion_main!(benches);
