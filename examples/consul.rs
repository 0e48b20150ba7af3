//! The Consul backend: a registrar (an agent service with a TTL check, heartbeated) and an
//! instancer (blocking queries on the service's passing instances) built from one `consul://`
//! target. Needs a Consul agent.
//!
//! It registers `web-1` for the service `web`, waits until the instancer sees it (its TTL check
//! starts passing), deregisters it, waits until it is gone, and exits.
//!
//! ```sh
//! consul agent -dev &                     # any Consul 1.5+; HTTP API on 127.0.0.1:8500
//! cargo run -p sdkit --example consul
//! # another agent, an ACL token, a shorter TTL (or set SDKIT_TARGET; CONSUL_HTTP_TOKEN works too):
//! cargo run -p sdkit --example consul -- 'consul://10.0.0.1:8500/web?token=…&ttl=5s&dc=dc1'
//! ```
//!
//! The target comes from the first argument, else `SDKIT_TARGET`, else
//! `consul://127.0.0.1:8500/web`. Tokens are shown as `***` when the target is printed and are
//! sent as the `X-Consul-Token` header, never in a URL. With the agent down, registration keeps
//! retrying: the example gives up after 10 s and says so. Logs: `RUST_LOG=sdkit_consul=debug`.

use std::time::Duration;

use sdkit::{BoxError, Instance, Instancer as _, Registrar as _, Snapshot, Subscription, Target};
use tokio::time::timeout;

const DEFAULT_TARGET: &str = "consul://127.0.0.1:8500/web";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    init_logs();
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("SDKIT_TARGET").ok())
        .unwrap_or_else(|| DEFAULT_TARGET.to_owned());
    let target: Target = url.parse()?;
    println!("target: {target}");

    // Construction never touches the network: an unreachable agent shows up later, as errors.
    let instancer = target.instancer()?;
    let mut updates = instancer.subscribe();

    // Weight → `Weights`, tags → `Tags`, metadata and zone → `Meta` (zone under `zone`).
    let instance = Instance::new("web-1", "127.0.0.1:8080")
        .with_weight(5)
        .with_zone("sh001")
        .with_tag("v1");
    let registrar = target.registrar(instance)?;
    // `register()` resolves on the first success and retries forever otherwise: bound the wait.
    timeout(Duration::from_secs(10), registrar.register())
        .await
        .map_err(|_| {
            format!("not registered within 10 s: is a Consul agent running at {target}?")
        })??;
    println!("registered web-1");

    let seen = wait_for(&mut updates, |s| {
        s.instances().iter().any(|i| i.id() == "web-1")
    })
    .await?;
    for i in seen.instances() {
        println!(
            "  seen: {} at {} (weight {}, zone {:?}, tags {:?})",
            i.id(),
            i.addr(),
            i.weight(),
            i.zone(),
            i.tags()
        );
    }

    // Deregistration is bounded (5 s); dropping the registrar also deregisters.
    registrar.deregister().await?;
    println!("deregistered web-1");
    wait_for(&mut updates, |s| {
        s.instances().iter().all(|i| i.id() != "web-1")
    })
    .await?;
    println!("  gone from the instance set");

    instancer.stop();
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
