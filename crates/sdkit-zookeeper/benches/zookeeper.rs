//! ZooKeeper backend benchmark against a real standalone ZooKeeper 3.8 server on loopback:
//!
//! * `register_to_snapshot`: `Registrar::register` (an ephemeral sequential node created) until
//!   the instancer's subscriber holds a snapshot with the instance (create round trip + watch
//!   event + data read + decode + cache publish); p50/p90/p99 over 1 000 registrations (after
//!   100 warm-up) are printed first, then criterion's estimate;
//! * `raw_create_to_event`, the floor, side by side: a bare `zookeeper-client` create of an
//!   ephemeral node until another session's persistent recursive watch delivers the event.
//!
//! Each registration is deregistered (untimed) before the next, so the watched path stays small.
//!
//! `cargo bench -p sdkit-zookeeper --bench zookeeper`

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use sdkit_core::{Instance, Instancer as _, Registrar as _, Subscription};
use sdkit_testkit::ZooKeeper;
use sdkit_zookeeper::{Client, Config, Instancer, InstancerConfig, Registrar, RegistrarConfig};
use tokio::runtime::Runtime;
use zookeeper_client as zk;

const PATH: &str = "/bench/web";

/// Waits until `sub` shows (or, with `present = false`, no longer shows) instance `id`.
async fn until(sub: &mut Subscription, id: &str, present: bool) {
    loop {
        if let Some(s) = sub.current()
            && s.instances().iter().any(|i| i.id() == id) == present
        {
            return;
        }
        tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap_or_else(|_| panic!("{id} present={present} never published"))
            .expect("subscription open");
    }
}

/// One registration until it is in the snapshot; deregistered (untimed) afterwards.
async fn register_once(client: &Client, sub: &mut Subscription, n: u32) -> Duration {
    let id = format!("i{n}");
    let instance = Instance::new(&id, format!("127.0.0.1:{}", 20000 + n % 1000));
    let registrar =
        Registrar::new(client, RegistrarConfig::new(PATH, instance)).expect("registrar");
    let start = Instant::now();
    registrar.register().await.expect("registered");
    until(sub, &id, true).await;
    let took = start.elapsed();
    registrar.deregister().await.expect("deregistered");
    until(sub, &id, false).await;
    took
}

/// The floor: a bare create until the watching session's event.
async fn raw_once(writer: &zk::Client, events: &mut zk::PersistentWatcher, n: u32) -> Duration {
    let path = format!("/bench/raw/r{n}");
    let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    let start = Instant::now();
    writer
        .create(&path, b"127.0.0.1:1", &ephemeral)
        .await
        .expect("create");
    loop {
        let event = events.changed().await;
        if event.event_type == zk::EventType::NodeCreated && event.path == path {
            break;
        }
    }
    let took = start.elapsed();
    writer.delete(&path, None).await.expect("delete");
    took
}

/// Prints p50/p90/p99/max of `samples`.
fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{what}, {} samples: p50 = {:?}, p90 = {:?}, p99 = {:?}, max = {:?}",
        samples.len(),
        at(0.50),
        at(0.90),
        at(0.99),
        samples[samples.len() - 1]
    );
}

fn benches(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let server = ZooKeeper::single().expect("zookeeper starts");
    let config = Config::new(server.servers());
    let client = Client::new(config.clone()).expect("client");
    let (instancer, mut sub) = rt.block_on(async {
        let instancer =
            Instancer::from_config(config, InstancerConfig::new(PATH)).expect("instancer");
        let mut sub = instancer.subscribe();
        sub.ready(Duration::from_secs(10))
            .await
            .expect("first snapshot");
        (instancer, sub)
    });

    rt.block_on(async {
        let mut samples = Vec::with_capacity(1000);
        for n in 0..1100u32 {
            let d = register_once(&client, &mut sub, n).await;
            if n >= 100 {
                samples.push(d); // the first 100 are warm-up
            }
        }
        report("zookeeper register -> snapshot published", samples);
    });

    let mut n = 10_000u32;
    c.bench_function("zookeeper/register_to_snapshot", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    total += register_once(&client, &mut sub, n).await;
                }
                total
            })
        });
    });
    instancer.stop();

    // The watching session lives as long as its events are read.
    let (writer, _watcher, mut events) = rt.block_on(async {
        let writer = zk::Client::connect(&server.connect_string())
            .await
            .expect("writer");
        let watcher = zk::Client::connect(&server.connect_string())
            .await
            .expect("watcher");
        let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        writer.mkdir("/bench/raw", &open).await.expect("mkdir");
        let events = watcher
            .watch("/bench/raw", zk::AddWatchMode::PersistentRecursive)
            .await
            .expect("watch");
        (writer, watcher, events)
    });
    rt.block_on(async {
        let mut samples = Vec::with_capacity(1000);
        for m in 0..1100u32 {
            let d = raw_once(&writer, &mut events, 1_000_000 + m).await;
            if m >= 100 {
                samples.push(d);
            }
        }
        report("raw zookeeper-client create -> watch event", samples);
    });
    let mut m = 0u32;
    c.bench_function("zookeeper/raw_create_to_event", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    m += 1;
                    total += raw_once(&writer, &mut events, m).await;
                }
                total
            })
        });
    });
}

criterion_group!(zookeeper, benches);

fn main() {
    zookeeper();
    Criterion::default().configure_from_args().final_summary();
}
