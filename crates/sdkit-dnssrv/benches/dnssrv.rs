//! DNS SRV backend benchmarks against a real dnsmasq on loopback.
//!
//! * `round_trip/*`: one resolution as each refresh does it ([`Client::resolve`]: the SRV
//!   query, targets from the additional records, mapping onto instances), next to a bare
//!   `hickory-resolver` SRV lookup of the same name (the floor).
//! * `refresh/*`: the instancer's steady-state refresh cost — resolution plus publishing an
//!   unchanged set into the cache (which drops it as equal).
//!
//! Run: `cargo bench -p sdkit-dnssrv --bench dnssrv` (dnsmasq must be installed).

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hickory_resolver::Resolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RecordType;
use sdkit_core::InstanceCache;
use sdkit_dnssrv::{Client, Config, InstancerConfig};
use sdkit_testkit::{Dnsmasq, Zone};

const SRV: &str = "_http._tcp.demo.local";

fn zone(records: u8) -> Zone {
    let mut zone = Zone::new("demo.local", 3600);
    for i in 0..records {
        let host = format!("h{i}.demo.local");
        zone = zone
            .srv(
                SRV,
                host.clone(),
                8000 + u16::from(i),
                10,
                1 + u16::from(i % 5),
            )
            .host(host, format!("127.0.1.{}", i + 1).parse().expect("ip"));
    }
    zone
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("dnssrv");
    group.measurement_time(Duration::from_secs(5));
    for records in [3u8, 30] {
        let dns = Dnsmasq::start(zone(records)).expect("dnsmasq");
        let config = Config::default()
            .with_nameserver(dns.addr())
            .with_timeout(Duration::from_secs(2));
        let watch = InstancerConfig::new(SRV);
        let resolver = runtime
            .block_on(async { Client::new(config.clone()) })
            .expect("resolver");
        let cache = InstanceCache::new();
        let first = runtime
            .block_on(resolver.resolve(&watch))
            .expect("resolution");
        assert_eq!(first.instances.len(), usize::from(records));
        cache.update(first.instances);

        let mut server = NameServerConfig::udp_and_tcp(dns.addr().ip());
        for c in &mut server.connections {
            c.port = dns.port();
        }
        let hickory = Resolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![server]),
            TokioRuntimeProvider::default(),
        )
        .build()
        .expect("hickory resolver");

        group.bench_with_input(
            BenchmarkId::new("round_trip/hickory_srv_lookup", records),
            &records,
            |b, _| {
                b.to_async(&runtime).iter(|| async {
                    hickory.clear_cache();
                    let lookup = hickory
                        .lookup(format!("{SRV}."), RecordType::SRV)
                        .await
                        .expect("lookup");
                    assert_eq!(lookup.answers().len(), usize::from(records));
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("round_trip/sdkit_resolve", records),
            &records,
            |b, _| {
                b.to_async(&runtime).iter(|| async {
                    let r = resolver.resolve(&watch).await.expect("resolution");
                    assert_eq!(r.instances.len(), usize::from(records));
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("refresh/unchanged_set", records),
            &records,
            |b, _| {
                b.to_async(&runtime).iter(|| async {
                    let r = resolver.resolve(&watch).await.expect("resolution");
                    assert!(!cache.update(r.instances), "the set must be unchanged");
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
