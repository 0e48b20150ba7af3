//! Bad input and limits: every malformed request gets -400 naming the field, oversized
//! bodies are refused, capacities answer -509, nothing panics.

use crate::common::*;
use hyper::Method;
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestRunner};
use sdkit_discovery_server::proto::{Endpoint, FieldLimits, Form};
use sdkit_discovery_server::{Limits, fuzz};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn small_limits() -> Limits {
    Limits {
        max_body_bytes: 1024,
        ..Limits::default()
    }
}

async fn raw(s: &TestServer, request: &[u8]) -> String {
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    conn.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(EVENTUALLY, conn.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let s = TestServer::start(builder().limits(small_limits())).await;
    let big = format!(
        "zone={ZONE}&env={ENV}&appid={APP}&hostname=h&status=1&addrs=a&version={}",
        "v".repeat(2000)
    );
    let a = s
        .request(
            Method::POST,
            "/discovery/register",
            Some("application/x-www-form-urlencoded"),
            &big,
            &[],
        )
        .await;
    assert_eq!(a.status, 413);
    assert_eq!(a.json()["code"], -400);
    // Chunked, no Content-Length: cut off while reading.
    let chunk = "x".repeat(600);
    let req = format!(
        "POST /discovery/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{len:x}\r\n{chunk}\r\n{len:x}\r\n{chunk}\r\n0\r\n\r\n",
        len = chunk.len()
    );
    let answer = raw(&s, req.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    s.stop().await;
}

#[tokio::test]
async fn field_errors_name_the_field() {
    let s = TestServer::start(builder()).await;
    let ok = |appid: &str, host: &str, zone: &str, env: &str| {
        format!("zone={zone}&env={env}&appid={appid}&hostname={host}&status=1&addrs=grpc://a:1")
    };
    let long = |n: usize| "x".repeat(n);
    let cases = [
        (ok(&long(129), "h", ZONE, ENV), "appid"),
        (ok(APP, &long(256), ZONE, ENV), "hostname"),
        (ok(APP, "h", &long(65), ENV), "zone"),
        (ok(APP, "h", ZONE, &long(65)), "env"),
        (ok(APP, "h", "", ENV), "zone"),
        (
            format!("{}&metadata={}", ok(APP, "h", ZONE, ENV), "%7B%22a%22"),
            "metadata",
        ),
        (
            format!("{}&metadata=%5B1%5D", ok(APP, "h", ZONE, ENV)),
            "metadata",
        ),
        (
            format!("{}&metadata={}", ok(APP, "h", ZONE, ENV), long(5000)),
            "metadata",
        ),
        (
            format!(
                "{}{}",
                ok(APP, "h", ZONE, ENV),
                "&addrs=grpc://b:1".repeat(16)
            ),
            "addrs",
        ),
        (
            format!("{}&dirty_timestamp=12x", ok(APP, "h", ZONE, ENV)),
            "dirty_timestamp",
        ),
        (format!("{}&zo%zne=1", ok(APP, "h", ZONE, ENV)), "zo%zne"),
        (
            format!("zone={ZONE}&env={ENV}&appid={APP}&hostname=h&status=99999999999&addrs=a"),
            "status",
        ),
    ];
    for (form, field) in cases {
        let v = s.post("/discovery/register", &form).await;
        assert_eq!(v["code"], -400, "{field}: {v}");
        let message = v["message"].as_str().unwrap();
        assert!(
            message.contains(field),
            "message {message:?} should name {field}"
        );
    }
    let many = "&appid=a".repeat(FieldLimits::default().max_appids + 1);
    let v = s
        .get(&format!("/discovery/fetchs?env={ENV}&status=1{many}"))
        .await;
    assert_eq!(v["code"], -400);
    assert!(v["message"].as_str().unwrap().contains("appid"));
    let a = s
        .request(
            Method::POST,
            "/discovery/register",
            Some("application/json"),
            "{}",
            &[],
        )
        .await;
    assert_eq!(a.json()["code"], -400);
    s.stop().await;
}

#[tokio::test]
async fn capacity_limits_answer_509() {
    let limits = Limits {
        max_instances_per_app: 2,
        max_apps: 3,
        max_parked_polls: 1,
        ..Limits::default()
    };
    let s = TestServer::start(builder().limits(limits)).await;
    s.register(APP, ZONE, "h1").await;
    s.register(APP, ZONE, "h2").await;
    let reg = |app: &str, host: &str| {
        format!("zone={ZONE}&env={ENV}&appid={app}&hostname={host}&status=1&addrs=a")
    };
    let v = s.post("/discovery/register", &reg(APP, "h3")).await;
    assert_eq!(v["code"], -509);
    assert!(v["message"].as_str().unwrap().contains("instances"), "{v}");
    assert_eq!(
        s.post("/discovery/register", &reg(APP, "h1")).await["code"],
        0,
        "re-register is fine"
    );
    // Apps: infra.discovery + APP + one more = 3.
    assert_eq!(
        s.post("/discovery/register", &reg("second.app", "h1"))
            .await["code"],
        0
    );
    let v = s.post("/discovery/register", &reg("third.app", "h1")).await;
    assert_eq!(v["code"], -509);
    assert!(v["message"].as_str().unwrap().contains("apps"));
    // Parked polls: one parks, the next is refused.
    let cursor = s.cursor(APP).await;
    let url =
        format!("/discovery/polls?env={ENV}&hostname=w&appid={APP}&latest_timestamp={cursor}");
    let (first, ()) = tokio::join!(s.get(&url), async {
        s.parked(1).await;
        let v = s.get(&url).await;
        assert_eq!(v["code"], -509);
        assert!(v["message"].as_str().unwrap().contains("parked polls"));
        s.register(APP, ZONE, "h2").await;
    });
    assert_eq!(first["code"], 0);
    s.stop().await;
}

/// Garbage on the socket neither crashes the server nor affects other clients.
#[tokio::test]
async fn garbage_requests_are_survived() {
    let s = TestServer::start(builder()).await;
    for junk in [
        &b"\x00\x01\x02garbage\r\n\r\n"[..],
        b"GET /discovery/fetch?env=%ff%fe&appid=\xff HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        b"POST /discovery/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"GET /discovery/polls?env=e&hostname=h&appid=a HTTP/1.1\r\nHost: 127.0.0.1\r\nx1-bmspy-timeout: -5\r\nConnection: close\r\n\r\n",
    ] {
        let _ = raw(&s, junk).await;
    }
    let v = s
        .get(&format!(
            "/discovery/fetch?env={ENV}&appid=infra.discovery&status=1"
        ))
        .await;
    assert_eq!(v["code"], 0);
    s.stop().await;
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "zone",
            "env",
            "appid",
            "hostname",
            "status",
            "addrs",
            "metadata",
            "region",
            "version",
            "latest_timestamp",
            "dirty_timestamp",
            "replication",
            "set_timestamp",
            "from_zone",
        ])
        .prop_map(String::from),
        "\\PC{0,6}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,16}",
        any::<i64>().prop_map(|n| n.to_string()),
        (0u32..5).prop_map(|n| n.to_string()),
        Just("{\"weight\":\"10\",\"n\":1}".to_owned()),
        Just("http://a:1,grpc://b:2".to_owned()),
        Just("x".repeat(300)),
    ]
}

/// No input makes a handler panic, and every answer is a well-formed envelope.
#[test]
fn handlers_never_panic() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = builder().hold(Duration::from_millis(1)).build().unwrap();
    let mut runner = TestRunner::new(PropConfig {
        cases: 1000,
        ..PropConfig::default()
    });
    let strategy = (
        0..Endpoint::ALL.len(),
        prop::collection::vec((key(), value()), 0..24),
    );
    runner
        .run(&strategy, |(endpoint, pairs)| {
            let form: Form = pairs.into_iter().collect();
            let (status, body) = rt.block_on(fuzz::dispatch(
                &server,
                Endpoint::ALL[endpoint],
                &form,
                Some(Duration::ZERO),
            ));
            prop_assert_eq!(status, 200);
            let v: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(v["code"].is_i64());
            prop_assert!(v["message"].is_string());
            Ok(())
        })
        .unwrap();
}
