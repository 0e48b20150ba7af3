//! Graceful shutdown with parked polls.

use crate::common::*;
use std::time::Duration;
use tokio::time::Instant;

/// Parked polls are answered -304 at once on shutdown, and `serve` returns Ok.
#[tokio::test]
async fn shutdown_answers_parked_polls() {
    let s = TestServer::start(builder().hold(Duration::from_secs(600))).await;
    let url = format!("/discovery/polls?env={ENV}&hostname=w&appid=unknown.app&latest_timestamp=0");
    let started = Instant::now();
    let (a, b, ()) = tokio::join!(s.get(&url), s.get(&url), async {
        s.parked(2).await;
        s.handle.shutdown();
    });
    assert_eq!(a, serde_json::json!({"code":-304,"message":"-304","ttl":1}));
    assert_eq!(b["code"], -304);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "not held for the 600 s hold"
    );
    s.stop().await;
}
