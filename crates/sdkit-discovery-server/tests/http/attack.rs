//! The hostile load of issue #14, shared by the load test and the `hostile` bench: idle
//! connections topped up from four addresses, slow-header clients, clients pipelining
//! `fetch/all` and never reading, and a flood of 256-appid polls. Each attacker uses its own
//! loopback address (127.0.0.0/8 is all local), as distinct hosts would; legitimate clients
//! connect from 127.0.0.1.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

/// A connection to `to` from the loopback address `from`.
pub async fn connect_from(from: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::from(from), 0))?;
    socket.connect(to).await
}

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
    env: &str,
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
                // Top up quickly while building up, then check now and then.
                let pause = if missing > 0 { 20 } else { 500 };
                tokio::time::sleep(Duration::from_millis(pause)).await;
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
        let env = env.to_owned();
        load.spawn(async move {
            let apps: String = (0..256).map(|i| format!("&appid=flood{i}&latest_timestamp=0")).collect();
            let req = format!(
                "GET /discovery/polls?env={env}&hostname=f{apps} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
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
