//! Active health checks against real loopback servers: TCP connect, HTTP GET with expected
//! status (garbage and oversized answers rejected), the checker taking an unhealthy endpoint out
//! of round-robin and back, health kept across registry updates; the threshold state machine
//! over random sequences.

mod support;

use std::time::Duration;

use proptest::prelude::*;
use sdkit_core::health::{Check, HealthChecker, HealthConfig, HealthStatus, HttpCheck, TcpCheck};
use sdkit_core::lb::{Balancer, RoundRobin};
use sdkit_core::{EndpointSet, Endpointer, Instance, InstanceCache};
use support::http::{Mode, TestServer};
use support::wait::wait_until;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// A port nobody listens on (bound, then closed).
async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    addr
}

/// A server that answers every connection with `reply` and closes it.
async fn raw_server(reply: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(reply).await;
            let _ = stream.shutdown().await;
        }
    });
    addr
}

fn at(addr: impl Into<String>) -> Instance {
    Instance::from_addr(addr.into())
}

#[tokio::test]
async fn tcp_check_passes_when_a_connection_opens() {
    let server = TestServer::start(Mode::Ok).await;
    assert!(TcpCheck.check(&at(server.addr.to_string())).await.is_ok());
    assert!(TcpCheck.check(&at(closed_port().await)).await.is_err());
}

#[tokio::test]
async fn http_check_expects_the_status() {
    let ok = TestServer::start(Mode::Ok).await;
    let unavailable = TestServer::start(Mode::Unavailable).await;
    let check = HttpCheck::new("/healthz");
    check.check(&at(ok.addr.to_string())).await.unwrap();
    let error = check
        .check(&at(unavailable.addr.to_string()))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("503"), "{error}");
    HttpCheck::new("/")
        .with_expected_status(503)
        .check(&at(unavailable.addr.to_string()))
        .await
        .unwrap();
    assert!(check.check(&at(closed_port().await)).await.is_err());
}

#[tokio::test]
async fn http_check_rejects_garbage_and_endless_lines() {
    let check = HttpCheck::new("/");
    let ssh = raw_server(b"SSH-2.0-OpenSSH_9.6\r\n").await;
    assert!(check.check(&at(ssh)).await.is_err());
    let silent = raw_server(b"").await;
    assert!(check.check(&at(silent)).await.is_err());
    static LONG: [u8; 4096] = [b'x'; 4096];
    let endless = raw_server(&LONG).await;
    let error = check.check(&at(endless)).await.unwrap_err();
    assert!(error.to_string().contains("1 KiB"), "{error}");
}

/// Polls until `cond` holds, within 20 s (generous for a loaded machine).
async fn until(what: &str, cond: impl Fn() -> bool) {
    wait_until(Duration::from_secs(20), what, cond).await;
}

fn fast() -> HealthConfig {
    HealthConfig::default()
        .with_interval(Duration::from_millis(20))
        .with_timeout(Duration::from_millis(500))
        .with_unhealthy_threshold(2)
        .with_healthy_threshold(2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_endpoint_leaves_round_robin_and_comes_back() {
    let servers = [
        TestServer::start(Mode::Ok).await,
        TestServer::start(Mode::Ok).await,
        TestServer::start(Mode::Ok).await,
    ];
    let set = EndpointSet::fixed(
        servers
            .iter()
            .enumerate()
            .map(|(i, s)| (Instance::new(format!("i{i}"), s.addr.to_string()), i)),
    );
    let checker = HealthChecker::spawn(&set, HttpCheck::new("/health"), fast());
    until("every endpoint checked", || checker.statuses().len() == 3).await;
    servers[1].set_mode(Mode::Unavailable);
    until("i1 unhealthy", || checker.is_healthy("i1") == Some(false)).await;
    assert!(!set.load().get(1).unwrap().state().is_healthy());
    let rr = RoundRobin::new(set.clone());
    for _ in 0..30 {
        assert_ne!(rr.pick().unwrap(), 1, "unhealthy endpoints are skipped");
    }
    servers[1].set_mode(Mode::Ok);
    until("i1 healthy again", || {
        checker.is_healthy("i1") == Some(true)
    })
    .await;
    assert!(set.load().get(1).unwrap().state().is_ready());
    assert!((0..6).any(|_| rr.pick().unwrap() == 1));

    // Dropping the checker leaves no endpoint marked unhealthy.
    servers[2].set_mode(Mode::Unavailable);
    until("i2 unhealthy", || checker.is_healthy("i2") == Some(false)).await;
    drop(checker);
    assert!(set.load().iter().all(|e| e.state().is_healthy()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_kept_by_identity_across_registry_updates() {
    let good = TestServer::start(Mode::Ok).await;
    let down = closed_port().await;
    let source = InstanceCache::new();
    source.update(vec![
        Instance::new("good", good.addr.to_string()),
        Instance::new("down", down.clone()),
    ]);
    let endpointer = Endpointer::new(&source, |i: &Instance| {
        Ok::<_, sdkit_core::BoxError>(i.id().to_owned())
    });
    endpointer.ready(Duration::from_secs(5)).await.unwrap();
    let set = endpointer.endpoint_set();
    let checker = HealthChecker::spawn(&set, TcpCheck, fast());
    until("down unhealthy", || {
        checker.is_healthy("down") == Some(false)
    })
    .await;
    let v = set.version();
    let other = TestServer::start(Mode::Ok).await;
    source.update(vec![
        Instance::new("good", good.addr.to_string()),
        Instance::new("down", down),
        Instance::new("other", other.addr.to_string()),
    ]);
    set.changed_since(v).await;
    // Unchanged identity: still unhealthy right after the update, not reset to healthy.
    let endpoints = set.load();
    let down_state = endpoints
        .iter()
        .find(|e| e.instance().id() == "down")
        .unwrap();
    assert!(!down_state.state().is_healthy());
    until("the new instance checked", || {
        checker.is_healthy("other") == Some(true)
    })
    .await;
    assert_eq!(checker.is_healthy("down"), Some(false));
}

proptest! {
    /// Health flips exactly after `threshold` contrary results in a row, never otherwise.
    #[test]
    fn health_status_follows_the_thresholds(
        unhealthy in 1u32..5,
        healthy in 1u32..5,
        results in proptest::collection::vec(any::<bool>(), 1..200),
    ) {
        let config = HealthConfig::default()
            .with_unhealthy_threshold(unhealthy)
            .with_healthy_threshold(healthy);
        let mut status = HealthStatus::new();
        let (mut model, mut streak) = (true, 0u32);
        for passed in results {
            let change = status.observe(passed, &config);
            if passed == model {
                streak = 0;
                prop_assert_eq!(change, None);
            } else {
                streak += 1;
                let needed = if model { unhealthy } else { healthy };
                if streak == needed {
                    model = passed;
                    streak = 0;
                    prop_assert_eq!(change, Some(passed));
                } else {
                    prop_assert_eq!(change, None);
                }
            }
            prop_assert_eq!(status.is_healthy(), model);
        }
    }
}
