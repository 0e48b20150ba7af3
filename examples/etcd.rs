//! The etcd v3 backend: a registrar (a key on a lease, kept alive) and an instancer (a watch on
//! the service's key prefix) built from one `etcd://` target. Needs a running etcd.
//!
//! It registers `web-1` under `/services/web/`, waits until the instancer sees it, deregisters
//! it (the key is deleted and the lease revoked), waits until it is gone, and exits.
//!
//! ```sh
//! etcd --data-dir /tmp/etcd-demo &        # any etcd 3.4+; listens on 127.0.0.1:2379
//! cargo run -p sdkit --example etcd
//! # another cluster, credentials, a lease TTL (or set SDKIT_TARGET):
//! cargo run -p sdkit --example etcd -- 'etcd://user:pass@10.0.0.1:2379,10.0.0.2:2379/services/web?ttl=5s'
//! ```
//!
//! The target comes from the first argument, else `SDKIT_TARGET`, else
//! `etcd://127.0.0.1:2379/services/web`. Passwords are shown as `***` when the target is
//! printed. With etcd down, registration keeps retrying: the example gives up after 10 s and
//! says so. Logs: `RUST_LOG=sdkit_etcd=debug`.

use std::time::Duration;

use sdkit::{BoxError, Instance, Instancer as _, Registrar as _, Snapshot, Subscription, Target};
use tokio::time::timeout;

const DEFAULT_TARGET: &str = "etcd://127.0.0.1:2379/services/web";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    init_logs();
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("SDKIT_TARGET").ok())
        .unwrap_or_else(|| DEFAULT_TARGET.to_owned());
    let target: Target = url.parse()?;
    println!("target: {target}");

    // Construction never touches the network: an unreachable etcd shows up later, as errors.
    let instancer = target.instancer()?;
    let mut updates = instancer.subscribe();

    let instance = Instance::new("web-1", "127.0.0.1:8080")
        .with_weight(5)
        .with_zone("sh001")
        .with_tag("v1");
    let registrar = target.registrar(instance)?;
    // `register()` resolves on the first success and retries forever otherwise: bound the wait.
    timeout(Duration::from_secs(10), registrar.register())
        .await
        .map_err(|_| format!("not registered within 10 s: is etcd running at {target}?"))??;
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

    // Deregistration is bounded (`deregister_timeout`); dropping the registrar also deregisters.
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
