//! Quickstart: the whole sdkit pipeline — instancer → endpointer → round-robin → retry — with
//! nothing installed.
//!
//! The example starts two tiny TCP backends in this process, lists them together with one
//! address where nothing listens in a `static://` target, and sends six requests through a
//! round-robin balancer wrapped in a retry. The dead address fails with "connection refused";
//! the retry moves on to the next endpoint, so every request is answered.
//!
//! ```sh
//! cargo run -p sdkit --example quickstart
//! ```
//!
//! In a real service only the target string changes: `etcd://…`, `consul://…`,
//! `discovery://…` or `dnssrv://…` (see the other examples) instead of `static://…`.

use std::time::Duration;

use sdkit::lb::RoundRobin;
use sdkit::retry::{Retry, RetryConfig};
use sdkit::{BoxError, Endpointer, Instance, Instancer as _, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::service_fn;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let alpha = spawn_backend("alpha").await?;
    let beta = spawn_backend("beta").await?;
    let dead = unused_address().await?;

    // 1. An instancer. `static://` serves a fixed list; a registry URL would watch a registry.
    let target: Target = format!("static://{alpha},{beta},{dead}").parse()?;
    let instancer = target.instancer()?;

    // 2. An endpointer: one endpoint (a tower::Service) per instance, made by this factory.
    let endpointer = Endpointer::new(&instancer, |instance: &Instance| {
        let addr = instance.addr().to_owned();
        Ok::<_, BoxError>(service_fn(move |request: String| {
            call(addr.clone(), request)
        }))
    });
    let endpoints = endpointer.ready(Duration::from_secs(5)).await?;
    println!("{} endpoints ({dead} is dead)", endpoints.len());

    // 3. A balancer and 4. a retry: at most 3 attempts within 2 s, with backoff between them.
    let balancer = RoundRobin::new(endpointer.endpoint_set());
    let retry = Retry::balanced(balancer, RetryConfig::new(3, Duration::from_secs(2)));

    for n in 1..=6 {
        let answer = retry.call(format!("request #{n}")).await?;
        println!("{answer}");
    }

    // Stopping is optional here (dropping stops too), but this is how a service shuts down.
    endpointer.stop();
    instancer.stop();
    Ok(())
}

/// The client side of one endpoint: send a line, read the answer.
async fn call(addr: String, request: String) -> Result<String, BoxError> {
    let mut stream = TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    stream.write_all(request.as_bytes()).await?;
    stream.shutdown().await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}

/// A backend that answers every connection with its name and the request it read.
async fn spawn_backend(name: &'static str) -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = String::new();
                if conn.read_to_string(&mut request).await.is_ok() {
                    let answer = format!("{name} answered {request:?}");
                    let _ = conn.write_all(answer.as_bytes()).await;
                }
            });
        }
    });
    Ok(addr)
}

/// A loopback address where nothing listens.
async fn unused_address() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    Ok(listener.local_addr()?.to_string())
}
