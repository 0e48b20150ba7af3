//! The discovery backend against the embedded `sdkit-discovery-server` over real HTTP on
//! loopback, with short holds and renew intervals.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sdkit_core::registrar::RegistrationStatus;
use sdkit_core::{Backoff, Instancer as _, Registrar as _};
use sdkit_discovery::{Client, Config, Instancer, InstancerConfig, Registrar, RegistrarConfig};
use sdkit_discovery_server::Server;
use sdkit_testkit::discovery::{CountingProxy, DiscoveryServer};
use sdkit_testkit::wait::{EVENTUALLY, addrs, wait_for};
use sdkit_testkit::{free_port, wait_until_async};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const APP: &str = "demo.service";

fn server() -> sdkit_discovery_server::Builder {
    Server::builder()
        .env("dev")
        .zone("sh001")
        .hold(Duration::from_millis(500))
}

fn client_with(nodes: &[String], zone: &str, host: &str, self_discovery: bool) -> Client {
    Client::new(
        Config::default()
            .with_nodes(nodes.iter().cloned())
            .with_env("dev")
            .with_zone(zone)
            .with_hostname(host)
            .with_self_discovery(self_discovery)
            .with_backoff(Backoff::new(
                Duration::from_millis(50),
                Duration::from_millis(200),
            ))
            .with_request_timeout(Duration::from_secs(5)),
    )
    .expect("client")
}

fn client(nodes: &[String]) -> Client {
    client_with(nodes, "sh001", "host-1", true)
}

fn registrar_config() -> RegistrarConfig {
    RegistrarConfig::new(APP)
        .with_addr("grpc://127.0.0.1:9000")
        .with_addr("http://127.0.0.1:8000")
        .with_version("v1")
        .with_weight(7)
        .with_renew_interval(Duration::from_millis(300))
        .with_backoff(Backoff::new(
            Duration::from_millis(50),
            Duration::from_millis(200),
        ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_watch_and_deregister() {
    let srv = DiscoveryServer::start(server()).await.unwrap();
    let service = client(&[srv.node()]);
    let registrar = service.registrar(registrar_config()).unwrap();
    registrar.register().await.unwrap();
    assert_eq!(registrar.status(), RegistrationStatus::Registered);

    let watcher = client(&[srv.node()]);
    let instancer = watcher.instancer(InstancerConfig::new(APP)).unwrap();
    let mut sub = instancer.subscribe();
    let snapshot = wait_for(&mut sub, EVENTUALLY, "registered instance", |s| {
        s.len() == 1
    })
    .await;
    let instance = &snapshot.instances()[0];
    assert_eq!(instance.addr(), "127.0.0.1:9000");
    assert_eq!(instance.id(), "host-1@127.0.0.1:9000");
    assert_eq!(instance.weight(), 7);
    assert_eq!(instance.zone(), Some("sh001"));
    assert_eq!(instance.meta("discovery.version"), Some("v1"));
    assert!(snapshot.error().is_none());

    registrar.deregister().await.unwrap();
    registrar.deregister().await.unwrap(); // idempotent
    assert_eq!(
        srv.handle().stats().instances,
        1,
        "only the server's own instance is left"
    );
    wait_for(&mut sub, EVENTUALLY, "instance gone after cancel", |s| {
        s.is_empty()
    })
    .await;
    instancer.stop();
    instancer.stop(); // idempotent
    assert!(sub.next().await.is_none() || sub.next().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_registrar_deregisters() {
    let srv = DiscoveryServer::start(server()).await.unwrap();
    let watcher = client(&[srv.node()]);
    let instancer = watcher.instancer(InstancerConfig::new(APP)).unwrap();
    let mut sub = instancer.subscribe();
    let registrar =
        Registrar::from_config(config_for(&srv.node(), "host-d"), registrar_config()).unwrap();
    registrar.register().await.unwrap();
    wait_for(&mut sub, EVENTUALLY, "registered", |s| s.len() == 1).await;
    drop(registrar);
    wait_for(&mut sub, EVENTUALLY, "deregistered on drop", |s| {
        s.is_empty()
    })
    .await;
}

fn config_for(node: &str, host: &str) -> Config {
    Config {
        nodes: vec![node.to_owned()],
        env: "dev".into(),
        zone: "sh001".into(),
        hostname: host.into(),
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_and_scheme_filters() {
    let srv = DiscoveryServer::start(server()).await.unwrap();
    let c1 = client_with(&[srv.node()], "sh001", "h1", true);
    let c2 = client_with(&[srv.node()], "sh002", "h2", true);
    let r1 = c1
        .registrar(
            RegistrarConfig::new(APP)
                .with_addr("grpc://10.0.0.1:9000")
                .with_addr("http://10.0.0.1:8000"),
        )
        .unwrap();
    let r2 = c2
        .registrar(RegistrarConfig::new(APP).with_addr("grpc://10.0.0.2:9000"))
        .unwrap();
    r1.register().await.unwrap();
    r2.register().await.unwrap();

    let watcher = client(&[srv.node()]);
    let all_grpc = watcher.instancer(InstancerConfig::new(APP)).unwrap();
    let all_http = watcher
        .instancer(InstancerConfig::new(APP).with_scheme("http"))
        .unwrap();
    let sh001_grpc = watcher
        .instancer(InstancerConfig::new(APP).with_zone("sh001"))
        .unwrap();
    let sh002_http = watcher
        .instancer(
            InstancerConfig::new(APP)
                .with_zone("sh002")
                .with_scheme("http"),
        )
        .unwrap();

    let s = wait_for(
        &mut all_grpc.subscribe(),
        EVENTUALLY,
        "grpc, every zone",
        |s| s.len() == 2,
    )
    .await;
    assert_eq!(addrs(&s), ["10.0.0.1:9000", "10.0.0.2:9000"]);
    let zones: Vec<_> = s.instances().iter().map(|i| i.zone()).collect();
    assert_eq!(zones, [Some("sh001"), Some("sh002")]);
    let s = wait_for(
        &mut all_http.subscribe(),
        EVENTUALLY,
        "http, every zone",
        |s| s.len() == 1,
    )
    .await;
    assert_eq!(addrs(&s), ["10.0.0.1:8000"], "h2 has no http address");
    let s = wait_for(
        &mut sh001_grpc.subscribe(),
        EVENTUALLY,
        "grpc, sh001",
        |s| s.len() == 1,
    )
    .await;
    assert_eq!(addrs(&s), ["10.0.0.1:9000"]);
    // The app has instances, but none in sh002 with an http address.
    let s = sh002_http
        .subscribe()
        .ready(EVENTUALLY)
        .await
        .expect("an answer");
    assert!(s.is_empty() && s.error().is_none(), "{s:?}");
    // Both watchers of the same appid share one entry of the long poll.
    assert!(watcher.cursor(APP).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_appid_resolves_empty_within_a_second() {
    // A long hold: an implementation that waited for the poll would take 30 s.
    let srv = DiscoveryServer::start(server().hold(Duration::from_secs(30)))
        .await
        .unwrap();
    let watcher = client(&[srv.node()]);
    let started = Instant::now();
    let instancer = watcher
        .instancer(InstancerConfig::new("no.such.app"))
        .unwrap();
    let snapshot = instancer
        .subscribe()
        .ready(Duration::from_secs(1))
        .await
        .expect("resolved within 1 s");
    assert!(snapshot.is_empty());
    assert!(snapshot.error().is_none());
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_env_differing_from_the_servers_does_not_block() {
    let srv = DiscoveryServer::start(server().hold(Duration::from_secs(30)))
        .await
        .unwrap();
    let watcher = Client::new(
        Config::default()
            .with_nodes([srv.node()])
            .with_env("prod")
            .with_zone("sh001"),
    )
    .unwrap();
    let instancer = watcher.instancer(InstancerConfig::new(APP)).unwrap();
    let snapshot = instancer
        .subscribe()
        .ready(Duration::from_secs(1))
        .await
        .expect("resolved within 1 s");
    assert!(snapshot.is_empty());

    // And it works in that env.
    let service = Client::new(
        Config::default()
            .with_nodes([srv.node()])
            .with_env("prod")
            .with_zone("sh001")
            .with_hostname("p1"),
    )
    .unwrap();
    let registrar = service.registrar(registrar_config()).unwrap();
    registrar.register().await.unwrap();
    wait_for(
        &mut instancer.subscribe(),
        EVENTUALLY,
        "prod instance",
        |s| s.len() == 1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_seed_plus_a_good_one() {
    let srv = DiscoveryServer::start(server()).await.unwrap();
    let dead = format!("127.0.0.1:{}", free_port());
    let service = client(&[dead.clone(), srv.node()]);
    let registrar = service.registrar(registrar_config()).unwrap();
    tokio::time::timeout(EVENTUALLY, registrar.register())
        .await
        .expect("registered in time")
        .unwrap();
    let watcher = client(&[dead.clone(), srv.node()]);
    let instancer = watcher.instancer(InstancerConfig::new(APP)).unwrap();
    wait_for(
        &mut instancer.subscribe(),
        EVENTUALLY,
        "instance via the good seed",
        |s| s.len() == 1 && s.error().is_none(),
    )
    .await;
    // Self-discovery replaced the seeds by the live node.
    assert!(
        wait_until_async(EVENTUALLY, || {
            let nodes = watcher.nodes();
            nodes == [srv.node()]
        })
        .await,
        "nodes: {:?}",
        watcher.nodes()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_reregisters_within_a_renew_interval() {
    let srv = DiscoveryServer::start(server()).await.unwrap();
    let proxy = CountingProxy::start(srv.addr()).await.unwrap();
    let renew = Duration::from_millis(500);
    let service = client_with(&[proxy.node()], "sh001", "host-1", false);
    let registrar = service
        .registrar(registrar_config().with_renew_interval(renew))
        .unwrap();
    registrar.register().await.unwrap();
    let watcher = client_with(&[proxy.node()], "sh001", "w", false);
    let instancer = watcher.instancer(InstancerConfig::new(APP)).unwrap();
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, EVENTUALLY, "registered", |s| s.len() == 1).await;

    let srv = srv.restart().await.unwrap();
    let restarted = Instant::now();
    let back = wait_until_async(EVENTUALLY, || {
        let stats = srv.handle().stats();
        stats.instances == 2
    })
    .await;
    let took = restarted.elapsed();
    assert!(back, "instance never came back");
    // At most one renew interval until the renew that gets -404, plus a failed-renew backoff
    // (200 ms cap) and the re-register round trip.
    assert!(
        took <= renew + Duration::from_millis(1500),
        "took {took:?} for renew interval {renew:?}"
    );
    assert!(
        proxy.count("/discovery/register") >= 2,
        "the fresh registry got the instance through a second register"
    );
    wait_for(&mut sub, EVENTUALLY, "watch sees it again", |s| {
        s.len() == 1 && s.error().is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_the_other_node() {
    let a = DiscoveryServer::start(server()).await.unwrap();
    let b = DiscoveryServer::start(server()).await.unwrap();
    let client = client(&[a.node(), b.node()]);
    let registrar = client.registrar(registrar_config()).unwrap();
    registrar.register().await.unwrap();
    let instancer = client.instancer(InstancerConfig::new(APP)).unwrap();
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, EVENTUALLY, "registered", |s| s.len() == 1).await;
    // Registrar and poll use the same node.
    let in_use = registrar.registered_on().expect("registered somewhere");
    assert_eq!(client.current_node(), in_use);
    let (stopped, other) = if in_use == a.node() { (a, b) } else { (b, a) };
    stopped.stop().await;

    // The server counts the registration before the registrar has read the answer: wait for
    // both.
    assert!(
        wait_until_async(EVENTUALLY, || {
            let stats = other.handle().stats();
            stats.instances == 2 && registrar.registered_on() == Some(other.node())
        })
        .await,
        "the registrar never re-registered on the other node (registered on {:?})",
        registrar.registered_on()
    );
    let snapshot = wait_for(
        &mut sub,
        EVENTUALLY,
        "watch resumed on the other node",
        |s| s.len() == 1 && s.error().is_none(),
    )
    .await;
    assert_eq!(snapshot.instances()[0].addr(), "127.0.0.1:9000");
    assert_eq!(client.current_node(), other.node());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_modified_does_not_rotate_nodes() {
    let a = DiscoveryServer::start(server().hold(Duration::from_millis(200)))
        .await
        .unwrap();
    let b = DiscoveryServer::start(server().hold(Duration::from_millis(200)))
        .await
        .unwrap();
    let pa = CountingProxy::start(a.addr()).await.unwrap();
    let pb = CountingProxy::start(b.addr()).await.unwrap();
    let watcher = client_with(&[pa.node(), pb.node()], "sh001", "w", false);
    let first = watcher.current_node();
    let instancer = watcher.instancer(InstancerConfig::new(APP)).unwrap();
    instancer.subscribe().ready(EVENTUALLY).await.unwrap();
    let (used, unused) = if first == pa.node() {
        (&pa, &pb)
    } else {
        (&pb, &pa)
    };
    // Several holds must pass (each ends in -304) for the scenario; wait for them by count.
    assert!(
        wait_until_async(EVENTUALLY, || {
            let n = used.count("/discovery/polls");
            n >= 6
        })
        .await
    );
    assert_eq!(unused.total(), 0, "a -304 moved the client to another node");
    assert_eq!(watcher.current_node(), first);
    // Holds were honoured: no poll returned early.
    let polls: Vec<_> = used
        .requests()
        .into_iter()
        .filter(|r| r.path == "/discovery/polls")
        .collect();
    let span = polls[polls.len() - 1].at - polls[0].at;
    assert!(span >= Duration::from_millis(180 * (polls.len() as u64 - 1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_only_app_does_not_busy_loop() {
    let srv = DiscoveryServer::start(server().hold(Duration::from_millis(500)))
        .await
        .unwrap();
    let proxy = CountingProxy::start(srv.addr()).await.unwrap();
    let service = client(&[srv.node()]);
    let registrar = service
        .registrar(registrar_config().with_waiting(true))
        .unwrap();
    registrar.register().await.unwrap();
    let watcher = client_with(&[proxy.node()], "sh001", "w", false);
    let instancer = watcher.instancer(InstancerConfig::new(APP)).unwrap();
    let snapshot = instancer.subscribe().ready(EVENTUALLY).await.unwrap();
    assert!(snapshot.is_empty(), "WAITING instances are not served");
    let cursor = watcher.cursor(APP).expect("a cursor");
    assert!(
        cursor > 0,
        "the cursor advanced on an answer with empty lists"
    );
    let before = proxy.total();
    // The scenario is "some seconds pass": 2 s is four holds of 500 ms.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let polls = proxy.total() - before;
    assert!(
        (1..=8).contains(&polls),
        "{polls} requests in 2 s with a 500 ms hold"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_above_2_pow_53_round_trip_exactly() {
    let srv = DiscoveryServer::start(server()).await.unwrap();
    let proxy = CountingProxy::start(srv.addr()).await.unwrap();
    let service = client(&[srv.node()]);
    let registrar = service.registrar(registrar_config()).unwrap();
    registrar.register().await.unwrap();
    let watcher = client_with(&[proxy.node()], "sh001", "w", false);
    let instancer = watcher.instancer(InstancerConfig::new(APP)).unwrap();
    wait_for(&mut instancer.subscribe(), EVENTUALLY, "registered", |s| {
        s.len() == 1
    })
    .await;
    let info = service.fetch(APP).await.unwrap().expect("known app");
    let server_cursor = info.latest_timestamp;
    assert!(server_cursor > (1i64 << 53), "UnixNano cursors exceed 2^53");
    assert_eq!(watcher.cursor(APP), Some(server_cursor));
    let echoed = format!("latest_timestamp={server_cursor}");
    assert!(
        wait_until_async(EVENTUALLY, || {
            proxy
                .requests()
                .iter()
                .any(|r| r.path == "/discovery/polls" && r.query.contains(&echoed))
        })
        .await,
        "polls never echoed {server_cursor}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comma_joined_addrs_are_split() {
    let srv = DiscoveryServer::start(server()).await.unwrap();
    let service = client(&[srv.node()]);
    let registrar = service
        .registrar(
            RegistrarConfig::new(APP).with_addr("http://127.0.0.1:8001,grpc://127.0.0.1:9001"),
        )
        .unwrap();
    registrar.register().await.unwrap();
    let watcher = client(&[srv.node()]);
    let grpc = watcher.instancer(InstancerConfig::new(APP)).unwrap();
    let http = watcher
        .instancer(InstancerConfig::new(APP).with_scheme("http"))
        .unwrap();
    let s = wait_for(&mut grpc.subscribe(), EVENTUALLY, "grpc", |s| s.len() == 1).await;
    assert_eq!(addrs(&s), ["127.0.0.1:9001"]);
    let s = wait_for(&mut http.subscribe(), EVENTUALLY, "http", |s| s.len() == 1).await;
    assert_eq!(addrs(&s), ["127.0.0.1:8001"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_after_stop_returns() {
    let srv = DiscoveryServer::start(server().hold(Duration::from_millis(200)))
        .await
        .unwrap();
    let proxy = CountingProxy::start(srv.addr()).await.unwrap();

    // An instancer with a client of its own.
    let mut config = config_for(&proxy.node(), "w1");
    config.self_discovery = false;
    let instancer = Instancer::from_config(config, InstancerConfig::new(APP)).unwrap();
    instancer.subscribe().ready(EVENTUALLY).await.unwrap();
    assert!(
        wait_until_async(EVENTUALLY, || {
            let n = proxy.count("/discovery/polls");
            n >= 2
        })
        .await
    );
    instancer.stop();
    let at_stop = proxy.total();
    // The scenario needs time to pass: several 200 ms holds in which a poll would be sent.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(proxy.total(), at_stop, "a request was sent after stop");

    // The last instancer of a shared client: its appid leaves the poll, the loop goes idle.
    let shared = client_with(&[proxy.node()], "sh001", "w2", false);
    let instancer = shared.instancer(InstancerConfig::new(APP)).unwrap();
    instancer.subscribe().ready(EVENTUALLY).await.unwrap();
    let polls_before = proxy.count("/discovery/polls");
    assert!(
        wait_until_async(EVENTUALLY, || {
            let n = proxy.count("/discovery/polls");
            n >= polls_before + 2
        })
        .await
    );
    instancer.stop();
    let at_idle = proxy.total();
    // Again, several holds must pass for the scenario.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(proxy.total(), at_idle, "an idle client kept polling");
    drop(shared);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_the_registry_is_an_error_event() {
    // A node that answers every request with HTTP 200 and a body that is not JSON.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = listener.local_addr().unwrap().to_string();
    let garbage = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nnot json")
                    .await;
            });
        }
    });
    let watcher = client_with(&[node], "sh001", "w", false);
    let instancer = watcher.instancer(InstancerConfig::new(APP)).unwrap();
    let snapshot = wait_for(
        &mut instancer.subscribe(),
        EVENTUALLY,
        "an error event",
        |s| s.error().is_some(),
    )
    .await;
    let message = snapshot.error().unwrap().to_string();
    assert!(message.contains("discovery"), "{message}");
    assert!(message.contains("malformed"), "{message}");
    assert!(snapshot.is_empty());
    garbage.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn construction_never_touches_the_network() {
    let dead = format!("127.0.0.1:{}", free_port());
    let watcher = client_with(&[dead], "sh001", "w", true);
    let instancer = watcher.instancer(InstancerConfig::new(APP)).unwrap();
    let mut sub = instancer.subscribe();
    // Failing nodes surface as an error event naming the backend.
    let s = wait_for(&mut sub, EVENTUALLY, "an error", |s| s.error().is_some()).await;
    assert!(s.error().unwrap().to_string().contains("discovery"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_hold_is_sent_and_honoured() {
    // The server would hold 30 s; the client asks for 300 ms through x1-bmspy-timeout.
    let srv = DiscoveryServer::start(server().hold(Duration::from_secs(30)))
        .await
        .unwrap();
    let proxy = CountingProxy::start(srv.addr()).await.unwrap();
    let watcher = Client::new(
        Config::default()
            .with_nodes([proxy.node()])
            .with_env("dev")
            .with_zone("sh001")
            .with_self_discovery(false)
            .with_poll_hold(Duration::from_millis(300))
            .with_poll_slack(Duration::from_secs(5)),
    )
    .unwrap();
    let instancer = watcher.instancer(InstancerConfig::new(APP)).unwrap();
    let mut sub = instancer.subscribe();
    sub.ready(EVENTUALLY).await.unwrap();
    let started = Instant::now();
    assert!(
        wait_until_async(EVENTUALLY, || proxy.count("/discovery/polls") >= 4).await,
        "the polls were held for the server's 30 s"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        sub.current().unwrap().error().is_none(),
        "a -304 is not an error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrar_retries_until_the_registry_comes_up() {
    let port = free_port();
    let node = format!("127.0.0.1:{port}");
    let service = client_with(std::slice::from_ref(&node), "sh001", "late", false);
    let registrar = Arc::new(service.registrar(registrar_config()).unwrap());
    let registering = tokio::spawn({
        let registrar = Arc::clone(&registrar);
        async move { registrar.register().await }
    });
    // Nothing listens yet: register keeps failing (and retrying) meanwhile.
    assert!(
        wait_until_async(EVENTUALLY, || registrar.status()
            == RegistrationStatus::Registering)
        .await
    );
    assert!(!registering.is_finished());
    let srv = DiscoveryServer::start_on(server(), node.parse().unwrap())
        .await
        .unwrap();
    tokio::time::timeout(EVENTUALLY, registering)
        .await
        .expect("registered once the registry came up")
        .unwrap()
        .unwrap();
    assert_eq!(srv.handle().stats().instances, 2);
    registrar.deregister().await.unwrap();
    assert_eq!(srv.handle().stats().instances, 1);
}

/// Issue #15: an instancer built from a client keeps the client's loop alive after the caller
/// drops its client handle (before, the loop stopped and subscribers waited forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instancer_keeps_its_client_alive() {
    let srv = DiscoveryServer::start(server()).await.unwrap();
    // The client handle is a temporary: dropped at the end of this statement.
    let instancer = client(&[srv.node()])
        .instancer(InstancerConfig::new(APP))
        .unwrap();
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, EVENTUALLY, "the first (empty) set", |s| {
        s.is_empty()
    })
    .await;
    let registrar =
        Registrar::from_config(config_for(&srv.node(), "host-k"), registrar_config()).unwrap();
    registrar.register().await.unwrap();
    wait_for(
        &mut sub,
        EVENTUALLY,
        "a registration seen after the drop",
        |s| s.len() == 1,
    )
    .await;
    registrar.deregister().await.unwrap();
}

/// Issue #15: shutting the client down publishes an error and ends every subscription of its
/// instancers, instead of leaving them on a set that never changes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_the_client_down_ends_its_instancers_with_an_error() {
    let srv = DiscoveryServer::start(server()).await.unwrap();
    let client = client(&[srv.node()]);
    let instancer = client.instancer(InstancerConfig::new(APP)).unwrap();
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, EVENTUALLY, "the first (empty) set", |s| {
        s.is_empty()
    })
    .await;
    client.shutdown();
    loop {
        match tokio::time::timeout(EVENTUALLY, sub.next()).await {
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(_) => panic!("the subscription did not end after the client shut down"),
        }
    }
    let last = sub.current().expect("a last state");
    let error = last.error().expect("the last state is an error");
    assert!(error.to_string().contains("shut down"), "{error}");
}

/// Issue #15: with a token configured, every request carries `Authorization: Bearer <token>`,
/// and the token shows up in no `Debug` or error text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_token_is_sent_as_a_bearer_header_and_never_shown() {
    const TOKEN: &str = "s3cr3t-t0ken";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = listener.local_addr().unwrap().to_string();
    let seen = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        // Not a discovery answer: the client reports a malformed reply.
        let _ = socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nno")
            .await;
        String::from_utf8_lossy(&request).into_owned()
    });
    let client = Client::new(
        config_for(&node, "host-t")
            .with_self_discovery(false)
            .with_token(TOKEN),
    )
    .unwrap();
    let error = client.fetch(APP).await.unwrap_err();
    let request = seen.await.unwrap();
    assert!(
        request
            .lines()
            .any(|l| l.eq_ignore_ascii_case(&format!("authorization: Bearer {TOKEN}"))),
        "{request}"
    );
    let shown = format!("{error} {error:?} {client:?} {:?}", client.config());
    assert!(!shown.contains(TOKEN), "{shown}");
}

/// The `fetchs` data of a node serving one instance of [`APP`].
fn one_instance() -> String {
    format!(
        r#"{{"{APP}":{{"instances":{{"sh001":[{{"hostname":"h","status":1,"addrs":["grpc://127.0.0.1:9000"]}}]}},"latest_timestamp":5}}}}"#
    )
}

/// A node answering `fetchs` with `data` and every long poll with `-304` at once, counting the
/// polls.
async fn instant_not_modified_node(
    data: String,
) -> (
    String,
    Arc<std::sync::atomic::AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    let polls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&polls);
    let (node, task) = common::scripted_node(move |request| {
        if request.contains("/discovery/polls") {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            r#"{"code":-304,"message":"-304"}"#.to_owned()
        } else {
            format!(r#"{{"code":0,"message":"0","data":{data}}}"#)
        }
    })
    .await;
    (node, polls, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instant_not_modified_does_not_make_the_client_spin() {
    let (node, polls, task) = instant_not_modified_node(one_instance()).await;
    let watcher = Client::new(
        Config::default()
            .with_nodes([node])
            .with_env("dev")
            .with_zone("sh001")
            .with_self_discovery(false)
            .with_backoff(Backoff::new(
                Duration::from_millis(200),
                Duration::from_secs(1),
            )),
    )
    .unwrap();
    let instancer = watcher.instancer(InstancerConfig::new(APP)).unwrap();
    let snapshot = instancer.subscribe().ready(EVENTUALLY).await.unwrap();
    assert_eq!(snapshot.len(), 1);
    // The scenario is a rate: requests sent over three seconds against an instant -304.
    let before = polls.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sent = polls.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert!(
        sent <= 15,
        "{sent} long polls in 3 s against an instant -304"
    );
    assert!(sent >= 1, "the client kept polling");
    let snapshot = instancer.subscribe().ready(EVENTUALLY).await.unwrap();
    assert_eq!(snapshot.len(), 1, "the set is kept");
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_instances_than_the_cap_is_an_error_that_keeps_the_last_set() {
    let srv = DiscoveryServer::start(server()).await.unwrap();
    let register = |host: &str| {
        let service = client_with(&[srv.node()], "sh001", host, false);
        let registrar = service.registrar(registrar_config()).unwrap();
        (service, registrar)
    };
    let (_s1, r1) = register("host-1");
    let (_s2, r2) = register("host-2");
    r1.register().await.unwrap();
    r2.register().await.unwrap();
    let watcher = Client::new(
        config_for(&srv.node(), "w")
            .with_self_discovery(false)
            .with_max_instances(2),
    )
    .unwrap();
    let instancer = watcher.instancer(InstancerConfig::new(APP)).unwrap();
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, EVENTUALLY, "two instances", |s| s.len() == 2).await;
    let (_s3, r3) = register("host-3");
    r3.register().await.unwrap();
    let snapshot = wait_for(&mut sub, EVENTUALLY, "an error event", |s| {
        s.error().is_some()
    })
    .await;
    let message = snapshot.error().unwrap().to_string();
    assert!(message.contains("max_instances"), "{message}");
    assert_eq!(snapshot.len(), 2, "the last good set is kept");
    // Back under the cap: the set is served again.
    r3.deregister().await.unwrap();
    let snapshot = wait_for(&mut sub, EVENTUALLY, "a good set", |s| s.error().is_none()).await;
    assert_eq!(snapshot.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_discovery_refuses_bad_addresses_and_oversized_node_lists() {
    let node_list = |addrs: &[&str]| {
        let instances: Vec<String> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!(r#"{{"hostname":"d{i}","status":1,"addrs":["{a}"]}}"#))
            .collect();
        format!(
            r#"{{"infra.discovery":{{"instances":{{"sh001":[{}]}},"latest_timestamp":3}}}}"#,
            instances.join(",")
        )
    };
    for (addrs, what) in [
        (
            &["http://u@h:80", "http://h h:80", "http://h:0", "http://h"][..],
            "addresses that are not http://host:port",
        ),
        (
            &[
                "http://127.0.0.1:1",
                "http://127.0.0.1:2",
                "http://127.0.0.1:3",
            ][..],
            "more nodes than max_nodes",
        ),
    ] {
        let (seed, _polls, task) = instant_not_modified_node(node_list(addrs)).await;
        let watcher = Client::new(
            Config::default()
                .with_nodes([seed.clone()])
                .with_env("dev")
                .with_zone("sh001")
                .with_max_nodes(2),
        )
        .unwrap();
        let mut infra = watcher.watch("infra.discovery");
        let deadline = Instant::now() + EVENTUALLY;
        while !matches!(infra.current(), sdkit_discovery::AppState::Instances(_)) {
            assert!(Instant::now() < deadline, "no answer for infra.discovery");
            let _ = tokio::time::timeout(EVENTUALLY, infra.changed()).await;
        }
        assert_eq!(watcher.nodes(), [seed], "{what} replaced the node list");
        task.abort();
    }
}

/// A registry with one instance (renewed every `renew`) and a watcher using `grace`, once the
/// watcher sees the instance: (registry, registrar with its client, watcher, instancer, sub).
async fn registered_and_watched(
    renew: Duration,
    grace: Duration,
) -> (
    DiscoveryServer,
    (Client, Registrar),
    Client,
    Instancer,
    sdkit_core::Subscription,
) {
    let srv = DiscoveryServer::start(server()).await.unwrap();
    let service = client_with(&[srv.node()], "sh001", "host-1", false);
    let registrar = service
        .registrar(registrar_config().with_renew_interval(renew))
        .unwrap();
    registrar.register().await.unwrap();
    let watcher = Client::new(
        config_for(&srv.node(), "w")
            .with_self_discovery(false)
            .with_backoff(Backoff::new(
                Duration::from_millis(50),
                Duration::from_millis(200),
            ))
            .with_unknown_grace(grace),
    )
    .unwrap();
    let instancer = watcher.instancer(InstancerConfig::new(APP)).unwrap();
    let mut sub = instancer.subscribe();
    wait_for(&mut sub, EVENTUALLY, "registered", |s| s.len() == 1).await;
    (srv, (service, registrar), watcher, instancer, sub)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_restart_never_publishes_an_empty_set_while_registrars_come_back() {
    let (srv, _registrar, _watcher, _instancer, mut sub) =
        registered_and_watched(Duration::from_millis(500), Duration::from_secs(10)).await;

    // The restart as the watcher sees it: the node fails, then answers again empty.
    let addr = srv.addr();
    srv.stop().await;
    let mut empties = 0;
    let stale = wait_for(&mut sub, EVENTUALLY, "an error event", |s| {
        empties += usize::from(s.is_empty());
        s.error().is_some()
    })
    .await;
    assert_eq!(stale.len(), 1, "the last set is kept while failing");
    let srv = DiscoveryServer::start_on(server(), addr).await.unwrap();
    wait_for(&mut sub, EVENTUALLY, "the set back without error", |s| {
        empties += usize::from(s.is_empty());
        s.len() == 1 && s.error().is_none()
    })
    .await;
    assert_eq!(empties, 0, "an empty set was published during the restart");
    assert_eq!(srv.handle().stats().instances, 2, "re-registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_still_unknown_after_the_grace_period_is_published_empty() {
    // Renews far apart: the restarted registry does not get the instance back in time.
    let (srv, _registrar, _watcher, _instancer, mut sub) =
        registered_and_watched(Duration::from_secs(600), Duration::from_secs(1)).await;

    let addr = srv.addr();
    srv.stop().await;
    wait_for(&mut sub, EVENTUALLY, "an error event", |s| {
        s.error().is_some()
    })
    .await;
    let _srv = DiscoveryServer::start_on(server(), addr).await.unwrap();
    let restarted = Instant::now();
    common::wait_for_the_kept_set(&mut sub).await;
    let empty = wait_for(&mut sub, EVENTUALLY, "the empty set", |s| {
        s.is_empty() && s.error().is_none()
    })
    .await;
    assert!(empty.is_empty());
    assert!(
        restarted.elapsed() >= Duration::from_secs(1),
        "published empty before the grace period ended"
    );
}
