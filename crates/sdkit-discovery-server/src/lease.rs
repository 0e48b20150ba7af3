//! The lease task: runs a lease check every `evict_interval` until shutdown.

use crate::shared::Shared;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::time::{Instant, MissedTickBehavior, interval_at};
use tracing::warn;

/// Runs until the shared shutdown token fires.
pub(crate) async fn run(shared: Arc<Shared>) {
    let every = shared.config.lease.evict_interval;
    let mut ticks = interval_at(Instant::now() + every, every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let report = shared
            .registry
            .evict(shared.registry.clock.now(), &shared.config.lease);
        if report.protected {
            warn!("self-preservation active: too few renews, eviction restrained");
        }
        shared
            .stats
            .evicted
            .fetch_add(report.evicted as u64, Ordering::Relaxed);
        shared.stats.lease_checks.fetch_add(1, Ordering::Relaxed);
    }
}
