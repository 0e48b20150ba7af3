//! Leases with short durations: eviction, self-preservation, protect mode.

use crate::common::*;
use sdkit_discovery_server::Lease;
use std::time::Duration;

fn short_lease(self_preservation: bool) -> Lease {
    Lease {
        evict_after: Duration::from_millis(200),
        evict_interval: Duration::from_millis(50),
        // Two expected renews per instance per check: one silent instance is already
        // below the self-preservation threshold.
        renew_interval: Duration::from_millis(25),
        self_preservation,
        ..Lease::default()
    }
}

/// TestEvict2: an instance not renewed is evicted; the server's own instance stays; a parked
/// poller learns the app is gone (a fix: the reference never tells it).
#[tokio::test]
async fn unrenewed_instance_is_evicted_and_pollers_told() {
    let lease = Lease {
        evict_after: Duration::from_secs(1),
        ..short_lease(false)
    };
    let s = TestServer::start(builder().lease(lease)).await;
    s.register(APP, ZONE, "h1").await;
    let cursor = s.cursor(APP).await;
    let url =
        format!("/discovery/polls?env={ENV}&hostname=w&appid={APP}&latest_timestamp={cursor}");
    // Keep the instance alive until the poll is parked, then let its lease run out.
    let renew = format!("zone={ZONE}&env={ENV}&appid={APP}&hostname=h1");
    let (v, ()) = tokio::join!(s.get(&url), async {
        eventually("poll parked while renewing", || async {
            assert_eq!(s.post("/discovery/renew", &renew).await["code"], 0);
            s.handle.stats().parked_polls == 1
        })
        .await;
    });
    assert_eq!(
        v["error"],
        serde_json::json!({"-404": [APP]}),
        "answered when evicted: {v}"
    );
    let v = s
        .get(&format!("/discovery/fetch?env={ENV}&appid={APP}&status=3"))
        .await;
    assert_eq!(v["code"], -404);
    assert!(s.handle.stats().evicted >= 1);
    let v = s
        .get(&format!(
            "/discovery/fetch?env={ENV}&appid=infra.discovery&status=3"
        ))
        .await;
    assert_eq!(v["code"], 0, "own instance is never evicted");
    s.stop().await;
}

/// TestEvict: with too few renews the guard protects the instances from eviction.
#[tokio::test]
async fn self_preservation_keeps_instances() {
    let s = TestServer::start(builder().lease(short_lease(true))).await;
    s.register(APP, ZONE, "h1").await;
    s.register(APP, ZONE, "h2").await;
    let checks = s.handle.stats().lease_checks;
    // Several checks well past the 200 ms expiry, all protected (no renews at all).
    let handle = s.handle.clone();
    eventually("lease checks past expiry", move || {
        let h = handle.clone();
        async move { h.stats().lease_checks >= checks + 8 }
    })
    .await;
    let stats = s.handle.stats();
    assert!(stats.self_preservation);
    assert_eq!(stats.evicted, 0);
    let v = s
        .get(&format!("/discovery/fetch?env={ENV}&appid={APP}&status=3"))
        .await;
    assert_eq!(hosts(&v["data"], ZONE), ["h1", "h2"]);
    s.stop().await;
}

/// Protect mode (by config): reads answer -500, writes work; it ends by itself.
#[tokio::test]
async fn protect_mode() {
    let s = TestServer::start(builder().protect_for(Duration::from_millis(500))).await;
    s.register(APP, ZONE, "h1").await;
    let url = format!("/discovery/fetch?env={ENV}&appid={APP}&status=1");
    let v = s.get(&url).await;
    if s.handle.stats().protect_mode {
        // Still inside the window after the read: it must have been refused.
        assert_eq!(v, serde_json::json!({"code":-500,"message":"-500","ttl":1}));
    }
    let handle = s.handle.clone();
    eventually("protect mode ends", move || {
        let h = handle.clone();
        async move { !h.stats().protect_mode }
    })
    .await;
    assert_eq!(s.get(&url).await["code"], 0);
    s.stop().await;
}

/// Protect mode refuses every read endpoint while it lasts.
#[tokio::test]
async fn protect_mode_refuses_reads() {
    let s = TestServer::start(builder().protect_for(Duration::from_secs(600))).await;
    s.register(APP, ZONE, "h1").await;
    for path in [
        format!("/discovery/fetch?env={ENV}&appid={APP}&status=1"),
        format!("/discovery/fetchs?env={ENV}&appid={APP}&status=1"),
        "/discovery/fetch/all".to_owned(),
        "/discovery/nodes".to_owned(),
        format!("/discovery/polls?env={ENV}&hostname=w&appid={APP}&latest_timestamp=0"),
        format!("/discovery/poll?env={ENV}&hostname=w&appid={APP}"),
    ] {
        assert_eq!(s.get(&path).await["code"], -500, "{path}");
    }
    let v = s
        .post(
            "/discovery/renew",
            &format!("zone={ZONE}&env={ENV}&appid={APP}&hostname=h1"),
        )
        .await;
    assert_eq!(v["code"], 0, "writes are accepted");
    s.stop().await;
}
