//! Unary gRPC through three channels, side by side in one run (loopback, real tonic servers):
//!
//! * (a) `tonic_channel_1_server`: a plain tonic `Channel` to one server;
//! * (b) `tonic_balance_channel_3_servers`: tonic's `Channel::balance_channel` (tower p2c) over 3;
//! * (c) `sdkit_round_robin_3_servers`: sdkit's round-robin `Channel` over the same 3.
//!
//! * (d) `sdkit_round_robin_1_server`: sdkit's channel over (a)'s one server — sdkit's own cost
//!   per RPC, without the effect of spreading over more servers.
//!
//! Two groups: `unary_1_caller` (one caller in a loop: the time per RPC is its latency) and
//! `unary_64_callers` (64 concurrent callers: the time per RPC is the inverse of throughput).
//! The three servers share one server runtime (two worker threads), so that every channel's
//! calls are served by the same threads.
//!
//! ```sh
//! cargo bench -p sdkit-grpc --bench channel -- --warm-up-time 1 --measurement-time 3
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::Hello;
use common::greeter::HelloRequest;
use common::greeter::greeter_client::GreeterClient;
use common::greeter::greeter_server::GreeterServer;
use criterion::{Criterion, criterion_group, criterion_main};
use sdkit_core::{FixedInstancer, Instance};
use tonic::transport::channel::Change;
use tonic::transport::{Channel as TonicChannel, Endpoint};

const CALLERS: u64 = 64;

/// Three greeters on loopback, served by `rt`.
fn servers(rt: &tokio::runtime::Runtime) -> Vec<SocketAddr> {
    (0..3)
        .map(|i| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let addr = listener.local_addr().unwrap();
            rt.spawn(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let incoming =
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
                tonic::transport::Server::builder()
                    .add_service(GreeterServer::new(Hello::named(&format!("s{i}"))))
                    .serve_with_incoming(incoming)
                    .await
            });
            addr
        })
        .collect()
}

async fn plain(server: SocketAddr) -> TonicChannel {
    Endpoint::from_shared(format!("http://{server}"))
        .unwrap()
        .tcp_nodelay(true)
        .connect()
        .await
        .unwrap()
}

async fn balanced(servers: &[SocketAddr]) -> TonicChannel {
    let (channel, sender) = TonicChannel::balance_channel(1024);
    for (i, s) in servers.iter().enumerate() {
        let endpoint = Endpoint::from_shared(format!("http://{s}"))
            .unwrap()
            .tcp_nodelay(true);
        sender.send(Change::Insert(i, endpoint)).await.unwrap();
    }
    // The sender must outlive the channel (tonic's balancer hangs once it is dropped).
    std::mem::forget(sender);
    channel
}

/// `n` RPCs from `callers` concurrent callers; the elapsed time.
async fn run<T>(client: GreeterClient<T>, n: u64, callers: u64) -> Duration
where
    T: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + 'static,
    T::Error: Into<sdkit_core::BoxError>,
    T::ResponseBody: tonic::codegen::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<sdkit_core::BoxError> + Send,
    T::Future: Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..callers {
        let mut client = client.clone();
        let share = n / callers + u64::from(c < n % callers);
        tasks.push(tokio::spawn(async move {
            for _ in 0..share {
                client
                    .say_hello(HelloRequest {
                        name: "bench".into(),
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

fn sdkit_channel(instancer: &FixedInstancer) -> sdkit_grpc::Channel {
    sdkit_grpc::Channel::new(
        instancer,
        sdkit_grpc::Config::default().with_lb("round_robin"),
    )
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let servers = servers(&server_rt);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let one = FixedInstancer::new(vec![Instance::from_addr(servers[0].to_string())]);
    let three = FixedInstancer::new(
        servers
            .iter()
            .map(|s| Instance::from_addr(s.to_string()))
            .collect(),
    );
    let (a, b, sdkit, sdkit_one) = rt.block_on(async {
        let a = GreeterClient::new(plain(servers[0]).await);
        let b = GreeterClient::new(balanced(&servers).await);
        let sdkit = GreeterClient::new(sdkit_channel(&three));
        let sdkit_one = GreeterClient::new(sdkit_channel(&one));
        // Warm every connection.
        for _ in 0..3 {
            run(a.clone(), 64, 8).await;
            run(b.clone(), 64, 8).await;
            run(sdkit.clone(), 64, 8).await;
            run(sdkit_one.clone(), 64, 8).await;
        }
        (a, b, sdkit, sdkit_one)
    });
    for (group, callers) in [("unary_1_caller", 1), ("unary_64_callers", CALLERS)] {
        let mut g = c.benchmark_group(group);
        g.bench_function("tonic_channel_1_server", |bench| {
            bench
                .to_async(&rt)
                .iter_custom(|n| run(a.clone(), n, callers.min(n.max(1))))
        });
        g.bench_function("tonic_balance_channel_3_servers", |bench| {
            bench
                .to_async(&rt)
                .iter_custom(|n| run(b.clone(), n, callers.min(n.max(1))))
        });
        g.bench_function("sdkit_round_robin_3_servers", |bench| {
            bench
                .to_async(&rt)
                .iter_custom(|n| run(sdkit.clone(), n, callers.min(n.max(1))))
        });
        g.bench_function("sdkit_round_robin_1_server", |bench| {
            bench
                .to_async(&rt)
                .iter_custom(|n| run(sdkit_one.clone(), n, callers.min(n.max(1))))
        });
        g.finish();
    }
    drop((one, three));
}

criterion_group!(benches, bench);
criterion_main!(benches);
