//! The Consul [`Instancer`]: a blocking-query loop on `GET /v1/health/service/:name`.
//!
//! The loop follows the rules in Consul's "Blocking Queries" documentation, each of which go-kit
//! broke at some point:
//!
//! * every answer's `X-Consul-Index` is sent back as `index`, with `wait` (default 55 s, at most
//!   10 min); the HTTP timeout is above `wait + wait/16`, Consul's maximum jitter;
//! * a return is not proof of change: equal snapshots are dropped by the core cache;
//! * an index that goes **backwards** (snapshot restore, a new cluster) resets the index to 0,
//!   so the next query reads the current state at once instead of hanging on an index that
//!   will not come back (go-kit #997/#999);
//! * an index of **0** is treated as 1, so the loop never sends two non-blocking queries in a row
//!   by itself (go-kit #1214/#1215);
//! * a **token bucket** bounds the request rate whatever Consul answers (go-kit #627);
//! * transport errors, 429 and 503 (and every other failure) back off with capped jitter; the
//!   error is published as an error event and the last good set is kept;
//! * stop cancels the in-flight blocking query at once (the connection is dropped).
//!
//! Each service entry becomes an [`Instance`]: identity = `<Node.Node>/<Service.ID>`, always
//! (a service ID is unique per agent, not per cluster, and an identity that changed while
//! another node happened to report the same ID would make the balancer reconnect), address =
//! `Service.Address`, else `Node.Address` (IPv6 bracketed), weight = `Weights.Passing` (or
//! `Weights.Warning` while a check warns), tags, `Service.Meta` as metadata, and the zone from a
//! configurable meta key. Entries without a node name, an address, or with port 0 are skipped
//! with a warning rather than failing the set.
//!
//! ```no_run
//! use sdkit_consul::{Config, Instancer, InstancerConfig};
//! use sdkit_core::Instancer as _;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let instancer = Instancer::from_config(Config::new("127.0.0.1:8500"),
//!                                        InstancerConfig::new("web").with_tag("v1"))?;
//! let snapshot = instancer.subscribe().ready(std::time::Duration::from_secs(5)).await?;
//! println!("{} instances", snapshot.len());
//! # Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use sdkit_core::instancer::sleep_or_cancel;
use sdkit_core::{
    CancellationToken, FailureLoop, Instance, InstanceCache, SourceError, Subscription,
    TaskInstancer,
};
use tokio::time::Instant;

use crate::client::{Client, HealthQuery, ServiceEntry};
use crate::config::{Config, InstancerConfig, RateLimit};
use crate::error::Error;

/// Watches one Consul service and publishes its instances. Stops when dropped.
pub struct Instancer {
    inner: TaskInstancer,
    service: String,
}

impl fmt::Debug for Instancer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("consul::Instancer")
            .field("service", &self.service)
            .field("stopped", &self.inner.is_stopped())
            .finish()
    }
}

impl Instancer {
    /// Starts watching with `client`. Never blocks on the network: the first snapshot arrives
    /// when Consul answers.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the service name is empty.
    pub fn new(client: &Client, config: InstancerConfig) -> Result<Self, Error> {
        if config.service.trim().is_empty() {
            return Err(Error::Config("the service name is empty".into()));
        }
        let service = config.service.clone();
        let client = client.clone();
        let inner = TaskInstancer::spawn_service("consul", &service, move |cache, token| {
            watch(client, config, cache, token)
        });
        Ok(Instancer { inner, service })
    }

    /// Builds a [`Client`] from `config` and starts watching.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the client cannot be built (bad address or TLS material) or the
    /// service name is empty.
    pub fn from_config(config: Config, watch: InstancerConfig) -> Result<Self, Error> {
        Instancer::new(&Client::new(config)?, watch)
    }

    /// The watched service.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The cache the loop publishes into.
    pub fn cache(&self) -> &InstanceCache {
        self.inner.cache()
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

/// The index to send next, given the previous one and the answer's `X-Consul-Index`.
///
/// * 0 or missing counts as 1 (never loop on non-blocking queries);
/// * then, backwards → 0 (reset: read the current state at once);
/// * otherwise the new index.
pub fn next_index(previous: u64, answered: Option<u64>) -> u64 {
    let n = answered.unwrap_or(0).max(1);
    if n < previous { 0 } else { n }
}

/// A token bucket on the query loop.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(limit: RateLimit) -> Self {
        let rate = if limit.per_second.is_finite() && limit.per_second > 0.0 {
            limit.per_second
        } else {
            RateLimit::default().per_second
        };
        let burst = f64::from(limit.burst.max(1));
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes one token, waiting for it; `false` when cancelled.
    async fn acquire(&mut self, token: &CancellationToken) -> bool {
        self.refill();
        if self.tokens < 1.0 {
            let wait = Duration::from_secs_f64(((1.0 - self.tokens) / self.rate).min(3600.0));
            if !sleep_or_cancel(token, wait).await {
                return false;
            }
            self.refill();
        }
        self.tokens = (self.tokens - 1.0).max(0.0);
        true
    }
}

async fn watch(
    client: Client,
    config: InstancerConfig,
    cache: InstanceCache,
    token: CancellationToken,
) {
    let filter = config.filter_expression();
    let wait = config.effective_wait();
    let mut bucket = TokenBucket::new(config.rate_limit);
    let mut failures = FailureLoop::new("consul", config.service.clone(), config.backoff);
    let mut index = 0u64;
    let service = config.service.as_str();
    loop {
        if !bucket.acquire(&token).await {
            return;
        }
        let query = HealthQuery {
            passing: config.passing_only,
            filter: filter.as_deref(),
            datacenter: config.datacenter.as_deref(),
            stale: config.stale,
            index,
            wait,
        };
        let result = tokio::select! {
            biased;
            _ = token.cancelled() => return,
            r = client.health_service(service, &query) => r,
        };
        match result {
            Ok(response) => {
                failures.success();
                let next = next_index(index, response.index);
                if next == 0 {
                    tracing::warn!(
                        service,
                        previous = index,
                        answered = ?response.index,
                        "consul index went backwards; resetting"
                    );
                } else if response.index.unwrap_or(0) == 0 {
                    tracing::warn!(service, "consul answered without a usable X-Consul-Index");
                }
                index = next;
                let count = response.entries.len();
                if count > config.max_instances {
                    tracing::warn!(
                        service,
                        count,
                        max = config.max_instances,
                        "consul: too many instances; keeping the last good set"
                    );
                    cache.error(SourceError::new(Error::TooManyInstances {
                        service: service.to_owned(),
                        count,
                        max: config.max_instances,
                    }));
                    continue;
                }
                let instances = to_instances(&response.entries, &config);
                if cache.update(instances) {
                    tracing::debug!(service, index, "consul instance set changed");
                }
            }
            Err(error) => {
                if !failures.fail(&cache, &token, error).await {
                    return;
                }
            }
        }
    }
}

/// Maps Consul's entries onto instances; entries that cannot be used are skipped with a warning.
///
/// An instance's id is `<node>/<service ID>` for every entry: Consul keys service instances
/// by node and ID, so this is the one form that never collides and never changes while the
/// instance lives (it does not depend on what other nodes report).
pub fn to_instances(entries: &[ServiceEntry], config: &InstancerConfig) -> Vec<Instance> {
    entries
        .iter()
        .filter_map(|entry| match to_instance(entry, config) {
            Ok(instance) => Some(instance),
            Err(reason) => {
                tracing::warn!(
                    service = %config.service,
                    node = %entry.node.node,
                    id = %entry.service.id,
                    reason,
                    "consul: skipping a service entry"
                );
                None
            }
        })
        .collect()
}

fn to_instance(entry: &ServiceEntry, config: &InstancerConfig) -> Result<Instance, &'static str> {
    let service = &entry.service;
    if service.id.is_empty() {
        return Err("empty Service.ID");
    }
    if entry.node.node.is_empty() {
        return Err("empty Node.Node");
    }
    let host = if service.address.trim().is_empty() {
        entry.node.address.trim()
    } else {
        service.address.trim()
    };
    if host.is_empty() {
        return Err("neither Service.Address nor Node.Address is set");
    }
    let port = u16::try_from(service.port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or("Service.Port is 0 or out of range")?;
    let warning = entry.checks.iter().flatten().any(|c| c.status == "warning");
    let weight = match service.weights {
        None => sdkit_core::instance::DEFAULT_WEIGHT,
        Some(w) if warning => w.warning,
        Some(w) => w.passing,
    };
    let id = format!("{}/{}", entry.node.node, service.id);
    let meta = service.meta.clone().unwrap_or_default();
    let zone = config
        .zone_meta_key
        .as_deref()
        .and_then(|k| meta.get(k))
        .filter(|z| !z.is_empty())
        .cloned();
    let mut instance = Instance::from_host_port(id, host, port)
        .with_weight(weight)
        .with_tags(service.tags.clone().unwrap_or_default())
        .with_metadata(meta);
    if let Some(zone) = zone {
        instance = instance.with_zone(zone);
    }
    Ok(instance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_rules() {
        assert_eq!(next_index(0, Some(10)), 10);
        assert_eq!(next_index(10, Some(12)), 12);
        assert_eq!(next_index(10, Some(10)), 10);
        assert_eq!(next_index(10, Some(3)), 0, "backwards resets");
        assert_eq!(next_index(0, Some(0)), 1, "0 is treated as 1");
        assert_eq!(
            next_index(1, Some(0)),
            1,
            "0 after 1 stays 1, no reset loop"
        );
        assert_eq!(next_index(10, Some(0)), 0, "0 after 10 is backwards");
        assert_eq!(next_index(0, None), 1);
    }

    fn entries(json: &str) -> Vec<ServiceEntry> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn mapping() {
        let e = entries(
            r#"[
            {"Node": {"Node": "n1", "Address": "fe80::1"}, "Service": {"ID": "a", "Port": 80, "Address": "", "Tags": null, "Meta": null}},
            {"Node": {"Node": "n1", "Address": "10.0.0.1"}, "Service": {"ID": "b", "Port": 81, "Address": "10.0.0.2",
              "Tags": ["x"], "Meta": {"zone": "z1"}, "Weights": {"Passing": 7, "Warning": 2}},
             "Checks": [{"CheckID": "c", "Status": "warning", "ServiceID": "b"}]},
            {"Node": {"Node": "n1", "Address": "10.0.0.1"}, "Service": {"ID": "zero", "Port": 0}},
            {"Node": {"Node": "n1", "Address": ""}, "Service": {"ID": "noaddr", "Port": 1}},
            {"Node": {"Node": "n1", "Address": "h"}, "Service": {"ID": "dup", "Port": 1}},
            {"Node": {"Node": "n2", "Address": "h"}, "Service": {"ID": "dup", "Port": 1}},
            {"Node": {"Node": "", "Address": "h"}, "Service": {"ID": "nonode", "Port": 1}}
        ]"#,
        );
        let v = to_instances(&e, &InstancerConfig::new("web"));
        let ids: Vec<_> = v.iter().map(|i| i.id()).collect();
        assert_eq!(ids, ["n1/a", "n1/b", "n1/dup", "n2/dup"]);
        assert_eq!(v[0].addr(), "[fe80::1]:80");
        assert_eq!(v[0].weight(), 1);
        assert_eq!(v[1].addr(), "10.0.0.2:81");
        assert_eq!(v[1].weight(), 2, "warning weight");
        assert_eq!(v[1].zone(), Some("z1"));
        assert_eq!(v[1].tags().collect::<Vec<_>>(), ["x"]);
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_limits_rate() {
        let token = CancellationToken::new();
        let mut b = TokenBucket::new(RateLimit {
            per_second: 2.0,
            burst: 3,
        });
        let start = Instant::now();
        for _ in 0..9 {
            assert!(b.acquire(&token).await);
        }
        // 3 at once, then 6 more at 2/s.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(2990), "{elapsed:?}");
        assert!(elapsed <= Duration::from_millis(3100), "{elapsed:?}");
        token.cancel();
        let mut empty = TokenBucket::new(RateLimit {
            per_second: 0.001,
            burst: 1,
        });
        assert!(empty.acquire(&token).await);
        assert!(!empty.acquire(&token).await, "cancellation ends the wait");
    }
}
