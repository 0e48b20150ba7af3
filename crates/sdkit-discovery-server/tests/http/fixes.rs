//! The fixes over the reference (discovery-protocol.md §5.1), one test each.

use crate::common::*;

/// Reference bug: `set` does not advance the polled cursor, so a later poll with the old
/// cursor misses the change. Here it answers at once with the new data.
#[tokio::test]
async fn set_advances_polled_cursor() {
    let s = TestServer::start(builder()).await;
    s.register(APP, ZONE, "h1").await;
    let cursor = s.cursor(APP).await;
    let v = s
        .post("/discovery/set", &format!("zone={ZONE}&env={ENV}&appid={APP}&hostname=h1&metadata=%7B%22color%22%3A%22red%22%7D"))
        .await;
    assert_eq!(v["code"], 0);
    let v = s
        .get(&format!(
            "/discovery/polls?env={ENV}&hostname=w&appid={APP}&latest_timestamp={cursor}"
        ))
        .await;
    assert_eq!(v["code"], 0, "changed, not -304: {v}");
    assert_eq!(
        v["data"][APP]["instances"][ZONE][0]["metadata"]["color"],
        "red"
    );
    assert!(v["data"][APP]["latest_timestamp"].as_i64().unwrap() > cursor);
    s.stop().await;
}

/// Reference bug: cancelling the last instance never tells parked pollers. Here they are
/// answered with the app in the -404 miss list.
#[tokio::test]
async fn cancel_last_instance_wakes_pollers() {
    let s = TestServer::start(builder()).await;
    s.register(APP, ZONE, "h1").await;
    let cursor = s.cursor(APP).await;
    let polls =
        format!("/discovery/polls?env={ENV}&hostname=w&appid={APP}&latest_timestamp={cursor}");
    let poll =
        format!("/discovery/poll?env={ENV}&hostname=w2&appid={APP}&latest_timestamp={cursor}");
    let (multi, single, ()) = tokio::join!(s.get(&polls), s.get(&poll), async {
        s.parked(2).await;
        let v = s
            .post(
                "/discovery/cancel",
                &format!("zone={ZONE}&env={ENV}&appid={APP}&hostname=h1"),
            )
            .await;
        assert_eq!(v["code"], 0);
    });
    assert_eq!(
        multi,
        serde_json::json!({"code":0,"message":"0","data":{},"error":{"-404":[APP]}})
    );
    assert_eq!(single["code"], -404);
    s.stop().await;
}

/// Reference bug: `register` with `status > 2` answers an empty body. Here: -400.
#[tokio::test]
async fn status_above_two_is_rejected() {
    let s = TestServer::start(builder()).await;
    let v = s
        .post(
            "/discovery/register",
            &format!("zone={ZONE}&env={ENV}&appid={APP}&hostname=h1&status=3&addrs=grpc://a:1"),
        )
        .await;
    assert_eq!(v["code"], -400);
    assert!(v["message"].as_str().unwrap().contains("status"));
    s.stop().await;
}

/// Reference bug #86: replicated `addrs` arrive comma-joined. Here they are split.
#[tokio::test]
async fn comma_joined_addrs_are_split() {
    let s = TestServer::start(builder()).await;
    let v = s
        .post(
            "/discovery/register",
            &format!("zone={ZONE}&env={ENV}&appid={APP}&hostname=h1&status=1&addrs=http://a:8001,grpc://a:9001&replication=true"),
        )
        .await;
    assert_eq!(v["code"], 0);
    let v = s
        .get(&format!("/discovery/fetch?env={ENV}&appid={APP}&status=1"))
        .await;
    assert_eq!(
        v["data"]["instances"][ZONE][0]["addrs"],
        serde_json::json!(["http://a:8001", "grpc://a:9001"])
    );
    s.stop().await;
}

/// Reference bug: an app registered only in the server's env is invisible from other envs;
/// `infra.discovery` polled from another env wakes when the server's own entry changes.
#[tokio::test]
async fn infra_discovery_poll_from_other_env_wakes() {
    let s = TestServer::start(builder()).await;
    let v = s
        .get("/discovery/fetch?env=prod&appid=infra.discovery&status=1")
        .await;
    let cursor = v["data"]["latest_timestamp"].as_i64().unwrap();
    let url = format!(
        "/discovery/polls?env=prod&hostname=w&appid=infra.discovery&latest_timestamp={cursor}"
    );
    let (v, ()) = tokio::join!(s.get(&url), async {
        s.parked(1).await;
        s.register("infra.discovery", ZONE, "peer-node").await;
    });
    assert_eq!(v["code"], 0);
    assert_eq!(
        v["data"]["infra.discovery"]["instances"][ZONE]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    s.stop().await;
}

/// An app deleted (its last instance cancelled) *before* a `polls` arrives with a cursor for
/// it: the client knew the app, so the poll is answered at once with the app in the -404
/// miss list, as a deletion wakes a parked poll. An appid polled with cursor 0 (never seen)
/// still parks.
#[tokio::test]
async fn deleted_app_with_cursor_is_answered_at_once() {
    let hold = std::time::Duration::from_secs(5);
    let s = TestServer::start(builder().hold(hold)).await;
    s.register(APP, ZONE, "h1").await;
    s.register("other.app", ZONE, "h1").await;
    let cursor = s.cursor(APP).await;
    let other = s.cursor("other.app").await;
    let v = s
        .post(
            "/discovery/cancel",
            &format!("zone={ZONE}&env={ENV}&appid={APP}&hostname=h1"),
        )
        .await;
    assert_eq!(v["code"], 0);
    let started = tokio::time::Instant::now();
    let v = s
        .get(&format!(
            "/discovery/polls?env={ENV}&hostname=w&appid={APP}&appid=other.app\
             &latest_timestamp={cursor}&latest_timestamp={other}"
        ))
        .await;
    assert_eq!(
        v,
        serde_json::json!({"code":0,"message":"0","data":{},"error":{"-404":[APP]}}),
        "answered with the miss, not parked"
    );
    assert!(started.elapsed() < hold, "answered before the hold");
    assert_eq!(s.handle.stats().parked_polls, 0);
    // Cursor 0 for an unknown app: nothing the client knew has gone, so it parks.
    let url = format!("/discovery/polls?env={ENV}&hostname=w&appid={APP}&latest_timestamp=0");
    let (v, ()) = tokio::join!(s.get(&url), async {
        s.parked(1).await;
        s.register(APP, ZONE, "h2").await;
    });
    assert_eq!(v["code"], 0);
    assert_eq!(hosts(&v["data"][APP], ZONE), ["h2"]);
    s.stop().await;
}
