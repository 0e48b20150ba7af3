//! Benchmarks of the embedded discovery server over real HTTP on loopback.
//!
//! * `renew/discovery` vs `renew/bare-hyper`: renew throughput over 64 keep-alive HTTP/1.1
//!   connections, against hyper answering a fixed 200 in the same run;
//! * 100 900 instances across 1 000 apps: the server's resident memory, and `fetch` of a
//!   1 000-instance app (criterion mean, plus p50/p99 over 2 000 sequential requests);
//! * 10 000 parked polls woken by one register: time until the last one is answered;
//! * register → parked poll answered: p50/p99 over 1 000 rounds.
//!
//! The server runs in a child process (see `support`). Run with
//! `cargo bench -p sdkit-discovery-server --bench server`; `SDKIT_BENCH_ONLY=renew,registry,
//! wake,latency` selects a subset.

mod support;

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;
use tokio::sync::Mutex;

const CONNECTIONS: usize = 64;

fn main() {
    if let Ok(kind) = std::env::var(CHILD_ENV) {
        child_main(&kind);
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut c = Criterion::default().configure_from_args();
    // SDKIT_BENCH_ONLY=renew,registry,wake,latency runs a subset (default: all).
    let only = std::env::var("SDKIT_BENCH_ONLY").unwrap_or_default();
    let run = |name: &str| only.is_empty() || only.split(',').any(|o| o.trim() == name);
    if run("renew") {
        renew_throughput(&mut c, &rt);
    }
    if run("registry") {
        large_registry(&mut c, &rt);
    }
    if run("wake") {
        wake_many_parked(&rt);
    }
    if run("latency") {
        register_to_poll_latency(&rt);
    }
    c.final_summary();
}

/// Runs `per_conn` requests on each connection concurrently; returns the elapsed time.
async fn drive(
    conns: &[Arc<Mutex<hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>>>],
    bodies: &[Bytes],
    addr: std::net::SocketAddr,
    per_conn: u64,
) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = conns
        .iter()
        .zip(bodies)
        .map(|(conn, body)| {
            let (conn, body) = (Arc::clone(conn), body.clone());
            tokio::spawn(async move {
                let mut sender = conn.lock().await;
                for _ in 0..per_conn {
                    send(&mut sender, post(addr, "/discovery/renew", body.clone())).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("load task");
    }
    start.elapsed()
}

fn renew_throughput(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let mut group = c.benchmark_group("renew-64-connections");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for kind in ["bare-hyper", "discovery"] {
        let child = Child::spawn(if kind == "bare-hyper" {
            "bare"
        } else {
            "discovery"
        });
        let addr = child.addr;
        let (conns, bodies) = rt.block_on(async {
            let mut conns = Vec::new();
            let mut bodies = Vec::new();
            for i in 0..CONNECTIONS {
                let mut sender = connect(addr).await;
                send(
                    &mut sender,
                    post(
                        addr,
                        "/discovery/register",
                        register_form("bench.renew", &format!("host-{i}")),
                    ),
                )
                .await;
                conns.push(Arc::new(Mutex::new(sender)));
                bodies.push(Bytes::from(format!(
                    "zone=z1&env=bench&appid=bench.renew&hostname=host-{i}"
                )));
            }
            (conns, bodies)
        });
        group.bench_function(kind, |b| {
            b.to_async(rt).iter_custom(|iters| {
                let (conns, bodies) = (conns.clone(), bodies.clone());
                async move {
                    let per_conn = iters.div_ceil(CONNECTIONS as u64).max(1);
                    let elapsed = drive(&conns, &bodies, addr, per_conn).await;
                    elapsed.mul_f64(iters as f64 / (per_conn * CONNECTIONS as u64) as f64)
                }
            })
        });
        drop(child);
    }
    group.finish();
}

fn large_registry(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let mut child = Child::spawn("discovery-wide");
    let addr = child.addr;
    let rss_before = child.rss_bytes();
    let started = Instant::now();
    rt.block_on(async {
        // 999 apps × 100 instances + 1 app × 1 000 instances = 100 900 instances, 1 000 apps.
        let mut jobs: Vec<(String, String)> = Vec::new();
        for app in 0..1000 {
            let n = if app == 0 { 1000 } else { 100 };
            for host in 0..n {
                jobs.push((
                    format!("bench.app-{app:04}"),
                    format!("host-{app:04}-{host:04}.example.internal"),
                ));
            }
        }
        let jobs = Arc::new(std::sync::Mutex::new(jobs));
        let tasks: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                let jobs = Arc::clone(&jobs);
                tokio::spawn(async move {
                    let mut sender = connect(addr).await;
                    loop {
                        let job = jobs.lock().expect("jobs").pop();
                        let Some((app, host)) = job else { break };
                        send(
                            &mut sender,
                            post(addr, "/discovery/register", register_form(&app, &host)),
                        )
                        .await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("register task");
        }
    });
    let (_, instances) = child.stats();
    let rss_after = child.rss_bytes();
    println!(
        "report: registry {instances} instances in 1000 apps (+ infra.discovery) registered in {:.1?}; \
         server RSS {:.1} MB (before {:.1} MB, delta {:.1} MB) [target ≤ 200 MB]",
        started.elapsed(),
        rss_after as f64 / 1e6,
        rss_before as f64 / 1e6,
        (rss_after - rss_before) as f64 / 1e6
    );
    let path = "/discovery/fetch?env=bench&appid=bench.app-0000&status=1";
    let mut sender = rt.block_on(connect(addr));
    let mut samples = Vec::with_capacity(2000);
    let mut size = 0;
    rt.block_on(async {
        for _ in 0..200 {
            send(&mut sender, get(addr, path)).await;
        }
        for _ in 0..2000 {
            let t = Instant::now();
            let body = send(&mut sender, get(addr, path)).await;
            samples.push(t.elapsed());
            size = body.len();
        }
    });
    let p50 = quantile(&mut samples, 0.50);
    let p99 = quantile(&mut samples, 0.99);
    println!(
        "report: fetch of a 1000-instance app ({size} bytes): p50 {p50:.2?}, p99 {p99:.2?} [target p99 ≤ 2 ms]"
    );
    let sender = Arc::new(Mutex::new(sender));
    c.bench_function("fetch-1000-instance-app", |b| {
        b.to_async(rt).iter(|| {
            let sender = Arc::clone(&sender);
            async move { send(&mut *sender.lock().await, get(addr, path)).await }
        })
    });
    // Serialised answers are kept per app until it changes: the memory worst case is every
    // app fetched once.
    rt.block_on(async {
        let mut sender = sender.lock().await;
        for app in 0..1000 {
            let path = format!("/discovery/fetch?env=bench&appid=bench.app-{app:04}&status=1");
            send(&mut sender, get(addr, &path)).await;
        }
    });
    println!(
        "report: server RSS after fetching every app once: {:.1} MB [target ≤ 200 MB]",
        child.rss_bytes() as f64 / 1e6
    );
}

fn wake_many_parked(rt: &tokio::runtime::Runtime) {
    const POLLS: usize = 10_000;
    const ROUNDS: usize = 5;
    let mut child = Child::spawn("discovery-wide");
    let addr = child.addr;
    let appid = "bench.wake";
    let body = rt.block_on(async {
        let mut reg = connect(addr).await;
        send(
            &mut reg,
            post(addr, "/discovery/register", register_form(appid, "h-0")),
        )
        .await;
        send(
            &mut reg,
            get(
                addr,
                &format!("/discovery/fetch?env=bench&appid={appid}&status=1"),
            ),
        )
        .await
    });
    let mut cursor = cursor_of(&body, None);
    // One connection per poller, opened by the poller itself (bounded connect concurrency
    // so the accept backlog does not overflow) and kept across rounds.
    let connecting = Arc::new(tokio::sync::Semaphore::new(256));
    let conns: Vec<_> = (0..POLLS).map(|_| Arc::new(Mutex::new(None))).collect();
    let mut worst = Duration::ZERO;
    for round in 0..ROUNDS {
        let tasks: Vec<_> = conns
            .iter()
            .enumerate()
            .map(|(i, slot)| {
                let (slot, connecting) = (Arc::clone(slot), Arc::clone(&connecting));
                let url = format!("/discovery/polls?env=bench&hostname=w{i}&appid={appid}&latest_timestamp={cursor}");
                rt.spawn(async move {
                    let mut slot = slot.lock().await;
                    if slot.is_none() {
                        let _permit = connecting.acquire().await.expect("semaphore");
                        *slot = Some(RawConn::connect(addr).await);
                    }
                    let conn = slot.as_mut().expect("connected");
                    let body = conn.get(&url).await;
                    (Instant::now(), body)
                })
            })
            .collect();
        child.wait_parked(POLLS);
        let mut reg = rt.block_on(connect(addr));
        let cpu0 = child.cpu_time();
        let gen0 = own_cpu_time();
        let t0 = Instant::now();
        rt.block_on(send(
            &mut reg,
            post(
                addr,
                "/discovery/register",
                register_form(appid, &format!("h-{}", round + 1)),
            ),
        ));
        let mut latencies = Vec::with_capacity(POLLS);
        let mut last_body = Bytes::new();
        rt.block_on(async {
            for t in tasks {
                let (at, body) = t.await.expect("poll task");
                latencies.push(at.duration_since(t0));
                last_body = body;
            }
        });
        let cpu1 = child.cpu_time();
        let gen1 = own_cpu_time();
        let (user, system) = (cpu1.0.saturating_sub(cpu0.0), cpu1.1.saturating_sub(cpu0.1));
        let (gen_user, gen_system) = (gen1.0.saturating_sub(gen0.0), gen1.1.saturating_sub(gen0.1));
        cursor = cursor_of(&last_body, Some(appid));
        let last = *latencies.iter().max().expect("latencies");
        let p99 = quantile(&mut latencies, 0.99);
        worst = worst.max(last);
        println!(
            "report: round {round}: {POLLS} parked polls answered, last after {last:.1?} \
             (p99 {p99:.1?}); server CPU during the round: user {user:.0?}, system {system:.0?}; \
             load generator CPU: user {gen_user:.0?}, system {gen_system:.0?}"
        );
    }
    println!(
        "report: 10000 parked polls woken by one register: worst round {worst:.1?} [target ≤ 250 ms]"
    );
}

fn register_to_poll_latency(rt: &tokio::runtime::Runtime) {
    const ROUNDS: usize = 1000;
    let mut child = Child::spawn("discovery-wide");
    let addr = child.addr;
    let appid = "bench.latency";
    let mut reg = rt.block_on(connect(addr));
    rt.block_on(send(
        &mut reg,
        post(addr, "/discovery/register", register_form(appid, "h")),
    ));
    let body = rt.block_on(send(
        &mut reg,
        get(
            addr,
            &format!("/discovery/fetch?env=bench&appid={appid}&status=1"),
        ),
    ));
    let mut cursor = cursor_of(&body, None);
    let poller = Arc::new(Mutex::new(rt.block_on(connect(addr))));
    let form = register_form(appid, "h");
    let mut samples = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let url = format!(
            "/discovery/polls?env=bench&hostname=w&appid={appid}&latest_timestamp={cursor}"
        );
        let p = Arc::clone(&poller);
        let task = rt.spawn(async move {
            let body = send(&mut *p.lock().await, get(addr, &url)).await;
            (Instant::now(), body)
        });
        child.wait_parked(1);
        let t0 = Instant::now();
        let (at, body) = rt.block_on(async {
            let (_, answered) = tokio::join!(
                send(&mut reg, post(addr, "/discovery/register", form.clone())),
                task
            );
            answered.expect("poll task")
        });
        samples.push(at.duration_since(t0));
        cursor = cursor_of(&body, Some(appid));
    }
    let p50 = quantile(&mut samples, 0.50);
    let p99 = quantile(&mut samples, 0.99);
    println!(
        "report: register → parked poll answered ({ROUNDS} rounds): p50 {p50:.2?}, p99 {p99:.2?} [target p99 ≤ 5 ms]"
    );
}
