//! The pick path, one run, 3 / 100 / 10 000 endpoints:
//!
//! * `pick`: the floor (round-robin over a plain `Vec` with one shared atomic counter and no
//!   snapshot, go-kit's `FixedEndpointer`) beside every sdkit balancer over a live
//!   `EndpointSet`, with endpoints whose clone costs nothing (`pick`) or one reference count
//!   (`pick_refcounted_endpoint`); `*_cached` rows pick through a caller-owned `PickCache`;
//! * `pick_2_threads`: the same picks from two threads at once (time per pick per thread),
//!   beside the same loop with one thread picking (`*_one_thread`);
//! * `pick_and_call`: pick + a trivial call, direct and through `BalancedService`'s
//!   `ready`/`call`, beside `tower::balance::p2c` over `PendingRequests` and `PeakEwma`;
//!   `floor_vec_atomic_service` is the floor behind the same `ready`/`call` (a `Service` whose
//!   call picks and returns the endpoint's own future).
//!
//! `cargo bench -p sdkit-core --bench pick`

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sdkit_core::lb::{
    Balancer, Load, P2c, PickCache, PickContext, Random, RoundRobin, WeightedRandom,
    WeightedRoundRobin,
};
use sdkit_core::{BalancedService, EndpointSet, Instance, NoEndpoints};
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwma, PendingRequests};
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

/// Endpoints with weights 1..=5 (the unweighted balancers ignore them).
fn endpoints(n: usize) -> Vec<(Instance, Echo)> {
    (0..n)
        .map(|i| {
            let addr = format!("10.{}.{}.{}:8080", i / 65536, (i / 256) % 256, i % 256);
            (
                Instance::from_addr(addr.clone()).with_weight(1 + (i % 5) as u32),
                Echo {
                    id: Arc::from(addr),
                },
            )
        })
        .collect()
}

/// The floor: a plain slice and one shared atomic counter, reduced as sdkit reduces it
/// (Lemire's fastmod), no snapshot, no readiness.
struct Floor<S> {
    items: Vec<S>,
    magic: u64,
    next: AtomicU32,
}

impl<S: Clone> Floor<S> {
    fn new(items: Vec<S>) -> Self {
        let len = items.len().max(1) as u64;
        Floor {
            items,
            magic: (u64::MAX / len).wrapping_add(1),
            next: AtomicU32::new(0),
        }
    }

    #[inline]
    fn pick(&self) -> S {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let low = self.magic.wrapping_mul(u64::from(n));
        let i = ((u128::from(low) * self.items.len() as u128) >> 64) as usize;
        self.items[i].clone()
    }
}

/// Keeps a pick's service from being optimised away, as the floor's rows keep theirs: the
/// service alone goes through `black_box`, not the `Result` around it (a `Result<u32, _>`
/// written as two 4-byte halves and read back whole by `black_box` stalls on store forwarding,
/// a cost of the benchmark, not of the pick).
#[inline]
fn keep<S>(picked: Result<S, NoEndpoints>) {
    if let Ok(service) = picked {
        black_box(service);
    }
}

/// The floor as a `Service`: `call` picks and calls the endpoint, returning its own future.
struct FloorService(Floor<Echo>);

impl Service<u64> for FloorService {
    type Response = u64;
    type Error = Infallible;
    type Future = Ready<Result<u64, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        self.0.pick().call(req)
    }
}

/// Runs `$body` once per sdkit balancer (concrete types, as callers hold them), with `$name`
/// and `$b` bound; `$take` limits the list to the first few.
macro_rules! each_balancer {
    ($set:expr, $take:expr, |$name:ident, $b:ident| $body:block) => {{
        let take: usize = $take;
        if take > 0 {
            let $name = "round_robin";
            let $b = RoundRobin::new($set.clone());
            $body
        }
        if take > 1 {
            let $name = "random";
            let $b = Random::with_seed($set.clone(), 1);
            $body
        }
        if take > 2 {
            let $name = "weighted_round_robin";
            let $b = WeightedRoundRobin::new($set.clone());
            $body
        }
        if take > 3 {
            let $name = "weighted_random";
            let $b = WeightedRandom::with_seed($set.clone(), 1);
            $body
        }
        if take > 4 {
            let $name = "p2c";
            let $b = P2c::with_seed($set.clone(), Load::InFlight, 1);
            $body
        }
        if take > 5 {
            let $name = "p2c_peak_ewma";
            let $b = P2c::with_seed($set.clone(), Load::PEAK_EWMA, 1);
            $body
        }
    }};
}

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for n in SIZES {
        let list: Vec<(Instance, Id)> = endpoints(n)
            .into_iter()
            .enumerate()
            .map(|(i, (instance, _))| (instance, Id(i as u32)))
            .collect();
        let floor = Floor::new(list.iter().map(|(_, id)| *id).collect());
        group.bench_with_input(BenchmarkId::new("floor_vec_atomic", n), &n, |b, _| {
            b.iter(|| black_box(floor.pick()))
        });
        let ids = EndpointSet::fixed(list);
        each_balancer!(ids, 6, |name, balancer| {
            // Feedback balancers: pick and end the guard (what a call does).
            let feedback = name.starts_with("p2c");
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                if feedback {
                    b.iter(|| {
                        let picked = balancer.pick_with(&PickContext::new()).unwrap();
                        picked.guard.success();
                        black_box(picked.service)
                    })
                } else {
                    b.iter(|| keep(balancer.pick()))
                }
            });
        });
        each_balancer!(ids, 2, |name, balancer| {
            let mut cache = PickCache::new();
            group.bench_with_input(BenchmarkId::new(format!("{name}_cached"), n), &n, |b, _| {
                b.iter(|| keep(balancer.pick_cached(&mut cache)))
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("pick_refcounted_endpoint");
    for n in SIZES {
        let floor = Floor::new(endpoints(n).into_iter().map(|(_, e)| e).collect());
        group.bench_with_input(BenchmarkId::new("floor_vec_atomic", n), &n, |b, _| {
            b.iter(|| black_box(floor.pick()))
        });
        let set = EndpointSet::fixed(endpoints(n));
        each_balancer!(set, 4, |name, balancer| {
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| keep(balancer.pick()))
            });
        });
        each_balancer!(set, 2, |name, balancer| {
            let mut cache = PickCache::new();
            group.bench_with_input(BenchmarkId::new(format!("{name}_cached"), n), &n, |b, _| {
                b.iter(|| keep(balancer.pick_cached(&mut cache)))
            });
        });
    }
    group.finish();
}

/// Times `pick` on two threads at once: each thread calls its own copy (a closure of references
/// is `Copy`): a closure shared by reference would live on this thread's stack, beside the
/// locals this thread writes on every iteration, and the other thread's read of it on every
/// call would share those lines (false sharing of the benchmark's own making: it doubled the
/// cost of the cheapest picks).
fn two_threads<F: Fn() + Copy + Send>(b: &mut criterion::Bencher<'_>, pick: F) {
    two_threads_each(b, pick, pick);
}

/// Signals between the measuring thread and its partner, each on a cache-line pair of its own.
#[derive(Default)]
#[repr(align(128))]
struct Signal(AtomicU64);

/// Times `mine` on this thread while a partner thread runs `theirs` as many times; each sample
/// is the wall time until both are done.
///
/// The partner is started once per row and spins between samples, so a sample starts both
/// loops within a cache-line transfer of each other. (A thread spawned, or woken from a futex,
/// per sample starts tens of microseconds late on a VM: the measuring thread then waits for it
/// at the end, and two loops that share nothing at all came out 1.2–1.5× one loop.)
fn two_threads_each<F: Fn(), G: Fn() + Send>(b: &mut criterion::Bencher<'_>, mine: F, theirs: G) {
    // `go`: the partner's iteration count for round `round` (0: stop); `done`: the last round
    // it finished.
    let (round, go, done) = (Signal::default(), Signal::default(), Signal::default());
    let (round_ref, go_ref, done_ref) = (&round, &go, &done);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let (round, go, done) = (round_ref, go_ref, done_ref);
            let mut seen = 0;
            loop {
                let next = loop {
                    let r = round.0.load(Ordering::Acquire);
                    if r != seen {
                        break r;
                    }
                    std::hint::spin_loop();
                };
                seen = next;
                let iters = go.0.load(Ordering::Acquire);
                if iters == 0 {
                    return;
                }
                for _ in 0..iters {
                    theirs();
                }
                done.0.store(next, Ordering::Release);
            }
        });
        let mut current = 0;
        b.iter_custom(|iters| {
            current += 1;
            go.0.store(iters, Ordering::Release);
            round.0.store(current, Ordering::Release);
            let start = Instant::now();
            for _ in 0..iters {
                mine();
            }
            while done.0.load(Ordering::Acquire) != current {
                std::hint::spin_loop();
            }
            start.elapsed()
        });
        go.0.store(0, Ordering::Release);
        round.0.store(current + 1, Ordering::Release);
    });
}

fn pick_2_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick_2_threads");
    for n in SIZES {
        let list: Vec<(Instance, Id)> = endpoints(n)
            .into_iter()
            .enumerate()
            .map(|(i, (instance, _))| (instance, Id(i as u32)))
            .collect();
        let floor = Floor::new(list.iter().map(|(_, id)| *id).collect());
        group.bench_with_input(BenchmarkId::new("floor_vec_atomic", n), &n, |b, _| {
            two_threads(b, || {
                black_box(floor.pick());
            })
        });
        let ids = EndpointSet::fixed(list);
        // The machine's own share of a two-thread figure: two round-robin balancers over the
        // same set, one per thread, share nothing but the snapshot (read only). On a VM whose
        // vCPUs share physical cores with other guests, this row moves from run to run as much
        // as the balancer rows do; read those against it, in the same run.
        {
            let (a, b) = (
                Box::new(RoundRobin::new(ids.clone())),
                Box::new(RoundRobin::new(ids.clone())),
            );
            let (a, b) = (&*a, &*b);
            group.bench_with_input(
                BenchmarkId::new("round_robin_one_balancer_per_thread", n),
                &n,
                |bench, _| two_threads_each(bench, move || keep(a.pick()), move || keep(b.pick())),
            );
        }
        each_balancer!(ids, 4, |name, balancer| {
            // On the heap, as a balancer shared by threads is (in an `Arc`): on this thread's
            // stack it would share cache lines with the values this thread's loop writes
            // there, and the other thread's reads of it would miss on every pick.
            let heap = Box::new(balancer);
            let balancer = &*heap;
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                two_threads(b, move || {
                    keep(balancer.pick());
                })
            });
            // The yardstick of the two-thread rows: the same measuring loop (the same code,
            // the same partner thread) with the partner idle, so one thread picks. (A loop of
            // its own compiled differently: 3.0 ns where `pick/round_robin` and this row take
            // 4.6 ns on one thread.)
            group.bench_with_input(
                BenchmarkId::new(format!("{name}_one_thread"), n),
                &n,
                |b, _| {
                    two_threads_each(
                        b,
                        move || {
                            keep(balancer.pick());
                        },
                        || {},
                    )
                },
            );
        });
    }
    group.finish();
}

/// Times `iters` calls of `service` through `ready`/`call` (what a tower caller does).
fn through_ready_call<T>(
    rt: &tokio::runtime::Runtime,
    b: &mut criterion::Bencher<'_>,
    service: &mut T,
) where
    T: Service<u64>,
    T::Error: std::fmt::Debug,
{
    b.iter_custom(|iters| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                let ready = service.ready().await.expect("ready");
                black_box(ready.call(1).await.expect("call"));
            }
            start.elapsed()
        })
    })
}

fn pick_and_call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("pick_and_call");
    let through = |b: &mut criterion::Bencher<'_>, service: &mut dyn FnMut() -> Option<u64>| {
        b.iter(|| black_box(service()))
    };
    for n in SIZES {
        let floor = Floor::new(endpoints(n).into_iter().map(|(_, e)| e).collect());
        let set = EndpointSet::fixed(endpoints(n));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        // Direct: pick, then call the endpoint (its future is ready at once).
        group.bench_with_input(BenchmarkId::new("floor_vec_atomic", n), &n, |b, _| {
            through(b, &mut || {
                let mut e = floor.pick();
                match std::pin::pin!(e.call(1)).poll(&mut cx) {
                    Poll::Ready(Ok(v)) => Some(v),
                    _ => None,
                }
            })
        });
        each_balancer!(set, 2, |name, balancer| {
            group.bench_with_input(BenchmarkId::new(format!("{name}_direct"), n), &n, |b, _| {
                through(b, &mut || {
                    let mut e = balancer.pick().ok()?;
                    match std::pin::pin!(e.call(1)).poll(&mut cx) {
                        Poll::Ready(Ok(v)) => Some(v),
                        _ => None,
                    }
                })
            });
        });
        // The floor behind the same `ready`/`call`.
        let mut floor_service = FloorService(Floor::new(
            endpoints(n).into_iter().map(|(_, e)| e).collect(),
        ));
        group.bench_with_input(
            BenchmarkId::new("floor_vec_atomic_service", n),
            &n,
            |b, _| through_ready_call(&rt, b, &mut floor_service),
        );
        // Through `ready`/`call` of the BalancedService (every balancer).
        each_balancer!(set, 6, |name, balancer| {
            let mut service = BalancedService::new(balancer);
            group.bench_with_input(
                BenchmarkId::new(format!("{name}_service"), n),
                &n,
                |b, _| through_ready_call(&rt, b, &mut service),
            );
        });

        let pending: Vec<_> = endpoints(n)
            .into_iter()
            .map(|(_, echo)| PendingRequests::new(echo, CompleteOnResponse::default()))
            .collect();
        let mut tower_pending = Balance::new(ServiceList::new(pending));
        group.bench_with_input(
            BenchmarkId::new("tower_p2c_pending_requests", n),
            &n,
            |b, _| through_ready_call(&rt, b, &mut tower_pending),
        );
        let ewma: Vec<_> = endpoints(n)
            .into_iter()
            .map(|(_, echo)| {
                PeakEwma::new(
                    echo,
                    Duration::from_millis(30),
                    10e9,
                    CompleteOnResponse::default(),
                )
            })
            .collect();
        let mut tower_ewma = Balance::new(ServiceList::new(ewma));
        group.bench_with_input(BenchmarkId::new("tower_p2c_peak_ewma", n), &n, |b, _| {
            through_ready_call(&rt, b, &mut tower_ewma)
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! { name = benches; config = config(); targets = pick, pick_2_threads, pick_and_call }
criterion_main!(benches);
