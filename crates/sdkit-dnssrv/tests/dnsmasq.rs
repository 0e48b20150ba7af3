//! The DNS SRV instancer against a real DNS server (Debian `dnsmasq` on a free loopback port).
//!
//! Resolver timeouts are short (300 ms, one attempt) so that a stopped server shows up as an
//! error event quickly; TTLs are 1–2 s so that refreshes happen within the test.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sdkit_core::Backoff;
use sdkit_core::{Instancer as _, Snapshot};
use sdkit_dnssrv::{AddressFamily, Error, META_PRIORITY, META_TARGET, PriorityMode, TargetMode};
mod common;

use common::Setup;
use sdkit_testkit::wait::{EVENTUALLY, wait_for};
use sdkit_testkit::{Dnsmasq, Zone};

const SRV: &str = "_http._tcp.demo.local";

fn ip(text: &str) -> std::net::IpAddr {
    text.parse().expect("test IP literal")
}

fn config(server: SocketAddr) -> Setup {
    Setup::new(SRV)
        .with_nameserver(server)
        .with_timeout(Duration::from_millis(300))
        .with_attempts(1)
        .with_refresh_bounds(Duration::from_millis(200), Duration::from_secs(10))
        .with_backoff(Backoff::new(
            Duration::from_millis(100),
            Duration::from_millis(500),
        ))
}

/// The first snapshot of an instancer built from `config` (the instancer is dropped after).
async fn first_snapshot(config: Setup) -> Arc<Snapshot> {
    config
        .instancer()
        .expect("instancer")
        .subscribe()
        .ready(EVENTUALLY)
        .await
        .expect("first snapshot")
}

/// Three records: two in priority 10 (weights 5 and 1), one fallback in priority 20.
fn weighted_zone(ttl: u32) -> Zone {
    Zone::new("demo.local", ttl)
        .srv(SRV, "a.demo.local", 8080, 10, 5)
        .srv(SRV, "b.demo.local", 8081, 10, 1)
        .srv(SRV, "c.demo.local", 8082, 20, 9)
        .host("a.demo.local", ip("127.0.0.2"))
        .host("b.demo.local", ip("127.0.0.3"))
        .host("c.demo.local", ip("127.0.0.4"))
}

fn summary(snapshot: &Snapshot) -> Vec<(String, String, u32)> {
    snapshot
        .instances()
        .iter()
        .map(|i| (i.id().to_owned(), i.addr().to_owned(), i.weight()))
        .collect()
}

fn s(id: &str, addr: &str, weight: u32) -> (String, String, u32) {
    (id.to_owned(), addr.to_owned(), weight)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_priority_group_with_weights() {
    let dns = Dnsmasq::start(weighted_zone(30)).expect("dnsmasq");
    let instancer = config(dns.addr()).instancer().expect("instancer");
    assert_eq!(instancer.name(), SRV);
    let snapshot = instancer
        .subscribe()
        .ready(EVENTUALLY)
        .await
        .expect("first snapshot");
    assert!(snapshot.error().is_none(), "{:?}", snapshot.error());
    assert_eq!(
        summary(&snapshot),
        [
            s("a.demo.local:8080", "127.0.0.2:8080", 5),
            s("b.demo.local:8081", "127.0.0.3:8081", 1),
        ]
    );
    let a = &snapshot.instances()[0];
    assert_eq!(a.meta(META_TARGET), Some("a.demo.local"));
    assert_eq!(
        a.meta(META_PRIORITY),
        None,
        "priority only with PriorityMode::All"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_priorities_carry_priority_metadata() {
    let dns = Dnsmasq::start(weighted_zone(30)).expect("dnsmasq");
    let snapshot = first_snapshot(config(dns.addr()).with_priority(PriorityMode::All)).await;
    assert_eq!(
        summary(&snapshot),
        [
            s("a.demo.local:8080", "127.0.0.2:8080", 5),
            s("b.demo.local:8081", "127.0.0.3:8081", 1),
            s("c.demo.local:8082", "127.0.0.4:8082", 9),
        ]
    );
    let priorities: Vec<_> = snapshot
        .instances()
        .iter()
        .map(|i| i.meta(META_PRIORITY))
        .collect();
    assert_eq!(priorities, [Some("10"), Some("10"), Some("20")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_zero_weights_map_to_equal_weight_one() {
    let zone = Zone::new("demo.local", 30)
        .srv(SRV, "a.demo.local", 8080, 0, 0)
        .srv(SRV, "b.demo.local", 8080, 0, 0)
        .host("a.demo.local", ip("127.0.0.2"))
        .host("b.demo.local", ip("127.0.0.3"));
    let dns = Dnsmasq::start(zone).expect("dnsmasq");
    let snapshot = first_snapshot(config(dns.addr())).await;
    assert_eq!(
        summary(&snapshot),
        [
            s("a.demo.local:8080", "127.0.0.2:8080", 1),
            s("b.demo.local:8080", "127.0.0.3:8080", 1),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_hostnames_trims_the_trailing_dot() {
    let dns = Dnsmasq::start(weighted_zone(30)).expect("dnsmasq");
    let snapshot = first_snapshot(config(dns.addr()).with_targets(TargetMode::KeepHostnames)).await;
    assert_eq!(
        summary(&snapshot),
        [
            s("a.demo.local:8080", "a.demo.local:8080", 5),
            s("b.demo.local:8081", "b.demo.local:8081", 1),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_change_is_published_within_ttl_plus_one_second() {
    const TTL: u32 = 2;
    let mut dns = Dnsmasq::start(weighted_zone(TTL)).expect("dnsmasq");
    let instancer = config(dns.addr()).instancer().expect("instancer");
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, EVENTUALLY, "the first set", |s| s.len() == 2).await;

    let changed = Zone::new("demo.local", TTL)
        .srv(SRV, "a.demo.local", 9090, 10, 7)
        .host("a.demo.local", ip("127.0.0.2"));
    dns.restart(changed).expect("dnsmasq restart");
    let changed_at = Instant::now();
    let snapshot = wait_for(&mut sub, EVENTUALLY, "the changed set", |s| {
        s.error().is_none() && s.len() == 1
    })
    .await;
    let elapsed = changed_at.elapsed();
    assert_eq!(
        summary(&snapshot),
        [s("a.demo.local:9090", "127.0.0.2:9090", 7)]
    );
    let bound = Duration::from_secs(u64::from(TTL) + 1);
    assert!(
        elapsed <= bound,
        "change published after {elapsed:?}, more than TTL + 1 s = {bound:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_and_nodata_are_empty_sets_not_errors() {
    let dns = Dnsmasq::start(weighted_zone(30)).expect("dnsmasq");
    for name in ["_missing._tcp.demo.local", "a.demo.local"] {
        let instancer = Setup::new(name)
            .with_nameserver(dns.addr())
            .with_timeout(Duration::from_millis(300))
            .with_attempts(1)
            .instancer()
            .expect("instancer");
        let snapshot = instancer
            .subscribe()
            .ready(EVENTUALLY)
            .await
            .expect("ready");
        assert!(snapshot.is_empty(), "{name}: {snapshot:?}");
        assert!(snapshot.error().is_none(), "{name}: {:?}", snapshot.error());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_is_an_error_event_not_an_empty_set() {
    // dnsmasq has no upstream: a name outside its local zone is REFUSED.
    let dns = Dnsmasq::start(weighted_zone(30)).expect("dnsmasq");
    let outside = Setup::new("_http._tcp.elsewhere.test")
        .with_nameserver(dns.addr())
        .with_timeout(Duration::from_millis(300))
        .with_attempts(1)
        .instancer()
        .expect("instancer");
    let mut sub = outside.subscribe();
    let snapshot = wait_for(&mut sub, EVENTUALLY, "an error", |s| s.error().is_some()).await;
    assert!(snapshot.is_empty());
    let message = snapshot
        .error()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        message.starts_with("dnssrv: SRV lookup of _http._tcp.elsewhere.test failed"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_server_error_event_keeps_last_set_then_recovers() {
    let mut dns = Dnsmasq::start(weighted_zone(1)).expect("dnsmasq");
    let instancer = config(dns.addr()).instancer().expect("instancer");
    let mut sub = instancer.subscribe();
    let good = wait_for(&mut sub, EVENTUALLY, "the first set", |s| s.len() == 2).await;

    dns.stop();
    let failing = wait_for(&mut sub, EVENTUALLY, "an error event", |s| {
        s.error().is_some()
    })
    .await;
    assert_eq!(failing.instances(), good.instances(), "last good set kept");
    let error = failing.error().map(ToString::to_string).unwrap_or_default();
    assert!(error.starts_with("dnssrv: "), "{error}");
    let source = failing
        .error()
        .and_then(|e| e.get_ref().downcast_ref::<Error>());
    assert!(matches!(source, Some(Error::Lookup { .. })), "{source:?}");

    dns.resume().expect("dnsmasq resume on the same port");
    let recovered = wait_for(&mut sub, EVENTUALLY, "recovery", |s| s.error().is_none()).await;
    assert_eq!(recovered.instances(), good.instances());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_zero_record_is_skipped_not_fatal() {
    let zone = Zone::new("demo.local", 30)
        .srv(SRV, "a.demo.local", 8080, 0, 1)
        .srv(SRV, "zero.demo.local", 0, 0, 1)
        .srv(SRV, "b.demo.local", 8081, 0, 1)
        .host("a.demo.local", ip("127.0.0.2"))
        .host("zero.demo.local", ip("127.0.0.9"))
        .host("b.demo.local", ip("127.0.0.3"));
    let dns = Dnsmasq::start(zone).expect("dnsmasq");
    let snapshot = first_snapshot(config(dns.addr())).await;
    assert!(snapshot.error().is_none());
    assert_eq!(
        summary(&snapshot),
        [
            s("a.demo.local:8080", "127.0.0.2:8080", 1),
            s("b.demo.local:8081", "127.0.0.3:8081", 1),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_without_addresses_is_skipped() {
    let zone = Zone::new("demo.local", 30)
        .srv(SRV, "a.demo.local", 8080, 0, 1)
        .srv(SRV, "ghost.demo.local", 8080, 0, 1)
        .host("a.demo.local", ip("127.0.0.2"));
    let dns = Dnsmasq::start(zone).expect("dnsmasq");
    let snapshot = first_snapshot(config(dns.addr())).await;
    assert!(snapshot.error().is_none());
    assert_eq!(
        summary(&snapshot),
        [s("a.demo.local:8080", "127.0.0.2:8080", 1)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aaaa_targets_are_bracketed() {
    let zone = Zone::new("demo.local", 30)
        .srv(SRV, "v6.demo.local", 8080, 0, 2)
        .srv(SRV, "dual.demo.local", 8081, 0, 3)
        .host("v6.demo.local", ip("::1"))
        .host("dual.demo.local", ip("127.0.0.5"))
        .host("dual.demo.local", ip("fd00::5"));
    let dns = Dnsmasq::start(zone).expect("dnsmasq");

    let snapshot = first_snapshot(config(dns.addr())).await;
    assert!(snapshot.error().is_none(), "{:?}", snapshot.error());
    assert_eq!(
        summary(&snapshot),
        [
            s("dual.demo.local:8081/127.0.0.5", "127.0.0.5:8081", 3),
            s("dual.demo.local:8081/fd00::5", "[fd00::5]:8081", 3),
            s("v6.demo.local:8080", "[::1]:8080", 2),
        ]
    );
    assert_eq!(
        snapshot.instances()[2].socket_addr(),
        Some("[::1]:8080".parse().expect("literal"))
    );

    let snapshot =
        first_snapshot(config(dns.addr()).with_address_family(AddressFamily::Ipv4)).await;
    assert_eq!(
        summary(&snapshot),
        [s("dual.demo.local:8081", "127.0.0.5:8081", 3)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn construction_does_not_wait_and_stop_cancels_a_lookup_in_flight() {
    // A "server" that receives queries and never answers: every lookup hangs until its
    // 30 s timeout unless stop cancels it.
    let black_hole = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = black_hole.local_addr().expect("addr");
    let started = Instant::now();
    let instancer = Setup::new(SRV)
        .with_nameserver(addr)
        .with_transport(sdkit_dnssrv::Transport::Udp)
        .with_timeout(Duration::from_secs(30))
        .with_attempts(1)
        .instancer()
        .expect("instancer");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "construction waited"
    );
    let mut sub = instancer.subscribe();
    assert!(sub.ready(Duration::from_millis(200)).await.is_err());

    // The query is in flight once the black hole has received it.
    let mut buf = [0u8; 512];
    tokio::time::timeout(EVENTUALLY, black_hole.recv_from(&mut buf))
        .await
        .expect("a query within the deadline")
        .expect("recv");

    let stopping = Instant::now();
    instancer.stop();
    instancer.stop();
    let ended = tokio::time::timeout(Duration::from_secs(2), sub.next()).await;
    assert!(
        matches!(ended, Ok(None)),
        "subscription must end after stop: {ended:?}"
    );
    assert!(stopping.elapsed() < Duration::from_secs(2));
    assert!(
        sdkit_core::Instancer::subscribe(&instancer)
            .current()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configuration_is_rejected_at_construction() {
    let bad_name = Setup::new("a..b")
        .with_nameserver("127.0.0.1:53".parse().expect("addr"))
        .instancer();
    assert!(
        matches!(bad_name, Err(Error::InvalidName { .. })),
        "{bad_name:?}"
    );
    let bounds = Setup::new(SRV)
        .with_nameserver("127.0.0.1:53".parse().expect("addr"))
        .with_refresh_bounds(Duration::from_secs(9), Duration::from_secs(1))
        .instancer();
    assert!(matches!(bounds, Err(Error::Config(_))), "{bounds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_follows_the_ttl_not_a_fixed_ticker() {
    // TTL 1 s, minimum interval 200 ms: a ticker at the minimum would query 5 times a second;
    // following the TTL, the third query comes about 2 s after the first. The scenario needs
    // that wall time to pass.
    let dns = Dnsmasq::start(weighted_zone(1)).expect("dnsmasq");
    let instancer = config(dns.addr()).instancer().expect("instancer");
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, EVENTUALLY, "the first set", |s| s.len() == 2).await;
    let first = Instant::now();
    assert!(
        sdkit_testkit::wait_until_async(EVENTUALLY, || dns.query_count("SRV", SRV) >= 3).await,
        "three SRV queries expected"
    );
    let elapsed = first.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1500),
        "3 queries within {elapsed:?}: refresh does not follow the 1 s TTL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_refresh_caps_a_long_ttl_and_reaches_the_server() {
    // TTL 1 h, maximum interval 300 ms: each refresh must reach dnsmasq (no cached answer).
    let dns = Dnsmasq::start(weighted_zone(3600)).expect("dnsmasq");
    let instancer = config(dns.addr())
        .with_refresh_bounds(Duration::from_millis(100), Duration::from_millis(300))
        .instancer()
        .expect("instancer");
    instancer
        .subscribe()
        .ready(EVENTUALLY)
        .await
        .expect("ready");
    assert!(
        sdkit_testkit::wait_until_async(EVENTUALLY, || dns.query_count("SRV", SRV) >= 4).await,
        "refreshes capped at 300 ms must query the server again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_come_from_additional_records_without_extra_lookups() {
    let dns = Dnsmasq::start(weighted_zone(30)).expect("dnsmasq");
    let snapshot = first_snapshot(config(dns.addr())).await;
    assert_eq!(snapshot.len(), 2);
    assert_eq!(dns.query_count("SRV", SRV), 1);
    assert_eq!(dns.query_count("A", "a.demo.local"), 0, "glue must be used");
    assert_eq!(
        dns.query_count("AAAA", "a.demo.local"),
        0,
        "glue must be used"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_resolver_reports_the_ttl_and_fails_when_the_server_is_down() {
    let mut dns = Dnsmasq::start(weighted_zone(5)).expect("dnsmasq");
    let setup = config(dns.addr());
    let resolver = sdkit_dnssrv::Client::new(setup.client.clone()).expect("resolver");
    let resolution = resolver.resolve(&setup.watch).await.expect("resolution");
    assert_eq!(resolution.instances.len(), 2);
    assert!(
        resolution.refresh_in > Duration::from_secs(3)
            && resolution.refresh_in <= Duration::from_secs(5),
        "refresh in {:?} for a 5 s TTL",
        resolution.refresh_in
    );
    dns.stop();
    let failed = resolver.resolve(&setup.watch).await;
    assert!(matches!(failed, Err(Error::Lookup { .. })), "{failed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_only_transport() {
    let dns = Dnsmasq::start(weighted_zone(30)).expect("dnsmasq");
    let instancer = config(dns.addr())
        .with_transport(sdkit_dnssrv::Transport::Tcp)
        .instancer()
        .expect("instancer");
    let snapshot = instancer
        .subscribe()
        .ready(EVENTUALLY)
        .await
        .expect("ready");
    assert!(snapshot.error().is_none(), "{:?}", snapshot.error());
    assert_eq!(snapshot.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glue_lost_to_the_udp_size_limit_is_fetched_over_tcp() {
    // 30 targets: dnsmasq's UDP answer (1232-byte EDNS limit) carries glue for only some of
    // them, without setting TC. One TCP query must replace 2 lookups per missing target.
    let mut zone = Zone::new("demo.local", 30);
    for i in 0..30u16 {
        let host = format!("h{i}.demo.local");
        zone = zone
            .srv(SRV, host.clone(), 8000 + i, 10, 1)
            .host(host, ip(&format!("127.0.1.{}", i + 1)));
    }
    let dns = Dnsmasq::start(zone).expect("dnsmasq");
    let snapshot = first_snapshot(config(dns.addr())).await;
    assert!(snapshot.error().is_none(), "{:?}", snapshot.error());
    assert_eq!(snapshot.len(), 30);
    assert_eq!(
        dns.query_count("SRV", SRV),
        2,
        "once over UDP, once over TCP"
    );
    let lookups: usize = (0..30)
        .map(|i| {
            let host = format!("h{i}.demo.local");
            dns.query_count("A", &host) + dns.query_count("AAAA", &host)
        })
        .sum();
    assert_eq!(lookups, 0, "targets must come from the TCP answer's glue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_resolver_configuration_is_read_without_network() {
    // No name server configured: /etc/resolv.conf is read; construction must not wait for the
    // network either way, and a missing file is a typed error, not a panic.
    let started = Instant::now();
    match Setup::new("_http._tcp.sdkit-test.invalid").instancer() {
        Ok(instancer) => instancer.stop(),
        Err(error) => assert!(matches!(error, Error::SystemConfig(_)), "{error:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(1));
}
