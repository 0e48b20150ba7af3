//! Register → Endpointer snapshot updated, over loopback against the embedded discovery server.
//!
//! Each sample: a Registrar registers a new instance (`POST /discovery/register`), the server
//! wakes the watcher's parked long poll, the watcher's Instancer publishes, and the Endpointer
//! publishes a snapshot containing the new endpoint. The instance is then deregistered and its
//! removal awaited (not timed). One
//! anchor instance stays registered throughout. Besides criterion's report, the bench prints p50/p99 over
//! `SAMPLES` registrations.
//!
//! `cargo bench -p sdkit-discovery --bench discovery`

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sdkit_core::{BoxError, Endpointer, Instance, Registrar as _};
use sdkit_discovery::{Client, Config, InstancerConfig, RegistrarConfig};
use sdkit_discovery_server::Server;
use sdkit_testkit::discovery::DiscoveryServer;

const APP: &str = "bench.service";
const SAMPLES: usize = 300;

struct Setup {
    server: DiscoveryServer,
    /// Keeps the app registered between samples, so a sample's deregistration is an ordinary
    /// change (not the app's deletion).
    _anchor: sdkit_discovery::Registrar,
    _watcher: Client,
    _instancer: sdkit_discovery::Instancer,
    endpointer: Endpointer<String>,
}

async fn setup() -> Setup {
    let server = DiscoveryServer::start(Server::builder().env("dev").zone("sh001"))
        .await
        .expect("server");
    let anchor_client = Client::new(
        Config::default()
            .with_nodes([server.node()])
            .with_env("dev")
            .with_zone("sh001")
            .with_hostname("anchor")
            .with_self_discovery(false),
    )
    .expect("client");
    let anchor = anchor_client
        .registrar(RegistrarConfig::new(APP).with_addr("grpc://10.255.0.1:9000"))
        .expect("registrar");
    anchor.register().await.expect("anchor registered");
    let watcher = Client::new(
        Config::default()
            .with_nodes([server.node()])
            .with_env("dev")
            .with_zone("sh001")
            .with_self_discovery(false),
    )
    .expect("client");
    let instancer = watcher
        .instancer(InstancerConfig::new(APP))
        .expect("instancer");
    let endpointer = Endpointer::new(&instancer, |i: &Instance| {
        Ok::<_, BoxError>(i.addr().to_owned())
    });
    until(&endpointer, "anchor@10.255.0.1:9000", true).await;
    Setup {
        server,
        _anchor: anchor,
        _watcher: watcher,
        _instancer: instancer,
        endpointer,
    }
}

/// Waits until the endpointer's snapshot does (or does not) hold `id`.
async fn until(endpointer: &Endpointer<String>, id: &str, present: bool) {
    let set = endpointer.endpoint_set();
    loop {
        let seen = set.version();
        if endpointer
            .endpoints()
            .iter()
            .any(|e| e.instance().id() == id)
            == present
        {
            return;
        }
        // Returns at once if a snapshot was published after `seen`: no change is missed.
        set.changed_since(seen).await;
    }
}

/// One timed registration; returns the latency.
async fn one(setup: &Setup, n: usize) -> Duration {
    let host = format!("bench-{n}");
    let client = Client::new(
        Config::default()
            .with_nodes([setup.server.node()])
            .with_env("dev")
            .with_zone("sh001")
            .with_hostname(host.clone())
            .with_self_discovery(false),
    )
    .expect("client");
    let registrar = client
        .registrar(RegistrarConfig::new(APP).with_addr(format!(
            "grpc://10.0.{}.{}:9000",
            n / 256 % 256,
            n % 256
        )))
        .expect("registrar");
    let id = format!("{host}@10.0.{}.{}:9000", n / 256 % 256, n % 256);
    let started = Instant::now();
    registrar.register().await.expect("register");
    until(&setup.endpointer, &id, true).await;
    let took = started.elapsed();
    registrar.deregister().await.expect("deregister");
    until(&setup.endpointer, &id, false).await;
    took
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let setup = rt.block_on(setup());
    let mut n = 0usize;

    let mut samples: Vec<Duration> = rt.block_on(async {
        let mut v = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            n += 1;
            v.push(one(&setup, n).await);
        }
        v
    });
    samples.sort();
    println!(
        "discovery register -> endpointer: n={} p50={:?} p90={:?} p99={:?} max={:?}",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.90),
        percentile(&samples, 0.99),
        samples[samples.len() - 1],
    );

    let mut group = c.benchmark_group("discovery");
    group.sample_size(20);
    group.bench_function("register_to_endpointer", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    total += one(&setup, n).await;
                }
                total
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
