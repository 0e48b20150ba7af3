//! Register → snapshot latency of the Consul backend against the Consul API double.
//!
//! One iteration: `PUT /v1/agent/service/register` of a new instance (passing TTL check), then
//! wait until the Instancer's blocking query returns and the new set is published to a
//! subscriber. The instance is deregistered (and its removal observed) outside the timed part.
//!
//! Prints p50/p99/max over `SAMPLES` registrations, then runs the same operation under
//! criterion. Run: `cargo bench -p sdkit-consul --bench consul`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sdkit_consul::client::{CheckDefinition, ServiceRegistration, ServiceWeights};
use sdkit_consul::{Client, Config, Instancer, InstancerConfig};
use sdkit_core::{Instancer as _, Subscription};
use sdkit_testkit::ConsulDouble;
use sdkit_testkit::consul::LOCAL_NODE;
use tokio::sync::Mutex;

const SAMPLES: usize = 2000;

struct Setup {
    _consul: ConsulDouble,
    client: Client,
    _instancer: Instancer,
    sub: Mutex<Subscription>,
    next: std::sync::atomic::AtomicU64,
}

fn registration(id: &str) -> ServiceRegistration {
    ServiceRegistration {
        name: "bench".into(),
        id: id.into(),
        tags: vec![],
        address: "10.0.0.1".into(),
        port: 8080,
        meta: BTreeMap::new(),
        weights: ServiceWeights {
            passing: 1,
            warning: 1,
        },
        check: CheckDefinition {
            check_id: format!("service:{id}"),
            name: "ttl".into(),
            ttl: Some("60s".into()),
            status: Some("passing".into()),
            deregister_critical_service_after: "1m".into(),
            ..CheckDefinition::default()
        },
    }
}

async fn setup() -> Arc<Setup> {
    let consul = ConsulDouble::start().await.expect("double");
    let client = Client::new(Config::new(consul.url())).expect("client");
    // The rate limit is raised so the benchmark measures latency, not the limiter: the default
    // (1/s, burst 5) would hold back a loop that registers thousands of times a second.
    let instancer = Instancer::new(
        &client,
        InstancerConfig::new("bench").with_rate_limit(100_000.0, 1000),
    )
    .unwrap();
    let mut sub = instancer.subscribe();
    sub.ready(Duration::from_secs(10)).await.expect("first set");
    Arc::new(Setup {
        _consul: consul,
        client,
        _instancer: instancer,
        sub: Mutex::new(sub),
        next: 0.into(),
    })
}

/// Registers one new instance and waits for it to be published; returns the latency.
async fn one(setup: &Setup) -> Duration {
    let n = setup
        .next
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!("bench-{n}");
    // The agent registers on its own node: the instance's id is `<node>/<service ID>`.
    let instance_id = format!("{LOCAL_NODE}/{id}");
    let mut sub = setup.sub.lock().await;
    let start = Instant::now();
    setup
        .client
        .register(&registration(&id))
        .await
        .expect("register");
    loop {
        let s = sub.next().await.expect("subscription open");
        if s.instances().iter().any(|i| i.id() == instance_id) {
            break;
        }
    }
    let elapsed = start.elapsed();
    setup.client.deregister(&id).await.expect("deregister");
    loop {
        let s = sub.next().await.expect("subscription open");
        if s.is_empty() {
            break;
        }
    }
    elapsed
}

fn percentiles(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let setup = rt.block_on(setup());
    let mut samples: Vec<Duration> = rt.block_on(async {
        for _ in 0..100 {
            one(&setup).await; // warm-up
        }
        let mut v = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            v.push(one(&setup).await);
        }
        v
    });
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "consul register→snapshot over {SAMPLES} samples: p50 {:?}  p99 {:?}  max {:?}",
        pct(0.50),
        pct(0.99),
        samples[samples.len() - 1]
    );

    let mut group = c.benchmark_group("consul");
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("register_to_snapshot", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let setup = Arc::clone(&setup);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += one(&setup).await;
                }
                total
            }
        })
    });
    group.finish();
}

criterion_group!(benches, percentiles);
criterion_main!(benches);
