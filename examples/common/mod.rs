//! What the registry examples share: the one flow that runs unchanged on every backend.
// Each example compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use sdkit::{BoxError, Instance, Instancer as _, Registrar as _, Snapshot, Subscription, Target};
use tokio::time::timeout;

/// The target from the first argument, else `SDKIT_TARGET`, else `default`.
pub fn target_from_args(default: &str) -> Result<Target, BoxError> {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("SDKIT_TARGET").ok())
        .unwrap_or_else(|| default.to_owned());
    Ok(url.parse()?)
}

/// Registers `instance` through `target`, waits until the target's instancer sees it,
/// deregisters it and waits until it is gone. `is_mine` recognises the instance in a snapshot
/// (backends may name it differently, e.g. discovery's `<hostname>@<address>`).
pub async fn register_watch_deregister(
    target: &Target,
    instance: Instance,
    is_mine: impl Fn(&Instance) -> bool,
) -> Result<(), BoxError> {
    println!("target: {target}");
    // Construction never touches the network: an unreachable registry shows up later, as
    // errors. Watch first, so the registration shows up as a change.
    let instancer = target.instancer()?;
    let mut updates = instancer.subscribe();

    let id = instance.id().to_owned();
    let registrar = target.registrar(instance)?;
    // `register()` resolves on the first success and retries forever otherwise: bound the wait.
    // The instance is kept alive in the background until deregistered.
    timeout(Duration::from_secs(10), registrar.register())
        .await
        .map_err(|_| format!("not registered within 10 s: is the registry at {target} up?"))??;
    println!("registered {id}");

    let seen = wait_for(&mut updates, |s| s.instances().iter().any(&is_mine)).await?;
    for i in seen.instances() {
        println!(
            "  seen: {} at {} (weight {}, zone {:?}, tags {:?}, metadata {:?})",
            i.id(),
            i.addr(),
            i.weight(),
            i.zone(),
            i.tags(),
            i.metadata()
        );
    }

    // Deregistration is bounded; dropping the registrar also deregisters.
    registrar.deregister().await?;
    println!("deregistered {id}");
    wait_for(&mut updates, |s| !s.instances().iter().any(&is_mine)).await?;
    println!("  gone from the instance set");
    instancer.stop();
    Ok(())
}

/// Waits (at most 10 s) for a snapshot that satisfies `done`, printing source errors on the way.
pub async fn wait_for(
    updates: &mut Subscription,
    done: impl Fn(&Snapshot) -> bool,
) -> Result<Arc<Snapshot>, BoxError> {
    let snapshot = updates
        .wait_for(Duration::from_secs(10), |s| {
            if let Some(error) = s.error() {
                eprintln!("  registry error (last good set kept): {error}");
            }
            done(s)
        })
        .await?;
    Ok(snapshot)
}

/// `RUST_LOG` selects what is logged (default: warnings).
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
}
