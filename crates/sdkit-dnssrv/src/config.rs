//! Configuration of the DNS SRV backend: [`Config`] says which name servers the [`Client`]
//! asks and how; [`InstancerConfig`] says which SRV name an [`Instancer`] watches, how often it
//! refreshes, and how SRV records map onto instances.
//!
//! Every option has a `with_x` setter and a bare getter; both structs implement
//! `serde::Deserialize` (durations as strings such as `"250ms"`, `"2s"`, `"5m"` or a number of
//! seconds: [`sdkit_core::duration`]).
//!
//! ```
//! use std::time::Duration;
//! use sdkit_dnssrv::{Config, InstancerConfig, PriorityMode, TargetMode};
//!
//! let config = Config::default()
//!     .with_nameserver("127.0.0.1:5353".parse().unwrap())
//!     .with_timeout(Duration::from_millis(500));
//! let watch = InstancerConfig::new("_http._tcp.web.example.com")
//!     .with_refresh_bounds(Duration::from_secs(1), Duration::from_secs(30))
//!     .with_priority(PriorityMode::All)
//!     .with_targets(TargetMode::KeepHostnames);
//! assert_eq!(watch.name(), "_http._tcp.web.example.com");
//! assert_eq!(watch.max_refresh(), Duration::from_secs(30));
//! assert_eq!(config.timeout(), Duration::from_millis(500));
//!
//! let from_json: Config = serde_json::from_str(
//!     r#"{"nameservers": ["127.0.0.1:5353"], "timeout": 0.8}"#,
//! ).unwrap();
//! assert_eq!(from_json.timeout(), Duration::from_millis(800));
//! let watch: InstancerConfig = serde_json::from_str(
//!     r#"{"name": "_http._tcp.web.example.com", "min_refresh": "500ms"}"#,
//! ).unwrap();
//! assert_eq!(watch.min_refresh(), Duration::from_millis(500));
//! ```
//!
//! [`Client`]: crate::Client
//! [`Instancer`]: crate::Instancer

use std::net::SocketAddr;
use std::time::Duration;

use sdkit_core::Backoff;
use serde::Deserialize;

use crate::Error;

/// Which transports the resolver uses to reach configured name servers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// UDP, falling back to TCP for truncated answers (the default).
    #[default]
    UdpAndTcp,
    /// UDP only.
    Udp,
    /// TCP only.
    Tcp,
}

/// Which SRV priority groups are published.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriorityMode {
    /// Only the records of the best (lowest) priority among the usable records (the default),
    /// as RFC 2782 clients do: lower-priority groups are the fallback when the best group has
    /// no usable record.
    #[default]
    Best,
    /// Every usable record, each instance carrying its priority as metadata key `priority`, for
    /// balancers that implement fallback themselves.
    All,
}

/// How SRV targets become addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetMode {
    /// Resolve each target to its IP addresses (from the answer's additional records when they
    /// carry them, else A/AAAA lookups): one instance per address (the default).
    #[default]
    ResolveIps,
    /// Publish `target:port` with the host name as is (trailing dot trimmed); the caller's
    /// connector resolves it.
    KeepHostnames,
}

/// Which address families targets are resolved to (with [`TargetMode::ResolveIps`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressFamily {
    /// IPv4 and IPv6 (A and AAAA; the default).
    #[default]
    Any,
    /// IPv4 only (A).
    Ipv4,
    /// IPv6 only (AAAA).
    Ipv6,
}

/// How to reach the DNS: name servers, transport, request timeout and attempts. See the
/// [module docs](self).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    nameservers: Vec<SocketAddr>,
    transport: Transport,
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    timeout: Duration,
    attempts: usize,
}

/// Default lower bound of the refresh interval (a TTL of 0, as Consul's DNS interface serves by
/// default, is refreshed this often).
pub const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(1);
/// Default upper bound of the refresh interval (a TTL of a day is still re-checked this often).
pub const DEFAULT_MAX_REFRESH: Duration = Duration::from_secs(60);
/// Default timeout of one DNS request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default number of tries of one query (the first plus one retry).
pub const DEFAULT_ATTEMPTS: usize = 2;
/// Default most SRV targets used from one answer (a bound on work per refresh).
pub const DEFAULT_MAX_TARGETS: usize = 1024;

impl Default for Config {
    /// The system resolver (`/etc/resolv.conf`), 2 s per request, 2 attempts.
    fn default() -> Self {
        Config {
            nameservers: Vec::new(),
            transport: Transport::default(),
            timeout: DEFAULT_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
        }
    }
}

impl Config {
    /// Adds a name server (address and port). Without any, the system resolver configuration
    /// (`/etc/resolv.conf`) is used.
    pub fn with_nameserver(mut self, addr: SocketAddr) -> Self {
        self.nameservers.push(addr);
        self
    }

    /// Replaces the name servers.
    pub fn with_nameservers(mut self, addrs: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.nameservers = addrs.into_iter().collect();
        self
    }

    /// Sets the transports used to reach configured name servers.
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Sets the timeout of one DNS request.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the number of tries of one query (the first plus retries) before a refresh fails.
    pub fn with_attempts(mut self, attempts: usize) -> Self {
        self.attempts = attempts;
        self
    }

    /// The configured name servers (empty: the system resolver).
    pub fn nameservers(&self) -> &[SocketAddr] {
        &self.nameservers
    }

    /// The transports used to reach configured name servers.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The timeout of one DNS request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The number of attempts of one query.
    pub fn attempts(&self) -> usize {
        self.attempts
    }

    /// Checks the configuration.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a zero timeout or zero attempts.
    pub fn validate(&self) -> Result<(), Error> {
        if self.timeout.is_zero() {
            return Err(Error::Config("timeout must be above zero".into()));
        }
        if self.attempts == 0 {
            return Err(Error::Config("attempts must be at least 1".into()));
        }
        Ok(())
    }
}

/// What one [`Instancer`](crate::Instancer) watches: the SRV name, how often it is refreshed
/// and how its answer becomes instances. See the [module docs](self).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InstancerConfig {
    name: String,
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    min_refresh: Duration,
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    max_refresh: Duration,
    backoff: Backoff,
    priority: PriorityMode,
    targets: TargetMode,
    address_family: AddressFamily,
    max_targets: usize,
}

impl Default for InstancerConfig {
    fn default() -> Self {
        InstancerConfig {
            name: String::new(),
            min_refresh: DEFAULT_MIN_REFRESH,
            max_refresh: DEFAULT_MAX_REFRESH,
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(30)),
            priority: PriorityMode::default(),
            targets: TargetMode::default(),
            address_family: AddressFamily::default(),
            max_targets: DEFAULT_MAX_TARGETS,
        }
    }
}

impl InstancerConfig {
    /// Watches the full SRV name `name` (`_http._tcp.web.example.com`; a trailing dot is
    /// optional, the name is always treated as fully qualified) with the defaults: refresh at
    /// the answer's TTL clamped to [1 s, 60 s], retry backoff 250 ms doubling to 30 s, best
    /// priority only, targets resolved to IP addresses of any family.
    pub fn new(name: impl Into<String>) -> Self {
        InstancerConfig {
            name: name.into(),
            ..InstancerConfig::default()
        }
    }

    /// Sets the bounds the refresh interval (the answer's TTL) is clamped to.
    pub fn with_refresh_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_refresh = min;
        self.max_refresh = max;
        self
    }

    /// Sets the backoff between failed refreshes (default 250 ms doubling up to 30 s,
    /// half-jittered).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets which priority groups are published.
    pub fn with_priority(mut self, mode: PriorityMode) -> Self {
        self.priority = mode;
        self
    }

    /// Sets how targets become addresses.
    pub fn with_targets(mut self, mode: TargetMode) -> Self {
        self.targets = mode;
        self
    }

    /// Sets which address families targets are resolved to.
    pub fn with_address_family(mut self, family: AddressFamily) -> Self {
        self.address_family = family;
        self
    }

    /// Sets the most SRV records used from one answer (the rest are dropped with a warning).
    pub fn with_max_targets(mut self, max: usize) -> Self {
        self.max_targets = max;
        self
    }

    /// The SRV name as configured.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lower bound of the refresh interval.
    pub fn min_refresh(&self) -> Duration {
        self.min_refresh
    }

    /// The upper bound of the refresh interval.
    pub fn max_refresh(&self) -> Duration {
        self.max_refresh
    }

    /// The backoff between failed refreshes.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// Which priority groups are published.
    pub fn priority(&self) -> PriorityMode {
        self.priority
    }

    /// How targets become addresses.
    pub fn targets(&self) -> TargetMode {
        self.targets
    }

    /// Which address families targets are resolved to.
    pub fn address_family(&self) -> AddressFamily {
        self.address_family
    }

    /// The most SRV records used from one answer.
    pub fn max_targets(&self) -> usize {
        self.max_targets
    }

    /// Checks the configuration.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an empty name, a zero `min_refresh`, `min_refresh > max_refresh`
    /// or zero `max_targets`.
    pub fn validate(&self) -> Result<(), Error> {
        if self.name.trim().is_empty() {
            return Err(Error::Config("the SRV name is empty".into()));
        }
        if self.min_refresh.is_zero() {
            return Err(Error::Config(
                "min_refresh must be above zero (a TTL of 0 would poll without pause)".into(),
            ));
        }
        if self.min_refresh > self.max_refresh {
            return Err(Error::Config(format!(
                "min_refresh {:?} exceeds max_refresh {:?}",
                self.min_refresh, self.max_refresh
            )));
        }
        if self.max_targets == 0 {
            return Err(Error::Config("max_targets must be at least 1".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_rejects_inconsistent_settings() {
        assert!(InstancerConfig::new("_a._tcp.x").validate().is_ok());
        assert!(InstancerConfig::new(" ").validate().is_err());
        let bounds = InstancerConfig::new("_a._tcp.x")
            .with_refresh_bounds(Duration::from_secs(5), Duration::from_secs(1))
            .validate()
            .unwrap_err();
        assert!(
            bounds
                .to_string()
                .starts_with("dnssrv: invalid configuration")
        );
        assert!(Config::default().with_attempts(0).validate().is_err());
        assert!(
            Config::default()
                .with_timeout(Duration::ZERO)
                .validate()
                .is_err()
        );
        assert!(
            InstancerConfig::new("x")
                .with_max_targets(0)
                .validate()
                .is_err()
        );
    }

    #[test]
    fn deserializes_with_defaults_and_enums() {
        let c: InstancerConfig = serde_json::from_str(
            r#"{"name":"_a._tcp.x","priority":"all","targets":"keep_hostnames",
                "address_family":"ipv6","max_refresh":"2m"}"#,
        )
        .unwrap();
        let t: Config = serde_json::from_str(r#"{"transport":"tcp"}"#).unwrap();
        assert_eq!(c.priority(), PriorityMode::All);
        assert_eq!(c.targets(), TargetMode::KeepHostnames);
        assert_eq!(c.address_family(), AddressFamily::Ipv6);
        assert_eq!(t.transport(), Transport::Tcp);
        assert_eq!(c.max_refresh(), Duration::from_secs(120));
        assert_eq!(c.min_refresh(), DEFAULT_MIN_REFRESH);
        assert!(serde_json::from_str::<Config>(r#"{"bogus":1}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"timeout":"fast"}"#).is_err());
    }
}
