//! The channel over real registries: the embedded discovery registry and a real etcd, with real
//! tonic servers registered in them.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::greeter::HelloRequest;
use common::greeter::greeter_client::GreeterClient;
use common::{TestServer, eventually, hello, register};
use sdkit::Target;
use sdkit_discovery_server::Server as Registry;
use sdkit_grpc::{Channel, Config, RequestHash};
use sdkit_testkit::EtcdCluster;
use sdkit_testkit::discovery::DiscoveryServer;

const RETRY_ON_UNAVAILABLE: &str = r#"{
  "loadBalancingConfig": [{"round_robin": {}}],
  "methodConfig": [{
    "name": [{"service": "greeter.Greeter"}],
    "timeout": "10s",
    "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.01s", "maxBackoff": "0.2s",
                    "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
  }]
}"#;

fn channel(url: &str, config: Config) -> Channel {
    let target: Target = url.parse().expect("target");
    Channel::owning(target.instancer().expect("instancer"), config).expect("channel")
}

async fn wait_endpoints(channel: &Channel, n: usize) {
    let what = format!("{n} endpoints");
    eventually(&what, Duration::from_secs(20), async || {
        channel.endpoints().len() == n
    })
    .await;
}

async fn discovery() -> (DiscoveryServer, String) {
    let registry = DiscoveryServer::start(Registry::builder().env("dev"))
        .await
        .expect("discovery registry");
    let url = format!(
        "discovery://{}/demo.greeter?env=dev&self_discovery=false",
        registry.addr()
    );
    (registry, url)
}

/// Three greeter servers (`greeter-1` … `greeter-3`), each registered at `url`; keep the
/// registrars alive as long as the servers should stay registered.
async fn three_registered(url: &str) -> (Vec<TestServer>, Vec<Box<dyn sdkit::Registrar>>) {
    let servers: Vec<TestServer> = (1..=3)
        .map(|i| TestServer::start(&format!("greeter-{i}")))
        .collect();
    let mut registrars = Vec::new();
    for s in &servers {
        registrars.push(register(url, &s.name, s.addr).await);
    }
    (servers, registrars)
}

/// `calls` greetings from `workers` concurrent callers; the answers per server, and failures.
async fn traffic(
    channel: &Channel,
    workers: usize,
    calls: usize,
) -> (BTreeMap<String, usize>, Vec<String>) {
    let mut tasks = Vec::new();
    for w in 0..workers {
        let mut client = GreeterClient::new(channel.clone());
        let n = calls / workers + usize::from(w < calls % workers);
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::with_capacity(n);
            for _ in 0..n {
                answers.push(hello(&mut client).await.map_err(|s| s.to_string()));
            }
            answers
        }));
    }
    let mut spread = BTreeMap::new();
    let mut failures = Vec::new();
    for task in tasks {
        for answer in task.await.expect("worker") {
            match answer {
                Ok(server) => *spread.entry(server).or_insert(0) += 1,
                Err(e) => failures.push(e),
            }
        }
    }
    (spread, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_3000_rpcs_evenly_over_discovery() {
    let (_registry, url) = discovery().await;
    let (servers, _registrars) = three_registered(&url).await;
    let channel = channel(&url, Config::default().with_lb("round_robin"));
    wait_endpoints(&channel, 3).await;
    let (spread, failures) = traffic(&channel, 16, 3000).await;
    assert!(failures.is_empty(), "failures: {failures:?}");
    assert_eq!(spread.len(), 3, "{spread:?}");
    for (server, n) in &spread {
        assert!(
            (900..=1100).contains(n),
            "{server} served {n} of 3000 (±10 % of 1000): {spread:?}"
        );
    }
    for s in &servers {
        assert_eq!(
            s.served() as usize,
            spread[&s.name],
            "server-side count of {}",
            s.name
        );
    }
}

/// One greeting with `user` in the `x-user` header (when given) and `hash` as the request's
/// [`RequestHash`] (when given); the server that answered.
async fn hello_as(
    client: &mut GreeterClient<Channel>,
    user: Option<&str>,
    hash: Option<RequestHash>,
) -> String {
    let mut request = tonic::Request::new(HelloRequest {
        name: "sdkit".into(),
    });
    if let Some(user) = user {
        request
            .metadata_mut()
            .insert("x-user", user.parse().expect("ASCII"));
    }
    if let Some(hash) = hash {
        request.extensions_mut().insert(hash);
    }
    client
        .say_hello(request)
        .await
        .expect("call")
        .into_inner()
        .server
}

/// Consistent hashing through a channel: with gRFC A76's `requestHashHeader` every call of one
/// user reaches one server and the users spread over all three; a caller's `RequestHash` does
/// the same; calls without a key spread over the servers (a random hash each). Also through
/// `Config::with_request_hash_header` and sdkit's `maglev`; a malformed header name is refused
/// when the channel is built.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_hash_keeps_each_key_on_one_server_over_discovery() {
    let (_registry, url) = discovery().await;
    let (_servers, _registrars) = three_registered(&url).await;
    let configs = [
        Config::default().with_service_config(
            r#"{"loadBalancingConfig":[{"ring_hash_experimental":{"requestHashHeader":"x-user"}}]}"#,
        ),
        Config::default()
            .with_lb("maglev")
            .with_request_hash_header("x-user"),
    ];
    for config in configs {
        let what = format!("{config:?}");
        let channel = channel(&url, config);
        wait_endpoints(&channel, 3).await;
        let mut client = GreeterClient::new(channel.clone());
        let mut by_user: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for round in 0..5 {
            for user in 0..30 {
                let user = format!("user-{user}");
                let hash = (round % 2 == 1).then(|| RequestHash::of_key(format!("key-{user}")));
                let server = if hash.is_some() {
                    // The extension alone (no header): keyed by its own value.
                    hello_as(&mut client, None, hash).await
                } else {
                    hello_as(&mut client, Some(&user), None).await
                };
                let key = if hash.is_some() {
                    format!("key-{user}")
                } else {
                    user
                };
                *by_user.entry(key).or_default().entry(server).or_default() += 1;
            }
        }
        for (key, servers) in &by_user {
            assert_eq!(servers.len(), 1, "{what}: {key} reached {servers:?}");
        }
        let used: std::collections::BTreeSet<&String> =
            by_user.values().flat_map(|s| s.keys()).collect();
        assert_eq!(
            used.len(),
            3,
            "{what}: 60 keys reach every server: {by_user:?}"
        );
        // No key: a random hash per call.
        let mut unkeyed = BTreeMap::new();
        for _ in 0..60 {
            *unkeyed
                .entry(hello_as(&mut client, None, None).await)
                .or_insert(0) += 1;
        }
        assert!(
            unkeyed.len() >= 2,
            "{what}: calls without a key spread: {unkeyed:?}"
        );
    }
    let target: Target = url.parse().expect("target");
    let error = Channel::owning(
        target.instancer().expect("instancer"),
        Config::default()
            .with_lb("ring_hash")
            .with_request_hash_header("X-User"),
    )
    .expect_err("an uppercase header name is refused");
    assert!(error.to_string().contains("request_hash_header"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pick_first_sticks_to_the_first_and_fails_over_over_etcd() {
    let etcd = EtcdCluster::single().expect("etcd");
    let url = format!("etcd://{}/services/greeter", etcd.client_addr(0));
    let mut first = TestServer::start("greeter-1");
    let second = TestServer::start("greeter-2");
    let _r1 = register(&url, "greeter-1", first.addr).await;
    let _r2 = register(&url, "greeter-2", second.addr).await;
    let channel = channel(
        &url,
        Config::default().with_service_config(r#"{"loadBalancingConfig":[{"pick_first":{}}]}"#),
    );
    wait_endpoints(&channel, 2).await;
    let (spread, failures) = traffic(&channel, 4, 200).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        spread.get("greeter-1"),
        Some(&200),
        "all on the first: {spread:?}"
    );

    first.kill();
    // Sequential calls; one may race the kill (the connection dies under it, no retry policy).
    let mut client = GreeterClient::new(channel.clone());
    let mut failed = 0;
    let mut answers = BTreeMap::new();
    for _ in 0..100 {
        match hello(&mut client).await {
            Ok(server) => *answers.entry(server).or_insert(0) += 1,
            Err(_) => failed += 1,
        }
    }
    assert!(
        failed <= 1,
        "{failed} calls failed after the kill: {answers:?}"
    );
    assert_eq!(
        answers.get("greeter-2").copied().unwrap_or(0) + failed,
        100,
        "all moved to the second: {answers:?}"
    );

    // The first comes back on its old port: pick_first stays where it is (sticky).
    let first_again = TestServer::start_with(
        "greeter-1",
        common::Options {
            addr: Some(first.addr),
            ..Default::default()
        },
    );
    let endpoint_ready = async || channel.endpoints().iter().all(|e| e.service().is_ready());
    eventually(
        "the first endpoint answers again",
        Duration::from_secs(20),
        endpoint_ready,
    )
    .await;
    let (spread, failures) = traffic(&channel, 2, 50).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        spread.get("greeter-2"),
        Some(&50),
        "sticky on the second: {spread:?}"
    );
    assert_eq!(first_again.served(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_traffic_costs_no_rpc_with_a_retry_policy() {
    let (_registry, url) = discovery().await;
    let (mut servers, _registrars) = three_registered(&url).await;
    let channel = channel(
        &url,
        Config::default().with_service_config(RETRY_ON_UNAVAILABLE),
    );
    wait_endpoints(&channel, 3).await;
    let traffic = {
        let channel = channel.clone();
        tokio::spawn(async move { traffic(&channel, 8, 3000).await })
    };
    let total = || servers.iter().map(TestServer::served).sum::<u64>();
    eventually("1000 calls served", Duration::from_secs(30), async || {
        total() >= 1000
    })
    .await;
    // Crashed, not deregistered: the registry keeps listing it.
    servers[1].kill();
    let (spread, failures) = traffic.await.expect("traffic");
    assert!(
        failures.is_empty(),
        "{} failed RPCs: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(spread.values().sum::<usize>(), 3000);
    assert_eq!(channel.endpoints().len(), 3, "still registered");
}

async fn joins_within_a_second(url: &str) {
    let first = TestServer::start("greeter-1");
    let second = TestServer::start("greeter-2");
    let _r1 = register(url, "greeter-1", first.addr).await;
    let _r2 = register(url, "greeter-2", second.addr).await;
    let channel = channel(url, Config::default());
    wait_endpoints(&channel, 2).await;
    let stop = tokio_util_stop();
    let background = {
        let channel = channel.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut client = GreeterClient::new(channel);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = hello(&mut client).await;
            }
        })
    };
    let third = TestServer::start("greeter-3");
    let _r3 = register(url, "greeter-3", third.addr).await;
    let registered = Instant::now();
    eventually(
        "the new server gets traffic",
        Duration::from_secs(10),
        async || third.served() > 0,
    )
    .await;
    let took = registered.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    background.await.expect("traffic");
    assert!(
        took < Duration::from_secs(1),
        "{url}: first call on the new server {took:?} after it registered"
    );
}

fn tokio_util_stop() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_server_gets_traffic_within_a_second_over_discovery() {
    let (_registry, url) = discovery().await;
    joins_within_a_second(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_server_gets_traffic_within_a_second_over_etcd() {
    let etcd = EtcdCluster::single().expect("etcd");
    joins_within_a_second(&format!("etcd://{}/services/greeter", etcd.client_addr(0))).await;
}
