//! The DNS SRV [`Instancer`]: refreshes at the answer's TTL and publishes complete snapshots.
//! The refresh itself (query, record filtering, target resolution, mapping) lives in
//! [`resolve`](crate::resolve); this module is the watch loop around it.
//!
//! Each refresh queries the SRV name, drops unusable records (port 0, target `.`, malformed
//! target names) with a warning, resolves targets to addresses (additional-section glue first,
//! else A/AAAA lookups), applies the priority policy and maps SRV weights, then publishes the
//! complete set into the shared cache. The next refresh is due when the answer (and the target
//! addresses used) expire, clamped to `[min_refresh, max_refresh]`.
//!
//! * NXDOMAIN / no SRV records → an empty set (the service has no instances), not an error.
//! * A transport or server failure (timeout, refused, SERVFAIL, a failing target lookup) → an
//!   error event; the last good set is kept; retry with capped, jittered backoff.
//! * Stop (or drop) cancels a lookup in flight at once; nothing is published afterwards.
//!
//! # Mapping
//!
//! | SRV | [`Instance`](sdkit_core::Instance) |
//! |---|---|
//! | target, port | `addr` = `ip:port` (IPv6 bracketed), or `target:port` with [`TargetMode::KeepHostnames`] |
//! | target, port | `id` = `target:port` (trailing dot trimmed); `target:port/ip` when a target has several addresses |
//! | weight | `weight`; a group whose weights are all 0 gets weight 1 each (RFC 2782: equal chance); a weight-0 record next to weighted ones keeps weight 0 (never picked by weighted balancers) |
//! | priority | only the best group by default; with [`PriorityMode::All`] every group, priority in metadata `priority` |
//! | target | metadata `target` (the host name) |
//!
//! ```no_run
//! use std::time::Duration;
//! use sdkit_core::Instancer as _;
//! use sdkit_dnssrv::{Config, Instancer, InstancerConfig};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let instancer = Instancer::from_config(
//!     Config::default().with_nameserver("127.0.0.1:5353".parse()?),
//!     InstancerConfig::new("_http._tcp.web.example.com"),
//! )?;
//! let snapshot = instancer.subscribe().ready(Duration::from_secs(5)).await?;
//! for instance in snapshot.instances() {
//!     println!("{} at {} (weight {})", instance.id(), instance.addr(), instance.weight());
//! }
//! # Ok(()) }
//! ```
//!
//! [`TargetMode::KeepHostnames`]: crate::TargetMode::KeepHostnames
//! [`PriorityMode::All`]: crate::PriorityMode::All

use sdkit_core::task::sleep_or_cancel;
use sdkit_core::{CancellationToken, FailureLoop, InstanceCache, Subscription, TaskInstancer};

use crate::Error;
use crate::client::{Client, Query};
use crate::config::{Config, InstancerConfig};
use crate::resolve::resolve;

/// Watches one SRV name and publishes its instances. See the [module docs](self).
///
/// Implements [`sdkit_core::Instancer`]; dropping it stops it.
#[derive(Debug)]
pub struct Instancer {
    name: String,
    inner: TaskInstancer,
}

impl Instancer {
    /// Starts watching `config.name()` through `client` in the background. Never waits for the
    /// network: the first snapshot arrives when the first refresh completes.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] or [`Error::InvalidName`] for a bad configuration.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn new(client: &Client, config: InstancerConfig) -> Result<Self, Error> {
        config.validate()?;
        let query = Query::new(client, config.name(), config.address_family())?;
        let name = query.name_text();
        let inner = TaskInstancer::spawn_service("dnssrv", &name, move |cache, token| {
            watch(query, config, cache, token)
        });
        Ok(Instancer { name, inner })
    }

    /// Builds a [`Client`] from `config` and starts watching `watch.name()`.
    ///
    /// # Errors
    ///
    /// As [`Client::new`] and [`Instancer::new`].
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn from_config(config: Config, watch: InstancerConfig) -> Result<Self, Error> {
        Instancer::new(&Client::new(config)?, watch)
    }

    /// The SRV name watched (without the trailing dot).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl sdkit_core::Instancer for Instancer {
    fn subscribe(&self) -> Subscription {
        self.inner.subscribe()
    }

    fn stop(&self) {
        self.inner.stop();
    }
}

async fn watch(
    query: Query,
    config: InstancerConfig,
    cache: InstanceCache,
    token: CancellationToken,
) {
    let name = query.name_text();
    let mut failures = FailureLoop::new("dnssrv", name.clone(), config.backoff());
    loop {
        let result = tokio::select! {
            _ = token.cancelled() => return,
            result = resolve(&query, &config) => result,
        };
        let resolution = match result {
            Ok(resolution) => resolution,
            Err(error) => {
                if !failures.fail(&cache, &token, error).await {
                    return;
                }
                continue;
            }
        };
        failures.success();
        let count = resolution.instances.len();
        if cache.update(resolution.instances) {
            tracing::debug!(%name, count, "dnssrv: published");
        }
        if !sleep_or_cancel(&token, resolution.refresh_in).await {
            return;
        }
    }
}
