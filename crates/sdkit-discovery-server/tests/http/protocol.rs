//! Transport conventions: routing, methods, form merging, envelope shapes, exact timestamps.

use crate::common::*;
use hyper::Method;

#[tokio::test]
async fn wrong_method_is_405_and_unknown_path_404() {
    let s = TestServer::start(builder()).await;
    let a = s
        .request(Method::GET, "/discovery/register", None, "", &[])
        .await;
    assert_eq!(a.status, 405);
    assert_eq!(a.headers["allow"], "POST");
    let a = s
        .request(Method::POST, "/discovery/fetch", None, "", &[])
        .await;
    assert_eq!(a.status, 405);
    let a = s
        .request(Method::GET, "/discovery/nothing", None, "", &[])
        .await;
    assert_eq!(a.status, 404);
    let a = s.request(Method::GET, "/", None, "", &[]).await;
    assert_eq!(a.status, 404);
    s.stop().await;
}

/// Query string and urlencoded body merge; kratos v2 sends POST parameters in the query.
#[tokio::test]
async fn query_and_body_merge() {
    let s = TestServer::start(builder()).await;
    let a = s
        .request(
            Method::POST,
            &format!("/discovery/register?zone={ZONE}&env={ENV}&addrs=http://q:1"),
            Some("application/x-www-form-urlencoded"),
            &format!("appid={APP}&hostname=h1&status=1&addrs=grpc://b:2"),
            &[],
        )
        .await;
    assert_eq!(a.json()["code"], 0, "{}", a.text());
    let q = format!(
        "/discovery/register?zone={ZONE}&env={ENV}&appid={APP}&hostname=h2&status=1&addrs=grpc://c:3"
    );
    let a = s.request(Method::POST, &q, None, "", &[]).await;
    assert_eq!(a.json()["code"], 0);
    let v = s
        .get(&format!("/discovery/fetch?env={ENV}&appid={APP}&status=1"))
        .await;
    let list = &v["data"]["instances"][ZONE];
    assert_eq!(
        list[0]["addrs"],
        serde_json::json!(["grpc://b:2", "http://q:1"]),
        "body first, then query"
    );
    assert_eq!(list[1]["hostname"], "h2");
    s.stop().await;
}

#[tokio::test]
async fn envelope_shapes_and_header() {
    let s = TestServer::start(builder()).await;
    let a = s
        .request(
            Method::POST,
            "/discovery/register",
            Some("application/x-www-form-urlencoded"),
            &format!("zone={ZONE}&env={ENV}&appid={APP}&hostname=h1&status=1&addrs=grpc://a:1"),
            &[],
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.text(), r#"{"code":0,"message":"0","ttl":1}"#);
    assert_eq!(a.headers["kratos-status-code"], "0");
    assert!(
        a.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let a = s
        .request(
            Method::GET,
            &format!("/discovery/poll?env={ENV}&appid=nope&hostname=w"),
            None,
            "",
            &[],
        )
        .await;
    assert_eq!(a.text(), r#"{"code":-404,"message":"nope not found"}"#);
    assert_eq!(a.headers["kratos-status-code"], "-404");
    let a = s
        .request(
            Method::GET,
            &format!("/discovery/fetch?env={ENV}&appid={APP}"),
            None,
            "",
            &[],
        )
        .await;
    assert_eq!(a.status, 200);
    let v = a.json();
    assert_eq!(v["code"], -400);
    assert!(
        v["message"].as_str().unwrap().contains("status"),
        "names the field: {v}"
    );
    assert_eq!(v["ttl"], 1);
    s.stop().await;
}

/// Timestamps are i64 nanoseconds beyond 2^53 and are echoed byte-exact.
#[tokio::test]
async fn timestamps_are_exact() {
    // A peer's replication timestamps are kept (clients' are ignored, see `hostile.rs`).
    let s = TestServer::start(builder().trusted_peer(LOCALHOST)).await;
    let dirty = 1_525_948_301_833_084_711_i64;
    let v = s
        .post(
            "/discovery/register",
            &format!("zone={ZONE}&env={ENV}&appid={APP}&hostname=h1&status=1&addrs=grpc://a:1&dirty_timestamp={dirty}"),
        )
        .await;
    assert_eq!(v["code"], 0);
    let a = s
        .request(
            Method::POST,
            "/discovery/renew",
            Some("application/x-www-form-urlencoded"),
            &format!("zone={ZONE}&env={ENV}&appid={APP}&hostname=h1"),
            &[],
        )
        .await;
    assert!(
        a.text()
            .contains(r#""dirty_timestamp":1525948301833084711"#),
        "{}",
        a.text()
    );
    let now_ish = a.json()["data"]["reg_timestamp"].as_i64().unwrap();
    assert!(now_ish > 1_600_000_000_000_000_000, "UnixNano: {now_ish}");
    s.stop().await;
}

/// The polls miss list: `{"-404":[…]}` next to the changed apps.
#[tokio::test]
async fn polls_miss_list() {
    let s = TestServer::start(builder()).await;
    s.register(APP, ZONE, "h1").await;
    let v = s
        .get(&format!("/discovery/polls?env={ENV}&hostname=w&appid={APP}&appid=gone.app&latest_timestamp=0&latest_timestamp=0"))
        .await;
    assert_eq!(v["code"], 0);
    assert!(v.get("ttl").is_none(), "no ttl in polls: {v}");
    assert_eq!(v["error"], serde_json::json!({"-404": ["gone.app"]}));
    assert_eq!(v["data"].as_object().unwrap().len(), 1);
    let v = s
        .get(&format!(
            "/discovery/polls?env={ENV}&hostname=w&appid={APP}&appid=b&latest_timestamp=0"
        ))
        .await;
    assert_eq!(v["code"], -400, "appid and latest_timestamp counts differ");
    assert!(v["message"].as_str().unwrap().contains("latest_timestamp"));
    s.stop().await;
}

/// `infra.discovery` answers in every env a client asks in.
#[tokio::test]
async fn infra_discovery_in_every_env() {
    let s = TestServer::start(builder()).await;
    let addr = format!("http://{}", s.addr);
    let v = s
        .get("/discovery/fetch?env=prod&appid=infra.discovery&status=1")
        .await;
    assert_eq!(v["data"]["instances"][ZONE][0]["addrs"][0], addr);
    let v = s
        .get("/discovery/fetchs?env=uat&appid=infra.discovery&status=1")
        .await;
    assert_eq!(
        v["data"]["infra.discovery"]["instances"][ZONE][0]["addrs"][0],
        addr
    );
    let v = s
        .get("/discovery/polls?env=prod&hostname=w&appid=infra.discovery&latest_timestamp=0")
        .await;
    assert_eq!(v["code"], 0);
    assert_eq!(
        v["data"]["infra.discovery"]["instances"][ZONE][0]["addrs"][0],
        addr
    );
    s.stop().await;
}

/// `fetch` answers are serialised once per change and shared: every kind of change (renew,
/// set, register, cancel) is visible in the next `fetch`, for each status filter.
#[tokio::test]
async fn fetch_reflects_every_change_after_a_shared_answer() {
    let s = TestServer::start(builder()).await;
    s.register(APP, ZONE, "h1").await;
    let url = |status: u32| format!("/discovery/fetch?env={ENV}&appid={APP}&status={status}");
    let first = s.get(&url(1)).await;
    assert_eq!(first, s.get(&url(1)).await, "unchanged app, same answer");
    let renewed_at =
        |v: &serde_json::Value| v["data"]["instances"][ZONE][0]["renew_timestamp"].clone();
    let r = s
        .post(
            "/discovery/renew",
            &format!("zone={ZONE}&env={ENV}&appid={APP}&hostname=h1"),
        )
        .await;
    assert_eq!(r["code"], 0);
    let after_renew = s.get(&url(1)).await;
    assert_eq!(renewed_at(&after_renew), r["data"]["renew_timestamp"]);
    assert_ne!(renewed_at(&after_renew), renewed_at(&first));
    let v = s
        .post(
            "/discovery/set",
            &format!("zone={ZONE}&env={ENV}&appid={APP}&hostname=h1&status=2"),
        )
        .await;
    assert_eq!(v["code"], 0);
    assert_eq!(
        hosts(&s.get(&url(1)).await["data"], ZONE),
        Vec::<String>::new()
    );
    assert_eq!(hosts(&s.get(&url(2)).await["data"], ZONE), ["h1"]);
    s.register(APP, ZONE, "h2").await;
    assert_eq!(hosts(&s.get(&url(3)).await["data"], ZONE), ["h1", "h2"]);
    for h in ["h1", "h2"] {
        let v = s
            .post(
                "/discovery/cancel",
                &format!("zone={ZONE}&env={ENV}&appid={APP}&hostname={h}"),
            )
            .await;
        assert_eq!(v["code"], 0);
    }
    assert_eq!(s.get(&url(3)).await["code"], -404);
    s.register(APP, ZONE, "h3").await;
    assert_eq!(hosts(&s.get(&url(3)).await["data"], ZONE), ["h3"]);
    s.stop().await;
}
