//! The DNS SRV [`Instancer`]: refreshes at the answer's TTL and publishes complete snapshots.
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
//! | SRV | [`Instance`] |
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
//! use sdkit_dnssrv::{Config, Instancer};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let instancer = Instancer::new(
//!     Config::new("_http._tcp.web.example.com").nameserver("127.0.0.1:5353".parse()?),
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

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hickory_resolver::proto::rr::Name;
use sdkit_core::instance::{join_host_port, trim_trailing_dot};
use sdkit_core::instancer::sleep_or_cancel;
use sdkit_core::{
    Backoff, CancellationToken, Instance, InstanceCache, SourceError, Subscription, TaskInstancer,
};

use crate::Error;
use crate::client::{Client, SrvAnswer, SrvRecord, earliest};
use crate::config::{Config, PriorityMode, TargetMode};

/// Metadata key carrying the SRV priority (with [`PriorityMode::All`]).
pub const META_PRIORITY: &str = "priority";
/// Metadata key carrying the SRV target host name (trailing dot trimmed).
pub const META_TARGET: &str = "target";

/// How many target address lookups run at once in one refresh.
const LOOKUP_CONCURRENCY: usize = 8;

/// Watches one SRV name and publishes its instances. See the [module docs](self).
///
/// Implements [`sdkit_core::Instancer`]; dropping it stops it.
#[derive(Debug)]
pub struct Instancer {
    name: String,
    inner: TaskInstancer,
}

impl Instancer {
    /// Validates `config`, builds the resolver and starts watching in the background. Never
    /// waits for the network: the first snapshot arrives when the first refresh completes.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] or [`Error::InvalidName`] for a bad configuration,
    /// [`Error::SystemConfig`] when no name server is configured and the system resolver
    /// configuration cannot be read.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn new(config: Config) -> Result<Self, Error> {
        let resolver = SrvResolver::new(config)?;
        let name = resolver.name().to_owned();
        let inner = TaskInstancer::spawn_service("dnssrv", &name, move |cache, token| {
            watch(resolver, cache, token)
        });
        Ok(Instancer { name, inner })
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

async fn watch(resolver: SrvResolver, cache: InstanceCache, token: CancellationToken) {
    let (initial, max) = resolver.config.retry();
    let mut backoff = Backoff::new(initial, max).start();
    loop {
        let result = tokio::select! {
            _ = token.cancelled() => return,
            result = resolver.resolve() => result,
        };
        let delay = match result {
            Ok(resolution) => {
                backoff.reset();
                let count = resolution.instances.len();
                if cache.update(resolution.instances) {
                    tracing::debug!(name = %resolver.name, count, "dnssrv: published");
                }
                resolution.refresh_in
            }
            Err(error) => {
                let delay = backoff.next_delay();
                tracing::warn!(%error, retry_in = ?delay, "dnssrv: refresh failed; keeping the last instances");
                cache.error(SourceError::new(error));
                delay
            }
        };
        if !sleep_or_cancel(&token, delay).await {
            return;
        }
    }
}

/// One-shot resolution of an SRV name with the [`Instancer`]'s rules (priority policy, weight
/// mapping, port-0 skipping, target resolution): what each refresh does, for callers that want
/// a single answer (a CLI `resolve` command, a health check) rather than a watch.
///
/// ```no_run
/// use sdkit_dnssrv::{Config, SrvResolver};
///
/// # #[tokio::main] async fn main() -> Result<(), sdkit_dnssrv::Error> {
/// let resolver = SrvResolver::new(Config::new("_http._tcp.web.example.com"))?;
/// let resolution = resolver.resolve().await?;
/// println!("{} instances, next refresh in {:?}", resolution.instances.len(), resolution.refresh_in);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SrvResolver {
    client: Client,
    config: Config,
    name: String,
}

/// The result of one [`SrvResolver::resolve`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Resolution {
    /// The instances (not yet sorted; an [`InstanceCache`] sorts them).
    pub instances: Vec<Instance>,
    /// When the answer expires (the SRV TTL and the TTLs of the addresses used), clamped to the
    /// configured refresh bounds.
    pub refresh_in: Duration,
}

impl SrvResolver {
    /// Validates `config` and builds the resolver (no network I/O).
    ///
    /// # Errors
    ///
    /// As [`Instancer::new`].
    pub fn new(config: Config) -> Result<Self, Error> {
        let client = Client::new(&config)?;
        let name = client.name_text();
        Ok(SrvResolver {
            client,
            config,
            name,
        })
    }

    /// The SRV name (without the trailing dot).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Queries the server (never a cached answer) and maps the answer onto instances.
    ///
    /// # Errors
    ///
    /// [`Error::Lookup`] or [`Error::TargetLookup`] when the server cannot be reached or fails;
    /// NXDOMAIN and "no records" are an empty [`Resolution`], not an error.
    pub async fn resolve(&self) -> Result<Resolution, Error> {
        let outcome = refresh(&self.client, &self.config).await?;
        Ok(Resolution {
            instances: outcome.instances,
            refresh_in: clamp_refresh(outcome.valid_until, &self.config),
        })
    }
}

/// The time until `valid_until`, clamped to the configured refresh bounds (an unknown expiry
/// means the minimum).
fn clamp_refresh(valid_until: Option<Instant>, config: &Config) -> Duration {
    let ttl = valid_until
        .map(|at| at.saturating_duration_since(Instant::now()))
        .unwrap_or_default();
    ttl.clamp(config.min_refresh(), config.max_refresh())
}

/// The result of one successful refresh.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) instances: Vec<Instance>,
    pub(crate) valid_until: Option<Instant>,
}

/// One usable SRV record with its addresses resolved (empty with host names kept).
#[derive(Debug)]
struct Usable {
    record: SrvRecord,
    target: String,
    ips: Vec<IpAddr>,
}

/// Runs one refresh: the SRV query, then target addresses.
///
/// When the answer carries glue for some targets but not for others (the server dropped
/// additional records to fit the UDP size limit, without setting TC), the SRV query is
/// repeated once over TCP, which carries them all, rather than looking each target up; if that
/// fails, the targets without glue are looked up.
pub(crate) async fn refresh(client: &Client, config: &Config) -> Result<Outcome, Error> {
    client.clear_cache();
    let name = client.name_text();
    let resolve_ips = config.target_mode() == TargetMode::ResolveIps;
    let mut answer = client.srv(false).await?;
    if resolve_ips && client.can_retry_over_tcp() && lost_glue(&answer) {
        tracing::debug!(%name, "dnssrv: the UDP answer lost glue to the size limit; asking again over TCP");
        match client.srv(true).await {
            Ok(over_tcp) => answer = over_tcp,
            Err(error) => {
                tracing::debug!(%name, %error, "dnssrv: TCP retry failed; looking targets up instead");
            }
        }
    }
    let (records, glue, glue_valid_until, srv_valid_until) = match answer {
        SrvAnswer::Empty { valid_until } => {
            tracing::debug!(%name, "dnssrv: no SRV records (NXDOMAIN or NODATA)");
            return Ok(Outcome {
                instances: Vec::new(),
                valid_until,
            });
        }
        SrvAnswer::Records {
            records,
            glue,
            glue_valid_until,
            valid_until,
        } => (records, glue, glue_valid_until, valid_until),
    };
    let candidates = usable_records(&name, records, config.target_limit());

    let mut valid_until = Some(srv_valid_until);
    let usable = if resolve_ips {
        let (usable, lookups_valid_until) =
            resolve_targets(client, &name, candidates, &glue, glue_valid_until).await?;
        valid_until = earliest(valid_until, lookups_valid_until);
        usable
    } else {
        candidates
            .into_iter()
            .map(|(record, target)| Usable {
                record,
                target,
                ips: Vec::new(),
            })
            .collect()
    };
    Ok(Outcome {
        instances: to_instances(usable, config),
        valid_until,
    })
}

/// `true` when the answer carries glue for some targets but not for others: the server dropped
/// additional records to fit the UDP size limit.
fn lost_glue(answer: &SrvAnswer) -> bool {
    let SrvAnswer::Records { records, glue, .. } = answer else {
        return false;
    };
    let with_glue = records
        .iter()
        .filter(|r| r.port != 0 && glue.contains_key(&r.target))
        .count();
    let usable = records
        .iter()
        .filter(|r| r.port != 0 && !r.target.is_root())
        .count();
    with_glue > 0 && with_glue < usable
}

/// Drops records that cannot be used (port 0, target `.`, malformed names) with a warning, and
/// caps the count.
fn usable_records(name: &str, records: Vec<SrvRecord>, limit: usize) -> Vec<(SrvRecord, String)> {
    let total = records.len();
    if total > limit {
        tracing::warn!(%name, total, limit, "dnssrv: too many SRV records; using the first {limit}");
    }
    records
        .into_iter()
        .take(limit)
        .filter_map(|record| {
            if record.target.is_root() {
                tracing::debug!(%name, "dnssrv: SRV target \".\" (service not available here); skipped");
                return None;
            }
            let target = trim_trailing_dot(&record.target.to_ascii()).to_owned();
            if !is_host_name(&target) {
                tracing::warn!(%name, target = %target.escape_debug(), "dnssrv: SRV target is not a host name; record skipped");
                return None;
            }
            if record.port == 0 {
                tracing::warn!(%name, %target, "dnssrv: SRV record with port 0; record skipped");
                return None;
            }
            Some((record, target))
        })
        .collect()
}

/// Letters, digits, `-`, `_` and dots between non-empty labels.
fn is_host_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

async fn resolve_targets(
    client: &Client,
    name: &str,
    candidates: Vec<(SrvRecord, String)>,
    glue: &HashMap<Name, Vec<IpAddr>>,
    glue_valid_until: Option<Instant>,
) -> Result<(Vec<Usable>, Option<Instant>), Error> {
    // Targets without glue, each looked up once.
    let mut missing: Vec<Name> = candidates
        .iter()
        .filter(|(record, _)| !glue.contains_key(&record.target))
        .map(|(record, _)| record.target.clone())
        .collect();
    missing.sort();
    missing.dedup();
    let used_glue = candidates.len() > missing.len();
    let mut valid_until = if used_glue { glue_valid_until } else { None };

    let results: Vec<_> = futures_util::stream::iter(missing)
        .map(|target| async move {
            let addresses = client.addresses(&target).await;
            (target, addresses)
        })
        .buffer_unordered(LOOKUP_CONCURRENCY)
        .collect()
        .await;
    let mut looked_up: HashMap<Name, Vec<IpAddr>> = HashMap::with_capacity(results.len());
    for (target, addresses) in results {
        let addresses = addresses?;
        valid_until = earliest(valid_until, addresses.valid_until);
        looked_up.insert(target, addresses.ips);
    }

    let mut usable = Vec::with_capacity(candidates.len());
    for (record, target) in candidates {
        let mut ips = glue
            .get(&record.target)
            .or_else(|| looked_up.get(&record.target))
            .cloned()
            .unwrap_or_default();
        ips.sort();
        ips.dedup();
        if ips.is_empty() {
            tracing::warn!(%name, %target, "dnssrv: SRV target has no addresses; record skipped");
            continue;
        }
        usable.push(Usable {
            record,
            target,
            ips,
        });
    }
    Ok((usable, valid_until))
}

/// Applies the priority policy and the weight mapping, and builds the instances.
fn to_instances(usable: Vec<Usable>, config: &Config) -> Vec<Instance> {
    let best = usable.iter().map(|u| u.record.priority).min();
    let publish_all = config.priority_mode() == PriorityMode::All;
    let selected: Vec<Usable> = usable
        .into_iter()
        .filter(|u| publish_all || Some(u.record.priority) == best)
        .collect();

    // RFC 2782: weight 0 records have a very small chance when others have weight, an equal
    // chance when the whole group has weight 0.
    let mut group_weighted: BTreeMap<u16, bool> = BTreeMap::new();
    for u in &selected {
        *group_weighted.entry(u.record.priority).or_default() |= u.record.weight > 0;
    }

    let mut instances = Vec::with_capacity(selected.len());
    for u in selected {
        let weight = if group_weighted
            .get(&u.record.priority)
            .copied()
            .unwrap_or(false)
        {
            u32::from(u.record.weight)
        } else {
            1
        };
        let port = u.record.port;
        let base_id = join_host_port(&u.target, port);
        let decorate = |instance: Instance| {
            let instance = instance
                .with_weight(weight)
                .with_meta(META_TARGET, u.target.clone());
            if publish_all {
                instance.with_meta(META_PRIORITY, u.record.priority.to_string())
            } else {
                instance
            }
        };
        if u.ips.is_empty() {
            instances.push(decorate(Instance::new(base_id.clone(), base_id)));
            continue;
        }
        let several = u.ips.len() > 1;
        for ip in &u.ips {
            let ip_text = ip.to_string();
            let id = if several {
                format!("{base_id}/{ip_text}")
            } else {
                base_id.clone()
            };
            instances.push(decorate(Instance::from_host_port(id, &ip_text, port)));
        }
    }
    instances
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(target: &str, port: u16, priority: u16, weight: u16) -> SrvRecord {
        SrvRecord {
            target: if target == "." {
                Name::root()
            } else {
                crate::client::parse_name(target).unwrap()
            },
            port,
            priority,
            weight,
        }
    }

    fn usable(target: &str, port: u16, priority: u16, weight: u16, ips: &[&str]) -> Usable {
        Usable {
            record: rec(target, port, priority, weight),
            target: target.to_owned(),
            ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn skips_port_zero_root_and_bad_targets() {
        let records = vec![
            rec("a.x", 80, 0, 1),
            rec("b.x", 0, 0, 1),
            rec(".", 80, 0, 1),
            SrvRecord {
                target: Name::from_labels(vec![b"we ird".to_vec(), b"x".to_vec()]).unwrap(),
                port: 80,
                priority: 0,
                weight: 1,
            },
        ];
        let kept = usable_records("_s._tcp.x", records, 10);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].1, "a.x");
        assert_eq!(
            usable_records("n", vec![rec("a.x", 1, 0, 0); 5], 2).len(),
            2
        );
    }

    #[test]
    fn best_priority_only_by_default_and_weights() {
        let config = Config::new("_s._tcp.x");
        let list = vec![
            usable("a.x", 80, 10, 5, &["10.0.0.1"]),
            usable("b.x", 80, 10, 0, &["10.0.0.2"]),
            usable("c.x", 80, 20, 9, &["10.0.0.3"]),
        ];
        let out = to_instances(list, &config);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].id(), "a.x:80");
        assert_eq!(out[0].addr(), "10.0.0.1:80");
        assert_eq!(out[0].weight(), 5);
        assert_eq!(
            out[1].weight(),
            0,
            "weight 0 next to weighted records stays 0"
        );
        assert_eq!(out[0].meta(META_PRIORITY), None);
        assert_eq!(out[0].meta(META_TARGET), Some("a.x"));
    }

    #[test]
    fn all_priorities_carry_priority_and_zero_groups_get_weight_one() {
        let config = Config::new("_s._tcp.x").priority(PriorityMode::All);
        let list = vec![
            usable("a.x", 80, 10, 0, &["10.0.0.1"]),
            usable("b.x", 80, 10, 0, &["10.0.0.2"]),
            usable("c.x", 80, 20, 9, &["::1", "10.0.0.3"]),
        ];
        let out = to_instances(list, &config);
        assert_eq!(out.len(), 4);
        assert!(out[..2].iter().all(|i| i.weight() == 1));
        assert_eq!(out[0].meta(META_PRIORITY), Some("10"));
        assert_eq!(out[2].meta(META_PRIORITY), Some("20"));
        let ids: Vec<_> = out[2..].iter().map(|i| (i.id(), i.addr())).collect();
        assert_eq!(
            ids,
            [
                ("c.x:80/::1", "[::1]:80"),
                ("c.x:80/10.0.0.3", "10.0.0.3:80")
            ]
        );
    }

    #[test]
    fn keep_hostnames() {
        let config = Config::new("_s._tcp.x").targets(TargetMode::KeepHostnames);
        let out = to_instances(vec![usable("a.x", 8080, 0, 3, &[])], &config);
        assert_eq!(out[0].id(), "a.x:8080");
        assert_eq!(out[0].addr(), "a.x:8080");
        assert_eq!(out[0].weight(), 3);
    }

    #[test]
    fn refresh_interval_is_clamped() {
        let config =
            Config::new("x").refresh_bounds(Duration::from_secs(2), Duration::from_secs(10));
        let now = Instant::now();
        assert_eq!(clamp_refresh(None, &config), Duration::from_secs(2));
        assert_eq!(clamp_refresh(Some(now), &config), Duration::from_secs(2));
        assert_eq!(
            clamp_refresh(Some(now + Duration::from_secs(3600)), &config),
            Duration::from_secs(10)
        );
        let mid = clamp_refresh(Some(now + Duration::from_secs(5)), &config);
        assert!(mid > Duration::from_secs(4) && mid <= Duration::from_secs(5));
    }

    #[test]
    fn host_names() {
        assert!(is_host_name("a-b.c_d.example"));
        assert!(!is_host_name("a..b"));
        assert!(!is_host_name("a b"));
        assert!(!is_host_name(""));
        assert!(!is_host_name(&"a".repeat(64)));
    }
}
