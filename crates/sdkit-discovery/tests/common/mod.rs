//! A scripted discovery node for the integration tests: a real HTTP/1.1 listener on loopback
//! whose answers a test writes, for behaviour the embedded registry cannot be made to show on
//! cue (an instant `-304`, a restart seen only in the answers).
#![allow(dead_code)]

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// Listens on a free loopback port and answers every request with the JSON body `answer`
/// returns for the request line (`GET /discovery/polls?… HTTP/1.1`), status 200, one request
/// per connection (`Connection: close`, so a change of script is seen by the next request
/// and never as a failed one). Returns the node (`host:port`) and the accept task.
pub async fn scripted_node(
    answer: impl Fn(&str) -> String + Send + Sync + 'static,
) -> (String, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = listener.local_addr().unwrap().to_string();
    let answer = Arc::new(answer);
    let task = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let answer = Arc::clone(&answer);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // The head, then the body by Content-Length.
                let head_end = loop {
                    let Ok(n) = conn.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = answer(head.lines().next().unwrap_or_default());
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    (node, task)
}

/// Waits for the stale set that a node switch or restart publishes (the grace period's) and
/// checks that it kept the last set, of one instance.
pub async fn wait_for_the_kept_set(sub: &mut sdkit_core::Subscription) {
    let stale = sdkit_testkit::wait::wait_for(
        sub,
        sdkit_testkit::wait::EVENTUALLY,
        "the stale set after a node switch or restart",
        |s| {
            s.error()
                .is_some_and(|e| e.to_string().contains("node switch or restart"))
        },
    )
    .await;
    assert_eq!(
        stale.len(),
        1,
        "the last set is kept during the grace period"
    );
}
