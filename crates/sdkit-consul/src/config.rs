//! Configuration of the Consul backend: builders with sane defaults, deserialisable with serde.
//! (Over 500 lines with its tests: three configs, each a field list plus one setter per field;
//! one concept, kept together so the defaults read in one place.)
//!
//! * [`Config`] — how to reach the agent: address, ACL token, TLS, timeouts.
//! * [`InstancerConfig`] — what to watch: service, tags, filter, health, datacenter, blocking
//!   query wait, rate limit and backoff.
//! * [`RegistrarConfig`] — what to register: name, ID, address, port, tags, meta, weights and
//!   the check (TTL by default, or HTTP / TCP).
//!
//! Durations deserialise from a string such as `"55s"`, `"250ms"`, `"10m"` or a number of
//! seconds ([`sdkit_core::duration`]).
//!
//! ```
//! use std::time::Duration;
//! use sdkit_consul::{Config, InstancerConfig, RegistrarConfig};
//!
//! let config = Config::new("127.0.0.1:8500").with_token("s3cr3t");
//! assert!(!format!("{config:?}").contains("s3cr3t"));
//!
//! let watch = InstancerConfig::new("web")
//!     .with_tag("v1")
//!     .with_tag("blue")
//!     .with_datacenter("dc2")
//!     .with_wait(Duration::from_secs(30));
//! assert_eq!(watch.filter_expression().as_deref(),
//!            Some(r#"Service.Tags contains "v1" and Service.Tags contains "blue""#));
//!
//! let reg = RegistrarConfig::new("web", 8080).with_address("10.0.0.1").with_ttl(Duration::from_secs(10));
//! assert_eq!(reg.service_id(), "web-10.0.0.1-8080");
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use sdkit_core::{Backoff, Secret};
use serde::Deserialize;

/// Consul's upper bound on a blocking query's `wait`.
pub const MAX_WAIT: Duration = Duration::from_secs(600);
/// The default `wait` of a blocking query.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(55);

/// TLS towards the agent (rustls). Without a CA, the Mozilla roots (webpki-roots) are trusted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the CA certificate(s) to trust.
    pub ca_file: Option<PathBuf>,
    /// PEM text of the CA certificate(s) to trust (in addition to `ca_file`).
    pub ca_pem: Option<String>,
    /// PEM file with the client certificate chain (mutual TLS).
    pub cert_file: Option<PathBuf>,
    /// PEM file with the client private key (mutual TLS).
    pub key_file: Option<PathBuf>,
}

impl TlsConfig {
    /// Trusts the CA certificate(s) in `path`.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Trusts the CA certificate(s) in `pem`.
    pub fn with_ca_pem(mut self, pem: impl Into<String>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Presents the client certificate in `cert` with the key in `key` (PEM files).
    pub fn with_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.cert_file = Some(cert.into());
        self.key_file = Some(key.into());
        self
    }
}

/// How to reach the Consul agent.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `host:port`, `http://host:port` or `https://host:port` (IPv6 hosts bracketed). Default
    /// `127.0.0.1:8500`.
    pub address: String,
    /// ACL token, sent as `X-Consul-Token`.
    pub token: Option<Secret>,
    /// TLS; also switched on by an `https://` address.
    pub tls: Option<TlsConfig>,
    /// Connect timeout. Default 5 s.
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    pub connect_timeout: Duration,
    /// Timeout of non-blocking requests (register, heartbeat, first read). Default 10 s.
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    pub request_timeout: Duration,
    /// Largest response body accepted. Default 16 MiB.
    pub max_body_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            address: "127.0.0.1:8500".into(),
            token: None,
            tls: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_body_bytes: 16 << 20,
        }
    }
}

impl Config {
    /// The agent at `address`, other settings default.
    pub fn new(address: impl Into<String>) -> Self {
        Config {
            address: address.into(),
            ..Config::default()
        }
    }

    /// Sets the ACL token.
    pub fn with_token(mut self, token: impl Into<Secret>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Uses TLS with these settings.
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets the connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the timeout of non-blocking requests.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the largest accepted response body.
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }
}

/// A token bucket: at most `burst` requests at once, refilled at `per_second`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Bucket size.
    pub burst: u32,
}

impl Default for RateLimit {
    /// 1 request per second sustained, bursts of 5: a blocking-query loop that Consul answers at
    /// once (index never advancing, go-kit #1214) stays at one request per second.
    fn default() -> Self {
        RateLimit {
            per_second: 1.0,
            burst: 5,
        }
    }
}

/// What the [`Instancer`](crate::Instancer) watches, and how.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InstancerConfig {
    /// The service name.
    pub service: String,
    /// Only instances whose checks all pass (`?passing`). Default `true`.
    pub passing_only: bool,
    /// Instances must carry every one of these tags (filtered server-side, AND).
    pub tags: Vec<String>,
    /// An extra `filter` expression (go-bexpr), ANDed with the tag filter.
    pub filter: Option<String>,
    /// Datacenter to query (`?dc=`); the agent's own when unset.
    pub datacenter: Option<String>,
    /// Allow stale reads from any server (`?stale`). Default `false`.
    pub stale: bool,
    /// Blocking-query wait. Default 55 s; at most 10 min (larger values are clamped).
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    pub wait: Duration,
    /// The `Service.Meta` key that holds the zone. Default `zone`.
    pub zone_meta_key: Option<String>,
    /// Rate limit of the query loop.
    pub rate_limit: RateLimit,
    /// Delays after errors. Default 250 ms doubling up to 30 s.
    pub backoff: Backoff,
}

impl Default for InstancerConfig {
    fn default() -> Self {
        InstancerConfig {
            service: String::new(),
            passing_only: true,
            tags: Vec::new(),
            filter: None,
            datacenter: None,
            stale: false,
            wait: DEFAULT_WAIT,
            zone_meta_key: Some("zone".into()),
            rate_limit: RateLimit::default(),
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(30)),
        }
    }
}

impl InstancerConfig {
    /// Watches `service` with the defaults.
    pub fn new(service: impl Into<String>) -> Self {
        InstancerConfig {
            service: service.into(),
            ..InstancerConfig::default()
        }
    }

    /// Passing instances only (`true`, the default) or every instance.
    pub fn with_passing_only(mut self, passing_only: bool) -> Self {
        self.passing_only = passing_only;
        self
    }

    /// Requires one more tag.
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Adds an extra filter expression (ANDed with the tags).
    pub fn with_filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }

    /// Queries datacenter `dc`.
    pub fn with_datacenter(mut self, dc: impl Into<String>) -> Self {
        self.datacenter = Some(dc.into());
        self
    }

    /// Allows stale reads.
    pub fn with_stale(mut self, stale: bool) -> Self {
        self.stale = stale;
        self
    }

    /// Sets the blocking-query wait (clamped to 10 min).
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Reads the zone from `Service.Meta[key]` (`None`: no zone).
    pub fn with_zone_meta_key(mut self, key: Option<String>) -> Self {
        self.zone_meta_key = key;
        self
    }

    /// Sets the loop's rate limit.
    pub fn with_rate_limit(mut self, per_second: f64, burst: u32) -> Self {
        self.rate_limit = RateLimit { per_second, burst };
        self
    }

    /// Sets the error backoff range.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The wait actually sent: at least 1 ms, at most [`MAX_WAIT`].
    pub fn effective_wait(&self) -> Duration {
        self.wait.clamp(Duration::from_millis(1), MAX_WAIT)
    }

    /// The `filter` expression sent to Consul: one `Service.Tags contains "…"` per tag, ANDed,
    /// and the extra filter in parentheses; `None` when there is nothing to filter.
    pub fn filter_expression(&self) -> Option<String> {
        let mut parts: Vec<String> = self
            .tags
            .iter()
            .map(|t| format!("Service.Tags contains {}", quote(t)))
            .collect();
        if let Some(extra) = self
            .filter
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            if parts.is_empty() {
                parts.push(extra.to_string());
            } else {
                parts.push(format!("({extra})"));
            }
        }
        (!parts.is_empty()).then(|| parts.join(" and "))
    }
}

/// A go-bexpr string literal.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The health check a registration carries.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum CheckConfig {
    /// A TTL check the registrar heartbeats every TTL/2.
    Ttl {
        /// The TTL.
        #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
        ttl: Duration,
    },
    /// An HTTP check the agent runs (`GET url` every `interval`).
    Http {
        /// The URL the agent probes.
        url: String,
        /// Probe interval.
        #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
        interval: Duration,
        /// Probe timeout.
        #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
        timeout: Duration,
    },
    /// A TCP check the agent runs (connects to `address` every `interval`).
    Tcp {
        /// `host:port` the agent connects to.
        address: String,
        /// Probe interval.
        #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
        interval: Duration,
        /// Probe timeout.
        #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
        timeout: Duration,
    },
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig::Ttl {
            ttl: Duration::from_secs(10),
        }
    }
}

/// Weights of a registration (`Service.Weights`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    /// Weight while passing (at least 1).
    pub passing: u32,
    /// Weight while warning.
    pub warning: u32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            passing: 1,
            warning: 1,
        }
    }
}

/// What the [`Registrar`](crate::Registrar) registers with the local agent.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrarConfig {
    /// Service name.
    pub name: String,
    /// Service ID; default `<name>-<address>-<port>`.
    pub id: Option<String>,
    /// Address to advertise; the agent's node address when unset.
    pub address: Option<String>,
    /// Port to advertise.
    pub port: u16,
    /// Tags.
    pub tags: Vec<String>,
    /// `Service.Meta`.
    pub meta: BTreeMap<String, String>,
    /// `Service.Weights`.
    pub weights: Weights,
    /// The health check. Default: a 10 s TTL check.
    pub check: CheckConfig,
    /// `DeregisterCriticalServiceAfter`. Default 1 min (Consul's minimum).
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    pub deregister_critical_after: Duration,
    /// How often the registrar verifies an HTTP/TCP-checked registration still exists. Default
    /// 30 s. (TTL checks are heartbeated every TTL/2.)
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    pub verify_interval: Duration,
    /// Delays after failures. Default 100 ms doubling up to 10 s.
    pub backoff: Backoff,
    /// Bound on deregistration at shutdown. Default 5 s.
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    pub deregister_timeout: Duration,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            name: String::new(),
            id: None,
            address: None,
            port: 0,
            tags: Vec::new(),
            meta: BTreeMap::new(),
            weights: Weights::default(),
            check: CheckConfig::default(),
            deregister_critical_after: Duration::from_secs(60),
            verify_interval: Duration::from_secs(30),
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
            deregister_timeout: Duration::from_secs(5),
        }
    }
}

impl RegistrarConfig {
    /// Registers service `name` on `port`, other settings default.
    pub fn new(name: impl Into<String>, port: u16) -> Self {
        RegistrarConfig {
            name: name.into(),
            port,
            ..RegistrarConfig::default()
        }
    }

    /// Sets the service ID.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the advertised address.
    pub fn with_address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    /// Adds a tag.
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Adds a `Service.Meta` entry.
    pub fn with_meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.meta.insert(key.into(), value.into());
        self
    }

    /// Sets the weights.
    pub fn with_weights(mut self, passing: u32, warning: u32) -> Self {
        self.weights = Weights { passing, warning };
        self
    }

    /// Uses a TTL check with this TTL.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.check = CheckConfig::Ttl { ttl };
        self
    }

    /// Uses this check.
    pub fn with_check(mut self, check: CheckConfig) -> Self {
        self.check = check;
        self
    }

    /// Sets `DeregisterCriticalServiceAfter`.
    pub fn with_deregister_critical_after(mut self, after: Duration) -> Self {
        self.deregister_critical_after = after;
        self
    }

    /// Sets how often an HTTP/TCP-checked registration is verified.
    pub fn with_verify_interval(mut self, interval: Duration) -> Self {
        self.verify_interval = interval;
        self
    }

    /// Sets the failure backoff range.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the deregistration bound.
    pub fn with_deregister_timeout(mut self, timeout: Duration) -> Self {
        self.deregister_timeout = timeout;
        self
    }

    /// The service ID: the configured one, else `<name>-<address>-<port>` (or `<name>-<port>`).
    pub fn service_id(&self) -> String {
        match (&self.id, &self.address) {
            (Some(id), _) => id.clone(),
            (None, Some(addr)) => format!("{}-{}-{}", self.name, addr, self.port),
            (None, None) => format!("{}-{}", self.name, self.port),
        }
    }

    /// The ID of the registration's check: `service:<service id>`.
    pub fn check_id(&self) -> String {
        format!("service:{}", self.service_id())
    }

    /// How often the registration is renewed: TTL/2 for a TTL check, else
    /// [`verify_interval`](Self::verify_interval).
    pub fn renew_interval(&self) -> Duration {
        match &self.check {
            CheckConfig::Ttl { ttl } => (*ttl / 2).max(Duration::from_millis(1)),
            _ => self.verify_interval,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_quotes_and_combines() {
        let c = InstancerConfig::new("web")
            .with_tag("a\"b")
            .with_filter("Service.Meta.zone == \"z\"");
        assert_eq!(
            c.filter_expression().unwrap(),
            r#"Service.Tags contains "a\"b" and (Service.Meta.zone == "z")"#
        );
        assert_eq!(InstancerConfig::new("web").filter_expression(), None);
        assert_eq!(
            InstancerConfig::new("web")
                .with_filter("x == 1")
                .filter_expression()
                .unwrap(),
            "x == 1"
        );
    }

    #[test]
    fn wait_is_clamped() {
        let c = InstancerConfig::new("web").with_wait(Duration::from_secs(3600));
        assert_eq!(c.effective_wait(), MAX_WAIT);
    }

    #[test]
    fn deserializes_with_defaults_and_redacts_token() {
        let c: Config = serde_json::from_str(
            r#"{"address": "https://[::1]:8501", "token": "hunter2", "request_timeout": "2s"}"#,
        )
        .unwrap();
        assert_eq!(c.request_timeout, Duration::from_secs(2));
        assert_eq!(c.token.as_ref().map(Secret::expose), Some("hunter2"));
        assert!(!format!("{c:?}").contains("hunter2"));
        let i: InstancerConfig =
            serde_json::from_str(r#"{"service": "web", "tags": ["v1"], "wait": 1}"#).unwrap();
        assert_eq!(i.wait, Duration::from_secs(1));
        assert!(i.passing_only);
        let r: RegistrarConfig = serde_json::from_str(
            r#"{"name": "web", "port": 80, "check": {"kind": "tcp", "address": "h:80", "interval": "5s", "timeout": "1s"}}"#,
        )
        .unwrap();
        assert!(matches!(r.check, CheckConfig::Tcp { .. }));
        assert_eq!(r.renew_interval(), Duration::from_secs(30));
    }
}
