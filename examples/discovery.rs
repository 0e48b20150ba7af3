//! The bilibili discovery backend: a registrar and an instancer built from one
//! `discovery://` target, against the embedded registry started in this process (nothing to
//! install).
//!
//! It registers `demo-1` for `demo.service`, waits until the instancer sees it, deregisters it,
//! waits until it is gone, and shuts everything down.
//!
//! ```sh
//! cargo run -p sdkit --example discovery
//! # against a running registry (sdkit-discovery-server or bilibili discovery) instead:
//! cargo run -p sdkit --example discovery -- 'discovery://127.0.0.1:7171/demo.service?env=dev&zone=sh001'
//! ```
//!
//! Logs: `RUST_LOG=sdkit_discovery=debug,sdkit_core=debug cargo run -p sdkit --example discovery`.

use std::time::Duration;

use sdkit::{BoxError, Instance, Instancer as _, Registrar as _, Snapshot, Subscription, Target};
use sdkit_discovery_server::Server;
use tokio::net::TcpListener;
use tokio::time::timeout;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    init_logs();

    // The registry: the URL from the command line, or an embedded server on a free port.
    let mut embedded = None;
    let target: Target = match std::env::args().nth(1) {
        Some(url) => url.parse()?,
        None => {
            let server = Server::builder().env("dev").zone("sh001").build()?;
            let handle = server.handle();
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let serving = tokio::spawn(server.serve(listener));
            embedded = Some((handle, serving));
            println!("embedded discovery server on {addr}");
            format!("discovery://{addr}/demo.service?env=dev&zone=sh001&scheme=http").parse()?
        }
    };
    println!("target: {target}");

    // Watch first, so the registration shows up as a change.
    let instancer = target.instancer()?;
    let mut updates = instancer.subscribe();

    // Register. `register()` resolves on the first success and keeps retrying otherwise, so
    // bound the wait; the instance is renewed in the background until deregistered.
    let instance = Instance::new("demo-1", "127.0.0.1:8080").with_meta("version", "v1");
    let registrar = target.registrar(instance)?;
    timeout(Duration::from_secs(10), registrar.register()).await??;
    println!("registered demo-1");

    // The discovery backend names instances `<hostname>@<address>`.
    let seen = wait_for(&mut updates, |s| {
        s.instances().iter().any(|i| i.id().starts_with("demo-1@"))
    })
    .await?;
    for i in seen.instances() {
        println!(
            "  seen: {} at {} (weight {}, zone {:?}, meta {:?})",
            i.id(),
            i.addr(),
            i.weight(),
            i.zone(),
            i.metadata()
        );
    }

    registrar.deregister().await?;
    println!("deregistered demo-1");
    wait_for(&mut updates, |s| {
        s.instances().iter().all(|i| !i.id().starts_with("demo-1@"))
    })
    .await?;
    println!("  gone from the instance set");

    instancer.stop();
    if let Some((handle, serving)) = embedded {
        handle.shutdown();
        serving.await??;
        println!("embedded server stopped");
    }
    Ok(())
}

/// Waits (at most 10 s) for a snapshot that satisfies `done`, printing source errors on the way.
async fn wait_for(
    updates: &mut Subscription,
    done: impl Fn(&Snapshot) -> bool,
) -> Result<std::sync::Arc<Snapshot>, BoxError> {
    let wait = async {
        while let Some(snapshot) = updates.next().await {
            if let Some(error) = snapshot.error() {
                eprintln!("  registry error (last good set kept): {error}");
            }
            if done(&snapshot) {
                return Ok(snapshot);
            }
        }
        Err::<_, BoxError>("the instancer stopped".into())
    };
    timeout(Duration::from_secs(10), wait)
        .await
        .map_err(|_| "no matching snapshot within 10 s")?
}

/// `RUST_LOG` selects what is logged (default: warnings).
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
}
