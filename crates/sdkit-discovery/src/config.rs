//! Configuration: the shared [`Config`] of a [`Client`](crate::Client), and the per-service
//! [`InstancerConfig`] and [`RegistrarConfig`]. (Just over 500 lines with its tests: three
//! configs, each a field list plus one setter per field; kept together so the defaults read in
//! one place.)
//!
//! Every option has a default and a builder method; the structs are `serde::Deserialize`
//! (durations as strings such as `"30s"`, `"500ms"`, `"30m"` or a number of seconds), so a
//! facade can fill them from a URL such as
//! `discovery://127.0.0.1:7171,127.0.0.2:7171/demo.service?env=dev&zone=sh001&scheme=grpc`.
//!
//! ```
//! use std::time::Duration;
//! use sdkit_discovery::Config;
//!
//! let config: Config = serde_json::from_str(
//!     r#"{"nodes":["127.0.0.1:7171"],"env":"dev","zone":"sh001","poll_hold":"5s"}"#,
//! ).unwrap();
//! assert_eq!(config.poll_hold, Duration::from_secs(5));
//! assert_eq!(config.rotate_interval, Duration::from_secs(30 * 60));
//! assert!(config.validate().is_ok());
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use sdkit_core::{Backoff, Secret};
use serde::Deserialize;

use crate::Error;

/// The default port of a discovery node.
pub const DEFAULT_PORT: u16 = 7171;

/// The default cap on the instances of one appid in one answer ([`Config::max_instances`]).
pub const DEFAULT_MAX_INSTANCES: usize = 100_000;

/// The default weight of an instance whose `metadata.weight` is absent or not positive (as in
/// kratos).
pub const DEFAULT_WEIGHT: u32 = 10;

/// Settings of a [`Client`](crate::Client): where the registry is and who this process is.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Seed nodes, `host:port` (an `http://` prefix is accepted; a missing port means 7171).
    /// Usable at once; the list found through `infra.discovery` replaces them while it works.
    pub nodes: Vec<String>,
    /// Deployment env, required (e.g. `dev`, `prod`).
    pub env: String,
    /// This process's zone: registrations go there, and self-discovery keeps only this zone's
    /// nodes. Empty: registrations are refused by the registry, self-discovery takes every zone.
    pub zone: String,
    /// This process's region (stored by the registry only).
    pub region: String,
    /// The hostname registrations use (the instance key within appid, env and zone). Default:
    /// the machine's host name.
    pub hostname: String,
    /// The watcher identity sent as `hostname` in long polls. Default: a unique value per
    /// client, `<hostname>-<pid>-<random>` (the reference server merges concurrent polls that
    /// share a hostname).
    pub watcher_id: Option<String>,
    /// Discover the discovery nodes through `infra.discovery` (default true).
    pub self_discovery: bool,
    /// Move to the next node this often, to spread load (default 30 min; zero disables).
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    pub rotate_interval: Duration,
    /// The longest hold asked of the registry for a long poll, through `x1-bmspy-timeout`
    /// (default 30 s, the reference's fixed hold).
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    pub poll_hold: Duration,
    /// How much longer than `poll_hold` the HTTP timeout of a long poll is (default 10 s).
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    pub poll_slack: Duration,
    /// A long-poll answer without progress (`-304`, or `0` that moves no cursor) that arrives
    /// sooner than this is "quiet": consecutive quiet answers are spaced by `backoff` instead
    /// of re-polling at once, so a registry or proxy answering instantly cannot make the
    /// client spin (default 100 ms).
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    pub min_poll_interval: Duration,
    /// Just after the client moved to another node (or its node restarted, also when no
    /// request failed: the node's `infra.discovery` cursor changed), an answer that an
    /// app which had instances is unknown or empty is not trusted for this long: the last set
    /// is kept, with an error event saying it is stale, and the app is asked again (spaced by
    /// `backoff`); the empty set is published only if the answer still holds after the grace
    /// period (default 60 s, two renew intervals of the registrars; zero disables).
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    pub unknown_grace: Duration,
    /// HTTP timeout of every other request (default 10 s).
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    pub request_timeout: Duration,
    /// TCP connect timeout (default 3 s, as the Go clients).
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    pub connect_timeout: Duration,
    /// Delays of the poll loop after failures (default 200 ms doubling up to 5 s, jittered).
    pub backoff: Backoff,
    /// Largest reply body read, in bytes (default 16 MiB).
    pub max_body: usize,
    /// Most UP instances accepted for one appid in one answer (default 100 000); a larger
    /// answer is an error event and the last good set is kept.
    pub max_instances: usize,
    /// Most nodes accepted from self-discovery (default 64); a larger list is ignored (with a
    /// warning) and the node list in use is kept.
    pub max_nodes: usize,
    /// Bearer token sent as `Authorization: Bearer <token>` on every request (never logged).
    pub token: Option<Secret>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            nodes: Vec::new(),
            env: String::new(),
            zone: String::new(),
            region: String::new(),
            hostname: local_hostname(),
            watcher_id: None,
            self_discovery: true,
            rotate_interval: Duration::from_secs(30 * 60),
            poll_hold: Duration::from_secs(30),
            poll_slack: Duration::from_secs(10),
            min_poll_interval: Duration::from_millis(100),
            unknown_grace: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(5)),
            max_body: 16 << 20,
            max_instances: DEFAULT_MAX_INSTANCES,
            max_nodes: 64,
            token: None,
        }
    }
}

impl Config {
    /// Checks that the configuration can work.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the problem: no node, a node with another scheme than
    /// `http://` (the discovery API is plain HTTP), an empty env, a zero hold.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(node) = self
            .nodes
            .iter()
            .find(|n| n.contains("://") && !n.trim().starts_with("http://"))
        {
            return Err(Error::Config(format!(
                "node {node:?}: only http:// nodes are supported"
            )));
        }
        if self.nodes.iter().all(|n| normalize_node(n).is_empty()) {
            return Err(Error::Config("at least one node is required".into()));
        }
        if self.env.is_empty() {
            return Err(Error::Config("env is required".into()));
        }
        if self.poll_hold.is_zero() {
            return Err(Error::Config("poll_hold must be positive".into()));
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(Error::Config("timeouts must be positive".into()));
        }
        if self.max_body == 0 || self.max_instances == 0 || self.max_nodes == 0 {
            return Err(Error::Config(
                "max_body, max_instances and max_nodes must be positive".into(),
            ));
        }
        if let Some(token) = &self.token
            && (token.is_empty() || http::HeaderValue::try_from(token.expose()).is_err())
        {
            // Never name the token itself.
            return Err(Error::Config(
                "the token must be non-empty visible ASCII (it is sent as a header)".into(),
            ));
        }
        Ok(())
    }

    /// The seed nodes, normalised to `host:port`, empty entries and duplicates dropped.
    pub fn seed_nodes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for node in self.nodes.iter().map(|n| normalize_node(n)) {
            if !node.is_empty() && !out.contains(&node) {
                out.push(node);
            }
        }
        out
    }

    /// Seed nodes, `host:port`.
    pub fn with_nodes<I, S>(mut self, nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.nodes = nodes.into_iter().map(Into::into).collect();
        self
    }

    /// Deployment env (required).
    pub fn with_env(mut self, env: impl Into<String>) -> Self {
        self.env = env.into();
        self
    }

    /// This process's zone.
    pub fn with_zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = zone.into();
        self
    }

    /// This process's region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// The hostname registrations use (default: the machine's).
    pub fn with_hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = hostname.into();
        self
    }

    /// The watcher identity of long polls (default: unique per client).
    pub fn with_watcher_id(mut self, id: impl Into<String>) -> Self {
        self.watcher_id = Some(id.into());
        self
    }

    /// Self-discovery of nodes through `infra.discovery` (default on).
    pub fn with_self_discovery(mut self, on: bool) -> Self {
        self.self_discovery = on;
        self
    }

    /// Periodic node rotation (default 30 min; zero disables).
    pub fn with_rotate_interval(mut self, interval: Duration) -> Self {
        self.rotate_interval = interval;
        self
    }

    /// Longest long-poll hold asked of the registry (default 30 s).
    pub fn with_poll_hold(mut self, hold: Duration) -> Self {
        self.poll_hold = hold;
        self
    }

    /// Extra HTTP timeout of a long poll beyond the hold (default 10 s).
    pub fn with_poll_slack(mut self, slack: Duration) -> Self {
        self.poll_slack = slack;
        self
    }

    /// How soon a long-poll answer without progress counts as quiet (default 100 ms).
    pub fn with_min_poll_interval(mut self, interval: Duration) -> Self {
        self.min_poll_interval = interval;
        self
    }

    /// How long an "unknown app" answer is not trusted after a node switch (default 60 s).
    pub fn with_unknown_grace(mut self, grace: Duration) -> Self {
        self.unknown_grace = grace;
        self
    }

    /// HTTP timeout of other requests (default 10 s).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// TCP connect timeout (default 3 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Backoff of the poll loop after failures (default 200 ms doubling to 5 s, jittered).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Largest reply body read (default 16 MiB).
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Most UP instances accepted for one appid in one answer (default 100 000).
    pub fn with_max_instances(mut self, max: usize) -> Self {
        self.max_instances = max;
        self
    }

    /// Most nodes accepted from self-discovery (default 64).
    pub fn with_max_nodes(mut self, max: usize) -> Self {
        self.max_nodes = max;
        self
    }

    /// Sends `Authorization: Bearer <token>` on every request.
    pub fn with_token(mut self, token: impl Into<Secret>) -> Self {
        self.token = Some(token.into());
        self
    }
}

/// `http://h:p/` → `h:p`; `h` → `h:7171`.
pub(crate) fn normalize_node(node: &str) -> String {
    let node = node.trim();
    let node = node.strip_prefix("http://").unwrap_or(node);
    let node = node.split('/').next().unwrap_or_default();
    if node.is_empty() {
        return String::new();
    }
    let has_port = match node.rfind(']') {
        Some(end) => node[end..].contains(':'),
        None => node.matches(':').count() == 1,
    };
    if has_port {
        node.to_owned()
    } else if node.contains(':') && !node.starts_with('[') {
        format!("[{node}]:{DEFAULT_PORT}")
    } else {
        format!("{node}:{DEFAULT_PORT}")
    }
}

/// The machine's host name: `$HOSTNAME`, else the kernel's, else `localhost`.
pub(crate) fn local_hostname() -> String {
    if let Ok(h) = std::env::var("HOSTNAME")
        && !h.trim().is_empty()
    {
        return h.trim().to_owned();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// What one [`Instancer`](crate::Instancer) watches.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InstancerConfig {
    /// The application id, e.g. `demo.service`.
    pub appid: String,
    /// Keep only instances of this zone (default: every zone).
    pub zone: Option<String>,
    /// The address scheme to use, e.g. `grpc` (default) or `http`; instances without an
    /// address of this scheme are skipped.
    pub scheme: String,
}

impl Default for InstancerConfig {
    fn default() -> Self {
        InstancerConfig {
            appid: String::new(),
            zone: None,
            scheme: "grpc".into(),
        }
    }
}

impl InstancerConfig {
    /// Watches `appid`, every zone, `grpc` addresses.
    pub fn new(appid: impl Into<String>) -> Self {
        InstancerConfig {
            appid: appid.into(),
            ..InstancerConfig::default()
        }
    }

    /// Keeps only instances of `zone`.
    pub fn with_zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = Some(zone.into()).filter(|z: &String| !z.is_empty());
        self
    }

    /// Uses addresses of `scheme` (without `://`).
    pub fn with_scheme(mut self, scheme: impl Into<String>) -> Self {
        self.scheme = scheme.into();
        self
    }

    /// Checks the appid and the scheme (a bare name such as `grpc`, not `grpc://`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the problem.
    pub fn validate(&self) -> Result<(), Error> {
        if self.appid.is_empty() {
            return Err(Error::Config("appid is required".into()));
        }
        if self.scheme.is_empty() || self.scheme.contains("://") {
            return Err(Error::Config(format!(
                "scheme must be a bare scheme such as grpc, got {:?}",
                self.scheme
            )));
        }
        Ok(())
    }
}

/// What one [`Registrar`](crate::Registrar) registers. Region, zone, env and hostname come from
/// the client's [`Config`].
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrarConfig {
    /// The application id.
    pub appid: String,
    /// Addresses, `scheme://host:port` (e.g. `grpc://10.0.0.1:9000`); at least one.
    pub addrs: Vec<String>,
    /// Version string.
    pub version: String,
    /// Metadata (e.g. `weight`, `color`, `cluster`), sent as a JSON object string.
    pub metadata: BTreeMap<String, String>,
    /// Register as WAITING (out of traffic) instead of UP (default false).
    pub waiting: bool,
    /// Renew interval (default 30 s, as the Go clients; the registry evicts after 90 s).
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    pub renew_interval: Duration,
    /// Bound on deregistration (default 5 s).
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    pub deregister_timeout: Duration,
    /// Retry delays after a failed register or renew (default 100 ms doubling up to 10 s).
    pub backoff: Backoff,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            appid: String::new(),
            addrs: Vec::new(),
            version: String::new(),
            metadata: BTreeMap::new(),
            waiting: false,
            renew_interval: Duration::from_secs(30),
            deregister_timeout: Duration::from_secs(5),
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
        }
    }
}

impl RegistrarConfig {
    /// Registers `appid`; add at least one address.
    pub fn new(appid: impl Into<String>) -> Self {
        RegistrarConfig {
            appid: appid.into(),
            ..RegistrarConfig::default()
        }
    }

    /// Adds an address, `scheme://host:port`.
    pub fn with_addr(mut self, addr: impl Into<String>) -> Self {
        self.addrs.push(addr.into());
        self
    }

    /// Sets the version.
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Sets one metadata entry.
    pub fn with_meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Sets the weight (`metadata.weight`).
    pub fn with_weight(self, weight: u32) -> Self {
        self.with_meta("weight", weight.to_string())
    }

    /// Registers as WAITING (true) or UP (false).
    pub fn with_waiting(mut self, waiting: bool) -> Self {
        self.waiting = waiting;
        self
    }

    /// Sets the renew interval.
    pub fn with_renew_interval(mut self, interval: Duration) -> Self {
        self.renew_interval = interval;
        self
    }

    /// Sets the bound on deregistration.
    pub fn with_deregister_timeout(mut self, timeout: Duration) -> Self {
        self.deregister_timeout = timeout;
        self
    }

    /// Sets the retry backoff.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.appid.is_empty() {
            return Err(Error::Config("appid is required".into()));
        }
        if self.addrs.iter().all(|a| a.trim().is_empty()) {
            return Err(Error::Config("at least one address is required".into()));
        }
        if self.renew_interval.is_zero() {
            return Err(Error::Config("renew_interval must be positive".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_normalised() {
        assert_eq!(normalize_node("http://10.0.0.1:7171/"), "10.0.0.1:7171");
        assert_eq!(normalize_node("discovery"), "discovery:7171");
        assert_eq!(normalize_node("::1"), "[::1]:7171");
        assert_eq!(normalize_node("[::1]:80"), "[::1]:80");
        assert_eq!(normalize_node(" "), "");
    }

    #[test]
    fn validation_names_the_problem() {
        let https = Config {
            nodes: vec!["https://10.0.0.1:7171".into()],
            env: "dev".into(),
            ..Config::default()
        };
        assert!(
            https
                .validate()
                .unwrap_err()
                .to_string()
                .contains("only http://")
        );
        let c = Config::default();
        assert!(c.validate().unwrap_err().to_string().contains("node"));
        let c = Config {
            nodes: vec!["a:1".into()],
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("env"));
        assert!(RegistrarConfig::new("a").validate().is_err());
        assert!(
            InstancerConfig::new("a")
                .with_scheme("grpc://")
                .validate()
                .is_err()
        );
    }

    #[test]
    fn durations_deserialize_with_the_shared_grammar() {
        let r: RegistrarConfig = serde_json::from_str(
            r#"{"appid":"a","addrs":["grpc://h:1"],"renew_interval":"300ms"}"#,
        )
        .unwrap();
        assert_eq!(r.renew_interval, Duration::from_millis(300));
    }
}
