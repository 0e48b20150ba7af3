//! Register → parked poll answered, for a legitimate registrar and watcher (from
//! 127.0.0.1), quiet and while the hostile load of issue #14 runs (idle connections,
//! slow headers, unread `fetch/all` answers, a poll flood; `tests/http/attack.rs`), in one
//! run. The server (default limits) runs in a child process (see `support`); the attackers
//! run on their own runtime at nice 19 (on one machine they stand in for remote hosts).
//!
//! `cargo bench -p sdkit-discovery-server --bench hostile`
//! Prints `report:` lines with p50/p99 per phase; criterion reports the mean round.

#[path = "../tests/http/attack.rs"]
mod attack;
#[allow(dead_code)]
mod support;

use criterion::Criterion;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

const ROUNDS: usize = 500;

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
    let mut child = Child::spawn("discovery");
    let addr = child.addr;
    let mut pair = rt.block_on(Pair::new(addr));
    // Large enough that an unread fetch/all answer fills the socket buffers.
    rt.block_on(pair.preload(300));

    let quiet = rounds(&rt, &mut child, &mut pair, ROUNDS);
    c.bench_function("register_to_poll/quiet", |b| {
        b.iter_custom(|n| rounds(&rt, &mut child, &mut pair, n as usize).iter().sum())
    });

    let pressure = Arc::new(attack::Pressure::default());
    // The attackers get their own runtime at the lowest CPU priority: on this one machine
    // they stand in for remote hosts, whose CPU would not be taken from the server.
    let attack_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(|| {
            // SAFETY: setpriority on the calling thread has no memory-safety preconditions.
            let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::id_t;
            let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, 19) };
        })
        .enable_all()
        .build()
        .expect("attack runtime");
    let load = {
        let _guard = attack_rt.enter();
        attack::hostile_load(addr, "bench", 900, &pressure)
    };
    // Let the attack build up: idle connections at the per-address limit.
    let deadline = Instant::now() + Duration::from_secs(60);
    while pressure
        .idle_open
        .load(std::sync::atomic::Ordering::Relaxed)
        < 3000
    {
        assert!(Instant::now() < deadline, "the attack did not build up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let loaded = rounds(&rt, &mut child, &mut pair, ROUNDS);
    c.bench_function("register_to_poll/hostile_load", |b| {
        b.iter_custom(|n| rounds(&rt, &mut child, &mut pair, n as usize).iter().sum())
    });
    drop(load);
    attack_rt.shutdown_background();

    let (q50, q99) = percentiles(quiet);
    let (l50, l99) = percentiles(loaded);
    println!(
        "report: register → parked poll answered, quiet ({ROUNDS} rounds): p50 {q50:.2?}, p99 {q99:.2?}"
    );
    println!(
        "report: same under hostile load ({ROUNDS} rounds; idle connections opened {}, flood polls refused {}): \
         p50 {l50:.2?}, p99 {l99:.2?} [target p99 ≤ 20 ms and ≤ 10× quiet: {:.1}×]",
        pressure
            .idle_open
            .load(std::sync::atomic::Ordering::Relaxed),
        pressure
            .flood_refused
            .load(std::sync::atomic::Ordering::Relaxed),
        l99.as_secs_f64() / q99.as_secs_f64().max(1e-9)
    );
    c.final_summary();
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    (quantile(&mut samples, 0.50), quantile(&mut samples, 0.99))
}

/// The legitimate registrar and watcher, each on its own keep-alive connection.
struct Pair {
    addr: std::net::SocketAddr,
    registrar: hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    watcher: Arc<
        tokio::sync::Mutex<
            hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
        >,
    >,
    cursor: i64,
}

const APP: &str = "bench.legit";

impl Pair {
    async fn new(addr: std::net::SocketAddr) -> Pair {
        let mut registrar = connect(addr).await;
        send(
            &mut registrar,
            post(addr, "/discovery/register", register_form(APP, "h")),
        )
        .await;
        let body = send(
            &mut registrar,
            get(
                addr,
                &format!("/discovery/fetch?env=bench&appid={APP}&status=1"),
            ),
        )
        .await;
        Pair {
            addr,
            registrar,
            watcher: Arc::new(tokio::sync::Mutex::new(connect(addr).await)),
            cursor: cursor_of(&body, None),
        }
    }

    async fn preload(&mut self, n: usize) {
        for i in 0..n {
            let form = register_form(&format!("bench.bulk{}", i % 20), &format!("h{i}"));
            send(
                &mut self.registrar,
                post(self.addr, "/discovery/register", form),
            )
            .await;
        }
    }
}

/// `n` rounds: the watcher parks a poll from the current cursor, the registrar registers,
/// the time until the watcher's answer arrives is one sample.
fn rounds(
    rt: &tokio::runtime::Runtime,
    child: &mut Child,
    pair: &mut Pair,
    n: usize,
) -> Vec<Duration> {
    let addr = pair.addr;
    let form = register_form(APP, "h");
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let url = format!(
            "/discovery/polls?env=bench&hostname=w&appid={APP}&latest_timestamp={}",
            pair.cursor
        );
        // The flood keeps other polls parked: wait until one more is.
        let baseline = child.stats().0;
        let watcher = Arc::clone(&pair.watcher);
        let task = rt.spawn(async move {
            let body = send(&mut *watcher.lock().await, get(addr, &url)).await;
            (Instant::now(), body)
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while child.stats().0 <= baseline && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
        let t0 = Instant::now();
        let (at, body) = rt.block_on(async {
            let (_, answered) = tokio::join!(
                send(
                    &mut pair.registrar,
                    post(addr, "/discovery/register", form.clone())
                ),
                task
            );
            answered.expect("poll task")
        });
        samples.push(at.duration_since(t0));
        pair.cursor = cursor_of(&body, Some(APP));
    }
    samples
}
