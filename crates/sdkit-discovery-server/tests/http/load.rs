//! Hostile load on loopback (issue #14): thousands of idle connections, slow-header clients,
//! clients that never read a `fetch/all` answer, a poll flood — while a legitimate registrar
//! and watcher (from 127.0.0.1) keep working. Each attacker uses its own loopback address,
//! as distinct hosts would.

use crate::common::*;
use crate::ownership::connect_from;
use sdkit_discovery_server::Limits;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What the attackers achieved (for the assertions that they were actually limited).
#[derive(Default)]
pub struct Pressure {
    pub idle_open: AtomicUsize,
    pub flood_refused: AtomicUsize,
    pub flood_parked: AtomicUsize,
}

/// Starts the hostile load against `addr`; it runs until the set is dropped.
pub fn hostile_load(
    addr: std::net::SocketAddr,
    idle_per_addr: usize,
    pressure: &Arc<Pressure>,
) -> JoinSet<()> {
    let mut load = JoinSet::new();
    // Idle connections from four addresses, topped up as the server drops them.
    for a in 10..14u8 {
        let pressure = Arc::clone(pressure);
        load.spawn(async move {
            let mut held = Vec::new();
            loop {
                // Drop the ones the server closed (EOF) or refused (a 503 to read).
                held.retain(|c: &tokio::net::TcpStream| {
                    let mut probe = [0u8; 1];
                    matches!(c.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
                });
                // 50 at a time: a burst beyond the listen backlog would stall in SYN_RECV.
                let missing = idle_per_addr.saturating_sub(held.len()).min(50);
                let opened = futures_util::future::join_all(
                    (0..missing).map(|_| connect_from([127, 0, 0, a], addr)),
                )
                .await;
                for c in opened.into_iter().flatten() {
                    held.push(c);
                    pressure.idle_open.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }
    // Slow headers: one byte every 100 ms on 100 connections.
    for _ in 0..100 {
        load.spawn(async move {
            loop {
                let Ok(mut c) = connect_from([127, 0, 0, 20], addr).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                for b in b"GET /discovery/fetch/all HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    .iter()
                    .cycle()
                {
                    if c.write_all(&[*b]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
    }
    // Never reading: pipelined fetch/all requests, the answers left unread.
    for _ in 0..10 {
        load.spawn(async move {
            let req = "GET /discovery/fetch/all HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(16);
            loop {
                let Ok(mut c) = connect_from([127, 0, 0, 21], addr).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let _ = c.write_all(req.as_bytes()).await;
                // Wait for the server to give up on us (the write timeout), never reading.
                let _ = c.readable().await;
                let mut probe = [0u8; 1];
                while c.try_read(&mut probe).is_err() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                drop(c);
            }
        });
    }
    // Poll flood: polls of 256 unknown appids, one per connection, as fast as possible.
    for _ in 0..4 {
        let pressure = Arc::clone(pressure);
        load.spawn(async move {
            let apps: String = (0..256).map(|i| format!("&appid=flood{i}&latest_timestamp=0")).collect();
            let req = format!(
                "GET /discovery/polls?env={ENV}&hostname=f{apps} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            );
            let mut parked = Vec::new();
            loop {
                let Ok(mut c) = connect_from([127, 0, 0, 22], addr).await else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                if c.write_all(req.as_bytes()).await.is_err() {
                    continue;
                }
                let mut buf = [0u8; 512];
                match tokio::time::timeout(Duration::from_millis(50), c.read(&mut buf)).await {
                    Ok(Ok(n)) if String::from_utf8_lossy(&buf[..n]).contains("-509") => {
                        pressure.flood_refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => {
                        pressure.flood_parked.fetch_add(1, Ordering::Relaxed);
                        parked.push(c);
                        if parked.len() > 64 {
                            parked.remove(0);
                        }
                    }
                }
            }
        });
    }
    load
}

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
    let load = hostile_load(s.addr, 520, &pressure);
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
