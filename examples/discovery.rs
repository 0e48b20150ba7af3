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

#[path = "common/mod.rs"]
mod common;

use sdkit::{BoxError, Instance, Target};
use sdkit_discovery_server::Server;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    common::init_logs();

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

    // The discovery backend names instances `<hostname>@<address>`.
    let instance = Instance::new("demo-1", "127.0.0.1:8080").with_meta("version", "v1");
    common::register_watch_deregister(&target, instance, |i| i.id().starts_with("demo-1@")).await?;

    if let Some((handle, serving)) = embedded {
        handle.shutdown();
        serving.await??;
        println!("embedded server stopped");
    }
    Ok(())
}
