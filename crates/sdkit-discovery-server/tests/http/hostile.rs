//! Hostile single requests: forged timestamps, hijacked records, the server's own record,
//! oversized merges and answers, and access control (token, content type, cross-site
//! writes, DNS rebinding). Issue #14.

use crate::common::*;
use hyper::Method;
use sdkit_discovery_server::{Limits, Token};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

const FORM: &str = "application/x-www-form-urlencoded";

fn reg(app: &str, host: &str, extra: &str) -> String {
    format!(
        "zone={ZONE}&env={ENV}&appid={app}&hostname={host}&status=1&addrs=http://127.0.0.1:2{extra}"
    )
}

/// The issue's repro: a cancel carrying `latest_timestamp = i64::MAX` used to pin the app's
/// cursor there, and no later change reached any watcher.
#[tokio::test]
async fn a_forged_cancel_cursor_does_not_freeze_the_app() {
    let s = TestServer::start(builder()).await;
    s.register(APP, ZONE, "h1").await;
    s.register(APP, ZONE, "h2").await;
    let v = s
        .post(
            "/discovery/cancel",
            &format!(
                "zone={ZONE}&env={ENV}&appid={APP}&hostname=h2&latest_timestamp={}",
                i64::MAX
            ),
        )
        .await;
    assert_eq!(v["code"], 0);
    let cursor = s.cursor(APP).await;
    assert!(
        cursor < i64::MAX / 2,
        "cursor follows the server's clock: {cursor}"
    );
    let url = format!("/discovery/poll?env={ENV}&hostname=w&appid={APP}&latest_timestamp={cursor}");
    let (answer, ()) = tokio::join!(
        async { tokio::time::timeout(Duration::from_secs(1), s.get(&url)).await },
        async {
            s.parked(1).await;
            s.register(APP, ZONE, "h3").await;
        }
    );
    let v = answer.expect("the poll is answered within 1 s of the register");
    assert_eq!(v["code"], 0);
    assert_eq!(hosts(&v["data"], ZONE), ["h1", "h3"]);
    // The same through polls, from the forged cursor itself: answered at once.
    let v = s
        .get(&format!(
            "/discovery/polls?env={ENV}&hostname=w&appid={APP}&latest_timestamp={}",
            i64::MAX
        ))
        .await;
    assert_eq!(
        v["code"], 0,
        "a cursor this node never issued resynchronises: {v}"
    );
    s.stop().await;
}

/// Client timestamps are ignored: forged `dirty_timestamp` / `latest_timestamp` /
/// `set_timestamp` move nothing beyond the server's clock, and a hijacked record with a
/// far-future dirty timestamp loses to the owner's next registration.
#[tokio::test]
async fn client_timestamps_are_ignored_and_hijacks_do_not_stick() {
    let s = TestServer::start(builder()).await;
    let before = sdkit_now();
    s.register(APP, ZONE, "h1").await;
    let evil = reg(
        APP,
        "h1",
        &format!(
            "&addrs=http://evil:1&dirty_timestamp={max}&latest_timestamp={max}&replication=true",
            max = i64::MAX
        ),
    );
    assert_eq!(s.post("/discovery/register", &evil).await["code"], 0);
    let set = format!(
        "zone={ZONE}&env={ENV}&appid={APP}&hostname=h1&status=1&set_timestamp={}",
        i64::MAX - 1
    );
    assert_eq!(s.post("/discovery/set", &set).await["code"], 0);
    // The owner registers again: its record wins.
    s.register(APP, ZONE, "h1").await;
    let v = s
        .get(&format!("/discovery/fetch?env={ENV}&appid={APP}&status=3"))
        .await;
    let ins = &v["data"]["instances"][ZONE][0];
    assert_eq!(ins["addrs"], serde_json::json!(["grpc://127.0.0.1:8080"]));
    let ceiling = sdkit_now() + 1_000_000_000;
    for field in ["dirty_timestamp", "latest_timestamp", "up_timestamp"] {
        let t = ins[field].as_i64().unwrap();
        assert!(t >= before && t <= ceiling, "{field} = {t}");
    }
    let cursor = v["data"]["latest_timestamp"].as_i64().unwrap();
    assert!(cursor <= ceiling, "cursor {cursor}");
    // A renew claiming replication is a plain renew for a client (no -409/-404 games).
    let v = s
        .post(
            "/discovery/renew",
            &format!(
                "zone={ZONE}&env={ENV}&appid={APP}&hostname=h1&replication=true&dirty_timestamp={}",
                i64::MAX
            ),
        )
        .await;
    assert_eq!(v["code"], 0);
    s.stop().await;
}

fn sdkit_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Nobody but the server writes its own `infra.discovery` record.
#[tokio::test]
async fn the_servers_own_record_is_not_writable() {
    let s = TestServer::start(builder().hostname("disco-1")).await;
    let own = format!("zone={ZONE}&env={ENV}&appid=infra.discovery&hostname=disco-1");
    for (path, form) in [
        (
            "/discovery/register",
            format!("{own}&status=1&addrs=http://evil:1"),
        ),
        ("/discovery/cancel", own.clone()),
        ("/discovery/set", format!("{own}&status=2")),
        ("/discovery/renew", own.clone()),
    ] {
        let v = s.post(path, &form).await;
        assert_eq!(v["code"], -403, "{path}: {v}");
    }
    let v = s
        .get(&format!(
            "/discovery/fetch?env={ENV}&appid=infra.discovery&status=3"
        ))
        .await;
    let ins = &v["data"]["instances"][ZONE][0];
    assert_eq!(ins["hostname"], "disco-1");
    assert_eq!(ins["status"], 1);
    assert_eq!(ins["addrs"][0], format!("http://{}", s.addr));
    s.stop().await;
}

/// `set` merges metadata within the register limits (keys and bytes), all or nothing.
#[tokio::test]
async fn set_metadata_merges_are_bounded() {
    let limits = Limits {
        max_metadata_keys: 4,
        ..Limits::default()
    };
    let s = TestServer::start(builder().limits(limits)).await;
    s.register(APP, ZONE, "h1").await;
    let set = |meta: &str| {
        format!(
            "zone={ZONE}&env={ENV}&appid={APP}&hostname=h1&metadata={}",
            urlencode(meta)
        )
    };
    for i in 0..4 {
        let v = s
            .post("/discovery/set", &set(&format!(r#"{{"k{i}":"v"}}"#)))
            .await;
        assert_eq!(v["code"], 0, "{v}");
    }
    let v = s.post("/discovery/set", &set(r#"{"k9":"v"}"#)).await;
    assert_eq!(v["code"], -400);
    assert!(v["message"].as_str().unwrap().contains("limit 4"), "{v}");
    // Overwriting an existing key still fits.
    assert_eq!(
        s.post("/discovery/set", &set(r#"{"k0":"w"}"#)).await["code"],
        0
    );
    // Bytes: many sets of large values cannot grow the record past max_metadata_len.
    let big = "x".repeat(1500);
    let mut refused = false;
    for i in 0..4 {
        let v = s
            .post("/discovery/set", &set(&format!(r#"{{"k{i}":"{big}"}}"#)))
            .await;
        if v["code"] == -400 {
            assert!(v["message"].as_str().unwrap().contains("bytes"), "{v}");
            refused = true;
        }
    }
    assert!(refused, "4 × 1500 bytes pass the 4096-byte limit");
    let v = s
        .get(&format!("/discovery/fetch?env={ENV}&appid={APP}&status=3"))
        .await;
    let meta = serde_json::to_string(&v["data"]["instances"][ZONE][0]["metadata"]).unwrap();
    assert!(meta.len() <= 4096, "{} bytes", meta.len());
    // Register is bounded by the same key count.
    let many: String = (0..5)
        .map(|i| format!(r#""m{i}":"v""#))
        .collect::<Vec<_>>()
        .join(",");
    let v = s
        .post(
            "/discovery/register",
            &reg(
                APP,
                "h2",
                &format!("&metadata={}", urlencode(&format!("{{{many}}}"))),
            ),
        )
        .await;
    assert_eq!(v["code"], -400);
    s.stop().await;
}

/// `fetchs` and `fetch/all` answers are capped (-509 naming the limit), and `fetch/all` is
/// serialised once for concurrent callers.
#[tokio::test]
async fn large_answers_are_capped() {
    let limits = Limits {
        max_answer_bytes: 2000,
        ..Limits::default()
    };
    let s = TestServer::start(builder().limits(limits)).await;
    s.register(APP, ZONE, "h1").await;
    let v = s.get("/discovery/fetch/all").await;
    assert_eq!(v["code"], 0);
    assert_eq!(v["data"][APP][0]["hostname"], "h1");
    let v = s
        .get(&format!(
            "/discovery/fetchs?env={ENV}&appid={APP}&appid=nope&status=3"
        ))
        .await;
    assert_eq!(v["code"], 0);
    assert_eq!(hosts(&v["data"][APP], ZONE), ["h1"]);
    for i in 2..12 {
        s.register(APP, ZONE, &format!("h{i}")).await;
    }
    for path in [
        "/discovery/fetch/all".to_owned(),
        format!("/discovery/fetchs?env={ENV}&appid={APP}&status=3"),
    ] {
        // fetch/all may serve the previous answer for up to a second: wait for the new one.
        eventually("a capped answer", || async {
            let v = s.get(&path).await;
            v["code"] == -509 && v["message"].as_str().unwrap().contains("2000 bytes")
        })
        .await;
    }
    // The single fetch is not capped by this limit.
    assert!(s.cursor(APP).await > 0);
    s.stop().await;
}

/// Writes need the bearer token when one is set; reads too with `token_reads`.
#[tokio::test]
async fn the_token_guards_writes_and_optionally_reads() {
    let s = TestServer::start(builder().token(Token::new("s3cret"))).await;
    let form = reg(APP, "h1", "");
    for auth in [
        None,
        Some("Bearer nope"),
        Some("Basic s3cret"),
        Some("Bearer s3cre"),
    ] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", *a)).collect();
        let a = s
            .request(
                Method::POST,
                "/discovery/register",
                Some(FORM),
                &form,
                &headers,
            )
            .await;
        assert_eq!(a.status, 401, "{auth:?}");
        assert_eq!(a.json()["code"], -401);
        assert_eq!(a.headers["www-authenticate"], "Bearer");
    }
    let a = s
        .request(
            Method::POST,
            "/discovery/register",
            Some(FORM),
            &form,
            &[("authorization", "Bearer s3cret")],
        )
        .await;
    assert_eq!(a.json()["code"], 0);
    // Reads stay open.
    assert!(s.cursor(APP).await > 0);
    s.stop().await;

    let s = TestServer::start(builder().token(Token::new("s3cret")).token_reads(true)).await;
    let url = format!("/discovery/fetch?env={ENV}&appid=infra.discovery&status=1");
    let a = s.request(Method::GET, &url, None, "", &[]).await;
    assert_eq!(a.status, 401);
    let a = s
        .request(
            Method::GET,
            &url,
            None,
            "",
            &[("authorization", "Bearer s3cret")],
        )
        .await;
    assert_eq!(a.json()["code"], 0);
    s.stop().await;
    assert_eq!(format!("{:?}", Token::new("s3cret")), "Token(<redacted>)");
}

/// POST bodies must be urlencoded; browsers' cross-site writes are refused; a POST with
/// its parameters in the query string and no body (kratos v2) still works.
#[tokio::test]
async fn browser_writes_are_refused() {
    let s = TestServer::start(builder()).await;
    let form = reg(APP, "h1", "");
    let a = s
        .request(
            Method::POST,
            "/discovery/register",
            Some("text/plain"),
            &form,
            &[],
        )
        .await;
    assert_eq!(a.status, 415);
    assert_eq!(a.json()["code"], -400);
    let a = s
        .request(
            Method::POST,
            "/discovery/register",
            Some(FORM),
            &form,
            &[("origin", "http://evil.example")],
        )
        .await;
    assert_eq!(a.status, 403);
    let a = s
        .request(
            Method::POST,
            "/discovery/register",
            Some(FORM),
            &form,
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(a.status, 403);
    let v = s
        .get(&format!("/discovery/fetch?env={ENV}&appid={APP}&status=3"))
        .await;
    assert_eq!(v["code"], -404, "none of these registered");
    let a = s
        .request(
            Method::POST,
            &format!("/discovery/register?{form}"),
            None,
            "",
            &[],
        )
        .await;
    assert_eq!(a.json()["code"], 0, "{}", a.text());
    s.stop().await;
}

/// On a loopback listener the Host header must name a loopback host (DNS rebinding).
#[tokio::test]
async fn a_rebound_host_name_is_refused_on_loopback() {
    let s = TestServer::start(builder()).await;
    for (host, ok) in [
        ("evil.example", false),
        ("evil.example:7171", false),
        ("localhost", true),
        ("127.0.0.1", true),
        ("[::1]:80", true),
    ] {
        let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        let req = format!(
            "GET /discovery/fetch?env={ENV}&appid=infra.discovery&status=1 HTTP/1.1\r\n\
             Host: {host}\r\nConnection: close\r\n\r\n"
        );
        conn.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        conn.read_to_string(&mut out).await.unwrap();
        if ok {
            assert!(out.starts_with("HTTP/1.1 200"), "{host}: {out}");
        } else {
            assert!(out.starts_with("HTTP/1.1 403"), "{host}: {out}");
            assert!(out.contains("loopback host"), "{out}");
        }
    }
    s.stop().await;
}

/// One client renewing in a loop does not hold self-preservation off while the other
/// instances are silent: the lease check still reports it active.
#[tokio::test]
async fn a_renew_loop_does_not_hold_self_preservation_off() {
    let lease = sdkit_discovery_server::Lease {
        evict_interval: Duration::from_millis(400),
        renew_interval: Duration::from_millis(200),
        evict_after: Duration::from_secs(600),
        ..Default::default()
    };
    let s = TestServer::start(builder().lease(lease)).await;
    for i in 0..10 {
        s.register(APP, ZONE, &format!("h{i}")).await;
    }
    let renew = format!("zone={ZONE}&env={ENV}&appid={APP}&hostname=h0");
    let deadline = Instant::now() + EVENTUALLY;
    let checks = s.handle.stats().lease_checks;
    // Renew in a loop across at least two full lease windows.
    while s.handle.stats().lease_checks < checks + 3 {
        assert_eq!(s.post("/discovery/renew", &renew).await["code"], 0);
        assert!(Instant::now() < deadline, "lease checks did not run");
    }
    assert!(
        s.handle.stats().self_preservation,
        "1 of 10 instances renewing (in a loop) is not a healthy fleet"
    );
    s.stop().await;
}
