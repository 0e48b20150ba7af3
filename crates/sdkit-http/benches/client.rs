//! Per-request cost of name resolution: a GET through plain `reqwest` to one fixed address vs
//! the same GET through sdkit's name-resolving client (`http://web/`) over 3 instances
//! (endpointer → round-robin → retry → endpoint), in one run, against hyper servers on loopback;
//! and by name to the plain client's very address (one instance), the resolution cost alone.
//!
//! Each iteration sends one GET and reads its body, over kept-alive connections. The servers run
//! on their own runtime thread; the clients on criterion's. Before criterion's runs, a paired
//! measurement interleaves the plain and the sdkit GET and prints their means and ratio (robust
//! to a shared machine's load drifting between criterion's sequential runs).
//!
//! Run: `cargo bench -p sdkit-http --bench client -- --warm-up-time 1 --measurement-time 3`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hyper_util::rt::TokioIo;
use sdkit_core::{FixedInstancer, Instance};
use sdkit_http::{Client, Config};
use tokio::net::TcpListener;

/// Starts `n` hyper servers answering `hello` on a dedicated runtime thread.
fn servers(n: usize) -> Vec<SocketAddr> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("server runtime");
        runtime.block_on(async move {
            let mut addrs = Vec::new();
            for _ in 0..n {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                addrs.push(listener.local_addr().expect("addr"));
                tokio::spawn(async move {
                    while let Ok((stream, _)) = listener.accept().await {
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(async move {
                            let service = hyper::service::service_fn(|_request| async {
                                Ok::<_, Infallible>(hyper::Response::new(
                                    http_body_util::Full::new(bytes::Bytes::from_static(b"hello")),
                                ))
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                });
            }
            tx.send(addrs).expect("send");
            std::future::pending::<()>().await;
        });
    });
    rx.recv().expect("servers")
}

fn bench(c: &mut Criterion) {
    let addrs = servers(4);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let plain = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .expect("reqwest");
    let fixed = format!("http://{}/", addrs[0]);
    // The same client with a per-request deadline (sdkit's default total timeout): a call with
    // a deadline registers a timer, and the runtime then parks with a timeout — a cost every
    // production client pays and sdkit's calls always do; this row separates it from sdkit's own.
    let plain_with_timeout = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Config::default().timeout())
        .build()
        .expect("reqwest");

    let sdkit = runtime.block_on(async {
        let client = Client::new(Config::default()).expect("client");
        for (name, addrs) in [("web", &addrs[1..]), ("one", &addrs[..1])] {
            let instances = addrs
                .iter()
                .map(|a| Instance::from_addr(a.to_string()))
                .collect();
            client
                .add_instancer(name, "static://", FixedInstancer::new(instances))
                .expect("add");
            client
                .ready(name, Duration::from_secs(5))
                .await
                .expect("ready");
        }
        client
    });

    runtime.block_on(paired(&plain, &fixed, &sdkit, "web"));
    runtime.block_on(paired(&plain, &fixed, &sdkit, "one"));
    println!(
        "the same, against reqwest with a {:?} timeout:",
        Config::default().timeout()
    );
    runtime.block_on(paired(&plain_with_timeout, &fixed, &sdkit, "web"));
    runtime.block_on(paired(&plain_with_timeout, &fixed, &sdkit, "one"));

    let mut group = c.benchmark_group("http_get");
    group.bench_function("reqwest_fixed_address", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = plain.get(&fixed).send().await.expect("get");
            response.bytes().await.expect("body")
        })
    });
    group.bench_function("reqwest_fixed_address_with_timeout", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = plain_with_timeout.get(&fixed).send().await.expect("get");
            response.bytes().await.expect("body")
        })
    });
    group.bench_function("sdkit_by_name_3_instances", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = sdkit.get("http://web/").await.expect("get");
            response.bytes().await.expect("body")
        })
    });
    // The same fixed address as plain reqwest, by name: the resolution cost alone.
    group.bench_function("sdkit_by_name_1_instance", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = sdkit.get("http://one/").await.expect("get");
            response.bytes().await.expect("body")
        })
    });
    group.finish();
}

/// Requests in the paired measurement.
const PAIRS: u32 = 10_000;

/// The two GETs interleaved (order alternating), each timed on its own, so that both see the
/// same machine load — criterion's runs are sequential, and a shared machine's load drifts
/// between them. Prints the mean of each and their ratio.
async fn paired(plain: &reqwest::Client, fixed: &str, sdkit: &Client, name: &str) {
    let by_name = format!("http://{name}/");
    let (mut plain_total, mut sdkit_total) = (Duration::ZERO, Duration::ZERO);
    for n in 0..PAIRS {
        for first in [n % 2 == 0, n % 2 != 0] {
            let started = std::time::Instant::now();
            if first {
                let response = plain.get(fixed).send().await.expect("get");
                response.bytes().await.expect("body");
                plain_total += started.elapsed();
            } else {
                let response = sdkit.get(&by_name).await.expect("get");
                response.bytes().await.expect("body");
                sdkit_total += started.elapsed();
            }
        }
    }
    let (plain_mean, sdkit_mean) = (plain_total / PAIRS, sdkit_total / PAIRS);
    println!(
        "paired over {PAIRS} requests each: reqwest fixed address {plain_mean:?}, sdkit by name `{name}` {sdkit_mean:?}, ratio {:.3}",
        sdkit_mean.as_secs_f64() / plain_mean.as_secs_f64()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
