//! Calling a discovered service by name with reqwest: `http://demo.web/hello` goes to an
//! instance registered for `demo.web`, through sdkit's balancer and safe retries — as a plain
//! client and inside a `reqwest_middleware` stack.
//!
//! Everything runs in this process: the embedded discovery registry and three small HTTP
//! backends (one of which is stopped halfway, without a single failed request).
//!
//! ```sh
//! cargo run -p sdkit --features http --example http
//! ```

#[path = "common/mod.rs"]
mod common;

use std::convert::Infallible;
use std::time::Duration;

use sdkit::http::{Client, Config, Served};
use sdkit::{BoxError, Instance, Target};
use sdkit_discovery_server::Server;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A backend answering every request with `hello from <name>`; abort the handle to stop it.
async fn backend(name: &'static str) -> Result<(String, JoinHandle<()>), BoxError> {
    use hyper_util::rt::TokioIo;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |_request| async move {
                    let body = bytes::Bytes::from(format!("hello from {name}"));
                    Ok::<_, Infallible>(hyper::Response::new(http_body_util::Full::new(body)))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((addr, task))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    common::init_logs();

    // The registry, and three backends registered in it as `demo.web`.
    let server = Server::builder().env("dev").build()?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let registry = listener.local_addr()?;
    let handle = server.handle();
    let serving = tokio::spawn(server.serve(listener));
    let target: Target =
        format!("discovery://{registry}/demo.web?env=dev&scheme=http&self_discovery=false")
            .parse()?;
    let mut backends = Vec::new();
    for name in ["backend-1", "backend-2", "backend-3"] {
        let (addr, task) = backend(name).await?;
        let registrar = target.registrar(Instance::new(name, &addr))?;
        registrar.register().await?;
        backends.push((registrar, task));
    }

    // The client: the name `demo.web` resolves through the registry.
    let client = Client::new(Config::default().with_attempt_timeout(Duration::from_secs(1)))?;
    client.add_service("demo.web", &target)?;
    client.ready("demo.web", Duration::from_secs(5)).await?;
    for _ in 0..3 {
        let response = client.get("http://demo.web/hello").await?;
        let served = response.extensions().get::<Served>().cloned();
        println!(
            "{} (via {:?})",
            response.text().await?,
            served.map(|s| s.addr)
        );
    }

    // A backend dies: its connections close, GETs move on to the others.
    backends[1].1.abort();
    println!("stopped backend-2");
    let mut failed = 0;
    for _ in 0..30 {
        if client.get("http://demo.web/hello").await.is_err() {
            failed += 1;
        }
    }
    println!("30 GETs after the crash, {failed} failed");

    // The same client as a reqwest middleware, after the middlewares you already have.
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(client.middleware())
        .build();
    let body = http
        .get("http://demo.web/hello")
        .send()
        .await?
        .text()
        .await?;
    println!("through reqwest_middleware: {body}");

    // An unknown name is an error, not a DNS lookup.
    match client.get("http://billing/invoices").await {
        Err(error) => println!("unknown name: {error}"),
        Ok(response) => println!("unexpected: {}", response.status()),
    }

    for (registrar, task) in backends {
        registrar.deregister().await?;
        task.abort();
    }
    handle.shutdown();
    serving.await??;
    Ok(())
}
