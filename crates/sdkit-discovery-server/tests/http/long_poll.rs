//! Long polls: wake-up, hold timeout, the `x1-bmspy-timeout` budget, early answers.

use crate::common::*;
use hyper::Method;
use std::time::Duration;
use tokio::time::Instant;

/// A parked poll is answered by a register well before its (long) hold.
#[tokio::test]
async fn register_wakes_parked_poll() {
    let s = TestServer::start(builder()).await;
    let url = format!("/discovery/polls?env={ENV}&hostname=w&appid={APP}&latest_timestamp=0");
    let started = Instant::now();
    let (v, ()) = tokio::join!(s.get(&url), async {
        s.parked(1).await;
        s.register(APP, ZONE, "h1").await;
    });
    assert_eq!(v["code"], 0);
    assert_eq!(hosts(&v["data"][APP], ZONE), ["h1"]);
    assert_eq!(v["error"], serde_json::json!({"-404": null}));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "answered by the change, not the hold"
    );
    s.stop().await;
}

/// With nothing changing, the hold ends with -304.
#[tokio::test]
async fn hold_timeout_answers_not_modified() {
    let s = TestServer::start(builder().hold(Duration::from_millis(300))).await;
    s.register(APP, ZONE, "h1").await;
    let cursor = s.cursor(APP).await;
    let started = Instant::now();
    let v = s
        .get(&format!(
            "/discovery/polls?env={ENV}&hostname=w&appid={APP}&latest_timestamp={cursor}"
        ))
        .await;
    assert_eq!(v, serde_json::json!({"code":-304,"message":"-304","ttl":1}));
    assert!(started.elapsed() >= Duration::from_millis(300));
    let v = s
        .get(&format!(
            "/discovery/poll?env={ENV}&hostname=w&appid={APP}&latest_timestamp={cursor}"
        ))
        .await;
    assert_eq!(v["code"], -304);
    assert_eq!(s.handle.stats().parked_polls, 0);
    s.stop().await;
}

/// `x1-bmspy-timeout` (minus 20 ms) caps the hold.
#[tokio::test]
async fn client_deadline_header_caps_hold() {
    let s = TestServer::start(builder().hold(Duration::from_secs(60))).await;
    let started = Instant::now();
    let url = format!("/discovery/polls?env={ENV}&hostname=w&appid=unknown.app&latest_timestamp=0");
    let a = s
        .request(Method::GET, &url, None, "", &[("x1-bmspy-timeout", "250")])
        .await;
    assert_eq!(a.json()["code"], -304);
    assert!(started.elapsed() < Duration::from_secs(30));
    s.stop().await;
}

/// Renew never wakes pollers; a WAITING instance is not in a poll answer.
#[tokio::test]
async fn renew_does_not_wake_and_polls_show_up_only() {
    let s = TestServer::start(builder().hold(Duration::from_secs(2))).await;
    s.register(APP, ZONE, "h1").await;
    let v = s
        .post(
            "/discovery/register",
            &format!("zone={ZONE}&env={ENV}&appid={APP}&hostname=h2&status=2&addrs=grpc://a:1"),
        )
        .await;
    assert_eq!(v["code"], 0);
    let cursor = s.cursor(APP).await;
    let url =
        format!("/discovery/polls?env={ENV}&hostname=w&appid={APP}&latest_timestamp={cursor}");
    let (v, ()) = tokio::join!(s.get(&url), async {
        s.parked(1).await;
        let r = s
            .post(
                "/discovery/renew",
                &format!("zone={ZONE}&env={ENV}&appid={APP}&hostname=h1"),
            )
            .await;
        assert_eq!(r["code"], 0);
    });
    assert_eq!(v["code"], -304, "renew is not a change");
    let v = s
        .get(&format!(
            "/discovery/polls?env={ENV}&hostname=w&appid={APP}&latest_timestamp=0"
        ))
        .await;
    assert_eq!(hosts(&v["data"][APP], ZONE), ["h1"], "UP only");
    s.stop().await;
}

/// Many parked polls on one app are all answered by one register.
#[tokio::test]
async fn many_parked_polls_all_answered() {
    let s = std::sync::Arc::new(TestServer::start(builder()).await);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = std::sync::Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.get(&format!(
                "/discovery/polls?env={ENV}&hostname=w{i}&appid={APP}&latest_timestamp=0"
            ))
            .await
        }));
    }
    s.parked(50).await;
    s.register(APP, ZONE, "h1").await;
    for t in tasks {
        let v = t.await.unwrap();
        assert_eq!(v["code"], 0);
    }
    match std::sync::Arc::try_unwrap(s) {
        Ok(s) => s.stop().await,
        Err(_) => panic!("server still shared"),
    }
}
