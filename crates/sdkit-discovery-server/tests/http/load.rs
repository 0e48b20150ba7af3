//! Hostile load on loopback (issue #14): thousands of idle connections, slow-header clients,
//! clients that never read a `fetch/all` answer, a poll flood — while a legitimate registrar
//! and watcher (from 127.0.0.1) keep working. Each attacker uses its own loopback address,
//! as distinct hosts would.

use crate::attack::{Pressure, hostile_load};
use crate::common::*;
use sdkit_discovery_server::Limits;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legitimate_pair_keeps_working_under_hostile_load() {
    let s = TestServer::start(
        builder()
            .write_timeout(Duration::from_secs(1))
            .limits(Limits {
                max_connections_per_addr: 500,
                ..Limits::default()
            }),
    )
    .await;
    preload(&s, |i| format!("bulk.app{}", i % 20), 300).await;
    let pressure = Arc::new(Pressure::default());
    let load = hostile_load(s.addr, ENV, 520, &pressure);
    // Let the attack build up: idle connections at the per-address limit, the flood refused.
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let stats = s.handle.stats();
        let refused = pressure.flood_refused.load(Ordering::Relaxed);
        if stats.connections >= 1500 && refused > 0 && stats.refused_connections > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the attack did not build up: {stats:?}, flood refused {refused}, idle opened {}",
            pressure.idle_open.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The legitimate pair: 20 rounds of register → the watcher's parked poll answered.
    let started = Instant::now();
    s.register(APP, ZONE, "legit-0").await;
    let mut cursor = s.cursor(APP).await;
    for round in 1..=20 {
        let url = format!(
            "/discovery/polls?env={ENV}&hostname=watcher&appid={APP}&latest_timestamp={cursor}"
        );
        let host = format!("legit-{round}");
        let (v, ()) = tokio::join!(
            async {
                tokio::time::timeout(EVENTUALLY, s.get(&url))
                    .await
                    .expect("poll answered")
            },
            async {
                eventually("the watcher parked", || {
                    let h = s.handle.clone();
                    async move { h.stats().parked_polls >= 1 }
                })
                .await;
                s.register(APP, ZONE, &host).await;
            }
        );
        assert_eq!(v["code"], 0, "round {round}: {v}");
        let info = &v["data"][APP];
        assert!(hosts(info, ZONE).contains(&host), "round {round}: {v}");
        cursor = info["latest_timestamp"].as_i64().unwrap();
    }
    let legit = started.elapsed();
    let stats = s.handle.stats();
    drop(load);
    assert!(stats.connections <= 10_000, "total bound: {stats:?}");
    assert!(
        pressure.flood_parked.load(Ordering::Relaxed) <= 64,
        "flood parked only within its budget"
    );
    eprintln!("20 legitimate rounds under load in {legit:?}; {stats:?}");
    s.stop().await;
}
