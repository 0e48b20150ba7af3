//! Task ownership and connection limits: dropping the serve future ends every task it
//! started; connections past the shutdown grace are aborted; per-address connection and
//! parked-poll budgets; a client that never reads is dropped; slow headers time out.

use crate::attack::connect_from;
use crate::common::*;
use sdkit_discovery_server::{Limits, Server};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until EOF or error; true when the server closed the connection.
async fn closed(conn: &mut TcpStream) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(EVENTUALLY, conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

fn poll_request(cursor: i64) -> String {
    format!(
        "GET /discovery/polls?env={ENV}&hostname=w&appid={APP}&latest_timestamp={cursor} HTTP/1.1\r\n\
         Host: 127.0.0.1\r\n\r\n"
    )
}

/// Dropping (aborting) the serve future cancels the lease task and every connection.
#[tokio::test]
async fn dropping_the_server_future_ends_every_task() {
    let server = builder().hold(Duration::from_secs(600)).build().unwrap();
    let handle = server.handle();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(server.serve(listener));
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let mut parked = TcpStream::connect(addr).await.unwrap();
    parked.write_all(poll_request(0).as_bytes()).await.unwrap();
    eventually("a parked poll and two connections", || {
        let h = handle.clone();
        async move {
            let s = h.stats();
            s.parked_polls == 1 && s.connections == 2 && s.tasks == 3
        }
    })
    .await;
    serving.abort();
    assert!(serving.await.unwrap_err().is_cancelled());
    assert!(closed(&mut parked).await, "parked poll's connection closed");
    assert!(closed(&mut idle).await, "idle connection closed");
    eventually("no task left", || {
        let h = handle.clone();
        async move { h.stats().tasks == 0 && h.stats().connections == 0 }
    })
    .await;
}

/// A connection still busy after the shutdown grace (here: a body that never finishes) is
/// aborted, and `serve` returns.
#[tokio::test]
async fn connections_past_the_grace_are_aborted() {
    let server = builder()
        .shutdown_grace(Duration::from_millis(200))
        .body_timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    let handle = server.handle();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(server.serve(listener));
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(
        b"POST /discovery/register HTTP/1.1\r\nHost: 127.0.0.1\r\n\
          Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nzone=z",
    )
    .await
    .unwrap();
    eventually("the slow request is in", || {
        let h = handle.clone();
        async move { h.stats().connections == 1 }
    })
    .await;
    handle.shutdown();
    tokio::time::timeout(EVENTUALLY, serving)
        .await
        .expect("serve returns after the grace")
        .unwrap()
        .unwrap();
    assert!(closed(&mut slow).await);
    assert_eq!(handle.stats().tasks, 0);
}

/// Connections are bounded per client address (the excess is told why and closed), and a
/// different address is not affected.
#[tokio::test]
async fn connections_are_bounded_per_address() {
    let limits = Limits {
        max_connections_per_addr: 5,
        max_connections: 8,
        ..Limits::default()
    };
    let s = TestServer::start(builder().limits(limits)).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from([127, 0, 0, 2], s.addr).await.unwrap());
    }
    eventually("5 connections", || {
        let h = s.handle.clone();
        async move { h.stats().connections == 5 }
    })
    .await;
    let mut extra = connect_from([127, 0, 0, 2], s.addr).await.unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(EVENTUALLY, extra.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("from one client address (limit 5)"),
        "{answer}"
    );
    // Another address still gets in (the hyper client connects from 127.0.0.1).
    assert!(s.cursor("infra.discovery").await > 0);
    // The total: 5 + 1 (client) + 2 more from 127.0.0.3; the next one is refused.
    for _ in 0..2 {
        held.push(connect_from([127, 0, 0, 3], s.addr).await.unwrap());
    }
    eventually("8 connections", || {
        let h = s.handle.clone();
        async move { h.stats().connections == 8 }
    })
    .await;
    let mut extra = connect_from([127, 0, 0, 4], s.addr).await.unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(EVENTUALLY, extra.read_to_string(&mut answer)).await;
    assert!(
        answer.contains("too many connections (limit 8)"),
        "{answer}"
    );
    assert!(s.handle.stats().refused_connections >= 2);
    drop(held);
    s.stop().await;
}

/// Parked polls are counted in appids and bounded per client address.
#[tokio::test]
async fn parked_polls_are_bounded_per_address_in_topics() {
    let limits = Limits {
        max_parked_polls_per_addr: 3,
        ..Limits::default()
    };
    let s = TestServer::start(builder().limits(limits)).await;
    let polls = |n: usize| {
        let apps: String = (0..n)
            .map(|i| format!("&appid=a{i}&latest_timestamp=0"))
            .collect();
        format!(
            "GET /discovery/polls?env={ENV}&hostname=w{apps} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
    };
    // 4 appids from one address: over its share of 3 at once.
    let mut c = connect_from([127, 0, 0, 2], s.addr).await.unwrap();
    c.write_all(polls(4).as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = c.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(
        text.contains("-509") && text.contains("one client address (limit 3)"),
        "{text}"
    );
    // 3 appids park; then that address has no budget left, another address does.
    let mut parked = connect_from([127, 0, 0, 2], s.addr).await.unwrap();
    parked.write_all(polls(3).as_bytes()).await.unwrap();
    s.parked(1).await;
    let mut more = connect_from([127, 0, 0, 2], s.addr).await.unwrap();
    more.write_all(polls(1).as_bytes()).await.unwrap();
    let n = more.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("-509"));
    let mut other = connect_from([127, 0, 0, 3], s.addr).await.unwrap();
    other.write_all(polls(3).as_bytes()).await.unwrap();
    s.parked(2).await;
    s.stop().await;
}

/// A client that never reads a large answer is dropped after the write timeout (the read
/// timeout is long here, so it is the write deadline that acts).
#[tokio::test]
async fn a_client_that_never_reads_is_dropped() {
    let s = TestServer::start(builder().write_timeout(Duration::from_millis(300))).await;
    preload(&s, |_| APP.to_owned(), 400).await;
    // The test client's pooled keep-alive connections stay open: count from here.
    let before = s.handle.stats().connections;
    // ~1.3 MB per answer; ask for it 40 times on one connection (more than the loopback
    // socket buffers hold) and never read.
    let mut lazy = connect_from([127, 0, 0, 2], s.addr).await.unwrap();
    let req = "GET /discovery/fetch/all HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(40);
    lazy.write_all(req.as_bytes()).await.unwrap();
    eventually("the connection was open", || {
        let h = s.handle.clone();
        async move { h.stats().connections > before }
    })
    .await;
    eventually("the non-reading client dropped", || {
        let h = s.handle.clone();
        async move { h.stats().connections == before }
    })
    .await;
    s.stop().await;
}

/// A client sending its headers slowly is dropped after the read timeout.
#[tokio::test]
async fn slow_headers_are_dropped() {
    let s = TestServer::start(builder().read_timeout(Duration::from_millis(300))).await;
    let mut slow = connect_from([127, 0, 0, 3], s.addr).await.unwrap();
    slow.write_all(b"GET /discovery/fetch/all HTTP/1.1\r\n")
        .await
        .unwrap();
    for b in b"Host: 127.0.0.1" {
        // One byte at a time: the head never completes within the read timeout.
        if slow.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(closed(&mut slow).await);
    s.stop().await;
}

/// The builder refuses an empty token and `token_reads` without a token.
#[test]
fn token_configuration_is_checked() {
    use sdkit_discovery_server::Token;
    assert!(Server::builder().token(Token::new("")).build().is_err());
    assert!(Server::builder().token_reads(true).build().is_err());
}
