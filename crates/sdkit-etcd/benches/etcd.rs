//! etcd backend benchmarks against a real single etcd node on loopback:
//!
//! * `put_to_snapshot`: a put on the watched prefix until the subscriber holds the new
//!   snapshot (etcd round trip + watch delivery + decode + cache publish); p50/p99 over 1 000
//!   puts are printed first, then criterion's estimate;
//! * `list_10000`: a new instancer's initial list of 10 000 keys until the first snapshot.
//!
//! `cargo bench -p sdkit-etcd --bench etcd`

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use etcd_client::Client;
use sdkit_core::{Instancer as _, Subscription};
use sdkit_etcd::{Config, Instancer, InstancerConfig};
use sdkit_testkit::EtcdCluster;
use tokio::runtime::Runtime;

struct Rig {
    _etcd: EtcdCluster,
    endpoints: Vec<String>,
    client: Client,
}

fn rig(rt: &Runtime) -> Rig {
    let etcd = EtcdCluster::single().expect("etcd starts");
    let endpoints = etcd.endpoints();
    let client = rt
        .block_on(Client::connect(&endpoints, None))
        .expect("connect");
    Rig {
        _etcd: etcd,
        endpoints,
        client,
    }
}

/// One put on `key` and the wait until `sub` shows `addr` for it.
async fn put_and_wait(
    client: &mut Client,
    sub: &mut Subscription,
    id: &str,
    addr: &str,
) -> Duration {
    let key = format!("/bench/put/{id}");
    let start = Instant::now();
    client.put(key, addr, None).await.expect("put");
    loop {
        let snapshot = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap_or_else(|_| panic!("{id}={addr} not published; current {:?}", sub.current()))
            .expect("subscription open");
        if snapshot
            .instances()
            .iter()
            .any(|i| i.id() == id && i.addr() == addr)
        {
            return start.elapsed();
        }
    }
}

fn percentiles(rt: &Runtime, rig: &Rig) {
    rt.block_on(async {
        let config = Config::new(rig.endpoints.clone());
        let watch = InstancerConfig::new("/bench/put");
        let instancer = Instancer::from_config(config.clone(), watch.clone()).expect("instancer");
        let mut sub = instancer.subscribe();
        sub.ready(Duration::from_secs(10)).await.expect("first snapshot");
        let mut client = rig.client.clone();
        let mut samples = Vec::with_capacity(1000);
        for n in 0..1100u32 {
            let addr = format!("127.0.0.1:{}", 20000 + n % 1000);
            let d = put_and_wait(&mut client, &mut sub, "x", &addr).await;
            if n >= 100 {
                samples.push(d); // the first 100 are warm-up
            }
        }
        samples.sort();
        let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
        println!(
            "etcd put -> snapshot published, {} samples: p50 = {:?}, p90 = {:?}, p99 = {:?}, max = {:?}",
            samples.len(),
            at(0.50),
            at(0.90),
            at(0.99),
            samples[samples.len() - 1]
        );
        instancer.stop();
    });
}

fn benches(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let rig = rig(&rt);
    percentiles(&rt, &rig);

    // One instancer for all of criterion's calls of the routine (it calls it many times).
    let config = Config::new(rig.endpoints.clone());
    let watch = InstancerConfig::new("/bench/put");
    let (instancer, mut sub) = rt.block_on(async {
        let instancer = Instancer::from_config(config.clone(), watch.clone()).expect("instancer");
        let mut sub = instancer.subscribe();
        sub.ready(Duration::from_secs(10))
            .await
            .expect("first snapshot");
        (instancer, sub)
    });
    let mut client = rig.client.clone();
    let mut n = 0u32;
    c.bench_function("etcd/put_to_snapshot", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n = n.wrapping_add(1);
                    let addr = format!("127.0.0.1:{}", 30000 + n % 1000);
                    total += put_and_wait(&mut client, &mut sub, "y", &addr).await;
                }
                total
            })
        });
    });
    instancer.stop();

    // 10 000 keys, written once, 64 puts in flight.
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for chunk in (0..10_000u32).collect::<Vec<_>>().chunks(64) {
            for &i in chunk {
                let mut client = rig.client.clone();
                set.spawn(async move {
                    let value = format!(
                        r#"{{"addr":"10.0.{}.{}:8080","weight":1,"zone":"z1","tags":["v1"]}}"#,
                        i / 256,
                        i % 256
                    );
                    client
                        .put(format!("/bench/list/i{i:05}"), value, None)
                        .await
                        .expect("put");
                });
            }
            while set.join_next().await.is_some() {}
        }
    });
    let mut group = c.benchmark_group("etcd");
    group.sample_size(10);
    group.bench_function("list_10000", |b| {
        let config = Config::new(rig.endpoints.clone());
        let watch = InstancerConfig::new("/bench/list");
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let instancer =
                        Instancer::from_config(config.clone(), watch.clone()).expect("instancer");
                    let mut sub = instancer.subscribe();
                    let snapshot = sub.ready(Duration::from_secs(30)).await.expect("listed");
                    assert_eq!(snapshot.len(), 10_000);
                    total += start.elapsed();
                    instancer.stop();
                }
                total
            })
        });
    });
    group.finish();
}

criterion_group!(etcd, benches);

fn main() {
    etcd();
    Criterion::default().configure_from_args().final_summary();
}
