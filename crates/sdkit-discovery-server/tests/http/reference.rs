//! The reference's own server tests (discovery-protocol.md §7.1), as HTTP requests.

use crate::common::*;
use hyper::Method;

fn polls_url(appids: &[&str], cursors: &[i64], hostname: &str) -> String {
    let mut q = format!("/discovery/polls?env={ENV}&hostname={hostname}");
    for a in appids {
        q.push_str(&format!("&appid={a}"));
    }
    for c in cursors {
        q.push_str(&format!("&latest_timestamp={c}"));
    }
    q
}

/// TestReigster: N registered → fetch(status=3) returns N in zone sh0001.
#[tokio::test]
async fn register_then_fetch() {
    let s = TestServer::start(builder()).await;
    for h in ["h1", "h2", "h3"] {
        s.register(APP, ZONE, h).await;
    }
    let v = s
        .get(&format!("/discovery/fetch?env={ENV}&appid={APP}&status=3"))
        .await;
    assert_eq!(v["code"], 0);
    assert_eq!(hosts(&v["data"], ZONE), ["h1", "h2", "h3"]);
    let ins = &v["data"]["instances"][ZONE][0];
    assert_eq!(ins["appid"], APP);
    assert_eq!(ins["env"], ENV);
    assert_eq!(ins["region"], "sh");
    assert_eq!(ins["addrs"][0], "grpc://127.0.0.1:8080");
    assert_eq!(ins["status"], 1);
    s.stop().await;
}

/// TestDiscovery: polls at 0 → 2 instances; cancel one; polls with that cursor → 1, at once.
#[tokio::test]
async fn discovery_poll_cancel_poll() {
    let s = TestServer::start(builder()).await;
    s.register(APP, ZONE, "h1").await;
    s.register(APP, ZONE, "h2").await;
    let v = s
        .get(&format!("/discovery/fetch?env={ENV}&appid={APP}&status=3"))
        .await;
    assert_eq!(hosts(&v["data"], ZONE).len(), 2);
    let v = s.get(&polls_url(&[APP], &[0], "w")).await;
    assert_eq!(v["code"], 0);
    assert_eq!(hosts(&v["data"][APP], ZONE), ["h1", "h2"]);
    let cursor = v["data"][APP]["latest_timestamp"].as_i64().unwrap();
    let c = s
        .post(
            "/discovery/cancel",
            &format!("zone={ZONE}&env={ENV}&appid={APP}&hostname=h1"),
        )
        .await;
    assert_eq!(c["code"], 0);
    let v = s.get(&polls_url(&[APP], &[cursor], "w")).await;
    assert_eq!(v["code"], 0);
    assert_eq!(hosts(&v["data"][APP], ZONE), ["h2"]);
    assert!(v["data"][APP]["latest_timestamp"].as_i64().unwrap() > cursor);
    s.stop().await;
}

/// TestRenew (registry and service level): renew returns the instance; unknown → -404;
/// replication with an older dirty timestamp → -409 with the local copy; newer → -404.
#[tokio::test]
async fn renew_cases() {
    // The replication rules apply to configured peers only.
    let s = TestServer::start(builder().trusted_peer(LOCALHOST)).await;
    s.register(APP, ZONE, "h1").await;
    let before = s
        .get(&format!("/discovery/fetch?env={ENV}&appid={APP}&status=3"))
        .await;
    let before = &before["data"]["instances"][ZONE][0];
    let base = format!("zone={ZONE}&env={ENV}&appid={APP}&hostname=h1");
    let v = s.post("/discovery/renew", &base).await;
    assert_eq!(v["code"], 0);
    for field in [
        "hostname",
        "addrs",
        "reg_timestamp",
        "dirty_timestamp",
        "latest_timestamp",
        "metadata",
    ] {
        assert_eq!(
            v["data"][field], before[field],
            "{field} unchanged by renew"
        );
    }
    assert!(v["data"]["renew_timestamp"].as_i64() >= before["renew_timestamp"].as_i64());
    let v = s
        .post(
            "/discovery/renew",
            &format!("zone={ZONE}&env={ENV}&appid=nope&hostname=h1"),
        )
        .await;
    assert_eq!(
        v,
        serde_json::json!({"code":-404,"message":"-404","ttl":1,"data":null})
    );
    let v = s
        .post(
            "/discovery/renew",
            &format!("{base}&replication=true&dirty_timestamp=1"),
        )
        .await;
    assert_eq!(v["code"], -409);
    assert_eq!(v["data"]["hostname"], "h1");
    let v = s
        .post(
            "/discovery/renew",
            &format!("{base}&replication=true&dirty_timestamp={}", i64::MAX),
        )
        .await;
    assert_eq!(v["code"], -404);
    let dirty = before["dirty_timestamp"].as_i64().unwrap();
    let v = s
        .post(
            "/discovery/renew",
            &format!("{base}&replication=true&dirty_timestamp={dirty}"),
        )
        .await;
    assert_eq!(v["code"], 0);
    s.stop().await;
}

/// TestCancel: cancel ok; second cancel → -404; fetch → -404 (the app is gone).
#[tokio::test]
async fn cancel_twice_then_fetch() {
    let s = TestServer::start(builder()).await;
    s.register(APP, ZONE, "h1").await;
    let form = format!("zone={ZONE}&env={ENV}&appid={APP}&hostname=h1");
    assert_eq!(s.post("/discovery/cancel", &form).await["code"], 0);
    assert_eq!(s.post("/discovery/cancel", &form).await["code"], -404);
    let v = s
        .get(&format!("/discovery/fetch?env={ENV}&appid={APP}&status=3"))
        .await;
    assert_eq!(
        v,
        serde_json::json!({"code":-404,"message":"-404","ttl":1,"data":null})
    );
    s.stop().await;
}

/// TestFetchAll: the app is listed with its one instance (next to the server's own).
#[tokio::test]
async fn fetch_all() {
    let s = TestServer::start(builder()).await;
    s.register(APP, ZONE, "h1").await;
    let v = s.get("/discovery/fetch/all").await;
    assert_eq!(v["code"], 0);
    assert_eq!(v["data"][APP].as_array().unwrap().len(), 1);
    assert_eq!(v["data"]["infra.discovery"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"].as_object().unwrap().len(), 2);
    s.stop().await;
}

/// TestFetch / BenchmarkFetch: status=1 → 1 zone; status=2 with only UP instances → code 0
/// and an empty zone list.
#[tokio::test]
async fn fetch_status_filter() {
    let s = TestServer::start(builder()).await;
    s.register(APP, ZONE, "h1").await;
    let v = s
        .get(&format!("/discovery/fetch?env={ENV}&appid={APP}&status=1"))
        .await;
    assert_eq!(v["data"]["instances"].as_object().unwrap().len(), 1);
    let v = s
        .get(&format!("/discovery/fetch?env={ENV}&appid={APP}&status=2"))
        .await;
    assert_eq!(v["code"], 0);
    assert_eq!(v["data"]["instances"][ZONE], serde_json::json!([]));
    let v = s
        .get(&format!(
            "/discovery/fetch?env={ENV}&appid={APP}&status=1&zone=sh0002"
        ))
        .await;
    assert_eq!(v["code"], -404, "absent zone");
    s.stop().await;
}

/// TestPoll: `poll` without cursors answers at once with the zone.
#[tokio::test]
async fn poll_single_immediate() {
    let s = TestServer::start(builder()).await;
    s.register(APP, ZONE, "h1").await;
    let v = s
        .get(&format!("/discovery/poll?env={ENV}&appid={APP}&hostname=w"))
        .await;
    assert_eq!(v["code"], 0);
    assert_eq!(hosts(&v["data"], ZONE), ["h1"]);
    s.stop().await;
}

/// TestPolls: two appids at cursor 0 → both in the answer.
#[tokio::test]
async fn polls_two_apps() {
    let s = TestServer::start(builder()).await;
    s.register(APP, ZONE, "h1").await;
    s.register("main.arch.test2", ZONE, "h1").await;
    let v = s
        .get(&polls_url(&[APP, "main.arch.test2"], &[0, 0], "w"))
        .await;
    assert_eq!(v["code"], 0);
    assert_eq!(v["data"].as_object().unwrap().len(), 2);
    assert_eq!(v["error"], serde_json::json!({"-404": null}));
    s.stop().await;
}

/// TestPollsChan: two pollers with the same hostname, parked at the current cursors, are
/// both woken by a register with the changed app.
#[tokio::test]
async fn polls_same_hostname_both_woken() {
    let s = TestServer::start(builder()).await;
    s.register(APP, ZONE, "h1").await;
    s.register("main.arch.test2", ZONE, "h1").await;
    let (c1, c2) = (s.cursor(APP).await, s.cursor("main.arch.test2").await);
    let url = polls_url(&[APP, "main.arch.test2"], &[c1, c2], "same-host");
    let (a, b, ()) = tokio::join!(s.get(&url), s.get(&url), async {
        s.parked(2).await;
        s.register(APP, ZONE, "h2").await;
    });
    for v in [a, b] {
        assert_eq!(v["code"], 0);
        assert_eq!(
            v["data"].as_object().unwrap().len(),
            1,
            "only the changed app: {v}"
        );
        assert_eq!(hosts(&v["data"][APP], ZONE), ["h1", "h2"]);
    }
    s.stop().await;
}

/// TestBroadcast: a parked poll is woken by a register → 2 instances in sh0001.
#[tokio::test]
async fn broadcast_wakes_parked_poll() {
    let s = TestServer::start(builder()).await;
    s.register(APP, ZONE, "h1").await;
    let cursor = s.cursor(APP).await;
    let url = polls_url(&[APP], &[cursor], "w");
    let (v, ()) = tokio::join!(s.get(&url), async {
        s.parked(1).await;
        s.register(APP, ZONE, "h2").await;
    });
    assert_eq!(v["code"], 0);
    assert_eq!(hosts(&v["data"][APP], ZONE), ["h1", "h2"]);
    s.stop().await;
}

/// TestSet and service TestRegister: metadata is returned; set status; set merges metadata;
/// two hostnames with two metadata values.
#[tokio::test]
async fn set_status_and_metadata() {
    let s = TestServer::start(builder()).await;
    let meta = "%7B%22test%22%3A%22test%22%2C%22weight%22%3A%2210%22%7D"; // {"test":"test","weight":"10"}
    for h in ["h1", "h2"] {
        let v = s
            .post(
                "/discovery/register",
                &format!("zone={ZONE}&env={ENV}&appid={APP}&hostname={h}&status=2&addrs=grpc://1.1.1.1:1&metadata={meta}"),
            )
            .await;
        assert_eq!(v["code"], 0);
    }
    let fetch = format!("/discovery/fetch?env={ENV}&appid={APP}&status=3");
    let v = s.get(&fetch).await;
    assert_eq!(
        v["data"]["instances"][ZONE][0]["metadata"],
        serde_json::json!({"test":"test","weight":"10"})
    );
    let base = format!("zone={ZONE}&env={ENV}&appid={APP}");
    assert_eq!(
        s.post("/discovery/set", &format!("{base}&hostname=h1&status=1"))
            .await["code"],
        0
    );
    let v = s.get(&fetch).await;
    assert_eq!(v["data"]["instances"][ZONE][0]["status"], 1);
    let w11 = "%7B%22weight%22%3A%2211%22%7D";
    assert_eq!(
        s.post(
            "/discovery/set",
            &format!("{base}&hostname=h1&metadata={w11}")
        )
        .await["code"],
        0
    );
    let v = s.get(&fetch).await;
    assert_eq!(
        v["data"]["instances"][ZONE][0]["metadata"],
        serde_json::json!({"test":"test","weight":"11"}),
        "merge"
    );
    let (w12, w13) = (
        "%7B%22weight%22%3A%2212%22%7D",
        "%7B%22weight%22%3A%2213%22%7D",
    );
    let v = s
        .post(
            "/discovery/set",
            &format!("{base}&hostname=h1&hostname=h2&metadata={w12}&metadata={w13}"),
        )
        .await;
    assert_eq!(v["code"], 0);
    let v = s.get(&fetch).await;
    assert_eq!(v["data"]["instances"][ZONE][0]["metadata"]["weight"], "12");
    assert_eq!(v["data"]["instances"][ZONE][1]["metadata"]["weight"], "13");
    // Length mismatch and unknown hostnames are -400.
    assert_eq!(
        s.post(
            "/discovery/set",
            &format!("{base}&hostname=h1&hostname=h2&status=1")
        )
        .await["code"],
        -400
    );
    let v = s
        .post("/discovery/set", &format!("{base}&hostname=nope&status=1"))
        .await;
    assert_eq!(v["code"], -400);
    assert!(v["message"].as_str().unwrap().contains("nope"));
    s.stop().await;
}

/// Service TestZones: two zones; a third instance in sh002 → sh002:2, sh001:1; polling with
/// the new cursor parks (answered -304 here through a short `x1-bmspy-timeout`).
#[tokio::test]
async fn zones() {
    let s = TestServer::start(builder()).await;
    s.register(APP, "sh001", "h1").await;
    s.register(APP, "sh002", "h2").await;
    let v = s.get(&polls_url(&[APP], &[0], "w")).await;
    assert_eq!(v["data"][APP]["instances"].as_object().unwrap().len(), 2);
    let cursor = v["data"][APP]["latest_timestamp"].as_i64().unwrap();
    s.register(APP, "sh002", "h3").await;
    let v = s.get(&polls_url(&[APP], &[cursor], "w")).await;
    assert_eq!(hosts(&v["data"][APP], "sh002"), ["h2", "h3"]);
    assert_eq!(hosts(&v["data"][APP], "sh001"), ["h1"]);
    let cursor = v["data"][APP]["latest_timestamp"].as_i64().unwrap();
    let a = s
        .request(
            Method::GET,
            &polls_url(&[APP], &[cursor], "w"),
            None,
            "",
            &[("x1-bmspy-timeout", "300")],
        )
        .await;
    assert_eq!(
        a.json(),
        serde_json::json!({"code":-304,"message":"-304","ttl":1})
    );
    s.stop().await;
}

/// Service TestFetchs: two registered appids → two entries; unknown ones are left out.
#[tokio::test]
async fn fetchs() {
    let s = TestServer::start(builder()).await;
    s.register(APP, ZONE, "h1").await;
    s.register("main.arch.test2", ZONE, "h1").await;
    let v = s
        .get(&format!(
            "/discovery/fetchs?env={ENV}&status=1&appid={APP}&appid=main.arch.test2&appid=unknown"
        ))
        .await;
    assert_eq!(v["code"], 0);
    let data = v["data"].as_object().unwrap();
    assert_eq!(data.len(), 2);
    assert!(data.contains_key(APP) && data.contains_key("main.arch.test2"));
    let v = s
        .get(&format!(
            "/discovery/fetchs?env={ENV}&status=1&appid=unknown"
        ))
        .await;
    assert_eq!(v["code"], 0);
    assert_eq!(v["data"], serde_json::json!({}));
    s.stop().await;
}

/// Nodes / self-registration: `nodes` lists this node; `infra.discovery` carries its address.
#[tokio::test]
async fn nodes_and_self_registration() {
    let s = TestServer::start(builder()).await;
    let v = s.get("/discovery/nodes").await;
    assert_eq!(
        v["data"],
        serde_json::json!([{"addr": s.addr.to_string(), "status": 0, "zone": ZONE}])
    );
    let v = s
        .get(&format!(
            "/discovery/fetch?env={ENV}&appid=infra.discovery&status=1"
        ))
        .await;
    assert_eq!(
        v["data"]["instances"][ZONE][0]["addrs"][0],
        format!("http://{}", s.addr)
    );
    s.stop().await;
}
