//! Configuration of the DNS SRV instancer: which name, which name servers, how often to refresh,
//! and how SRV records map onto instances.
//!
//! Every option has a builder method; [`Config`] also implements `serde::Deserialize` (durations
//! as strings such as `"250ms"`, `"2s"`, `"5m"` or a number of seconds:
//! [`sdkit_core::duration`]).
//!
//! ```
//! use std::time::Duration;
//! use sdkit_dnssrv::{Config, PriorityMode, TargetMode};
//!
//! let config = Config::new("_http._tcp.web.example.com")
//!     .nameserver("127.0.0.1:5353".parse().unwrap())
//!     .refresh_bounds(Duration::from_secs(1), Duration::from_secs(30))
//!     .timeout(Duration::from_millis(500))
//!     .priority(PriorityMode::All)
//!     .targets(TargetMode::KeepHostnames);
//! assert_eq!(config.name(), "_http._tcp.web.example.com");
//! assert_eq!(config.max_refresh(), Duration::from_secs(30));
//!
//! let from_json: Config = serde_json::from_str(
//!     r#"{"name": "_http._tcp.web.example.com", "nameservers": ["127.0.0.1:5353"],
//!         "min_refresh": "500ms", "timeout": 0.8}"#,
//! ).unwrap();
//! assert_eq!(from_json.min_refresh(), Duration::from_millis(500));
//! assert_eq!(from_json.request_timeout(), Duration::from_millis(800));
//! ```

use std::net::SocketAddr;
use std::time::Duration;

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

/// Configuration of a DNS SRV [`Instancer`](crate::Instancer). See the [module docs](self).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    name: String,
    nameservers: Vec<SocketAddr>,
    transport: Transport,
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    min_refresh: Duration,
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    max_refresh: Duration,
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    timeout: Duration,
    attempts: usize,
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    retry_initial: Duration,
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    retry_max: Duration,
    priority: PriorityMode,
    targets: TargetMode,
    address_family: AddressFamily,
    max_targets: usize,
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
    fn default() -> Self {
        Config {
            name: String::new(),
            nameservers: Vec::new(),
            transport: Transport::default(),
            min_refresh: DEFAULT_MIN_REFRESH,
            max_refresh: DEFAULT_MAX_REFRESH,
            timeout: DEFAULT_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
            retry_initial: Duration::from_millis(250),
            retry_max: Duration::from_secs(30),
            priority: PriorityMode::default(),
            targets: TargetMode::default(),
            address_family: AddressFamily::default(),
            max_targets: DEFAULT_MAX_TARGETS,
        }
    }
}

impl Config {
    /// Watches the full SRV name `name` (`_http._tcp.web.example.com`; a trailing dot is
    /// optional, the name is always treated as fully qualified) through the system resolver,
    /// with the defaults: refresh at the answer's TTL clamped to [1 s, 60 s], 2 s request
    /// timeout, 2 attempts, retry backoff 250 ms doubling to 30 s, best priority only, targets
    /// resolved to IP addresses of any family.
    pub fn new(name: impl Into<String>) -> Self {
        Config {
            name: name.into(),
            ..Config::default()
        }
    }

    /// Adds a name server (address and port). Without any, the system resolver configuration
    /// (`/etc/resolv.conf`) is used.
    pub fn nameserver(mut self, addr: SocketAddr) -> Self {
        self.nameservers.push(addr);
        self
    }

    /// Replaces the name servers.
    pub fn nameservers(mut self, addrs: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.nameservers = addrs.into_iter().collect();
        self
    }

    /// Sets the transports used to reach configured name servers.
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Sets the bounds the refresh interval (the answer's TTL) is clamped to.
    pub fn refresh_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_refresh = min;
        self.max_refresh = max;
        self
    }

    /// The lower bound of the refresh interval.
    pub fn min_refresh(&self) -> Duration {
        self.min_refresh
    }

    /// The upper bound of the refresh interval.
    pub fn max_refresh(&self) -> Duration {
        self.max_refresh
    }

    /// Sets the timeout of one DNS request.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the number of tries of one query (the first plus retries) before a refresh fails.
    pub fn attempts(mut self, attempts: usize) -> Self {
        self.attempts = attempts;
        self
    }

    /// Sets the backoff between failed refreshes: `initial`, doubling, capped at `max`,
    /// half-jittered.
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry_initial = initial;
        self.retry_max = max;
        self
    }

    /// Sets which priority groups are published.
    pub fn priority(mut self, mode: PriorityMode) -> Self {
        self.priority = mode;
        self
    }

    /// Sets how targets become addresses.
    pub fn targets(mut self, mode: TargetMode) -> Self {
        self.targets = mode;
        self
    }

    /// Sets which address families targets are resolved to.
    pub fn address_family(mut self, family: AddressFamily) -> Self {
        self.address_family = family;
        self
    }

    /// Sets the most SRV records used from one answer (the rest are dropped with a warning).
    pub fn max_targets(mut self, max: usize) -> Self {
        self.max_targets = max;
        self
    }

    /// The SRV name as configured.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configured name servers (empty: the system resolver).
    pub fn nameserver_addrs(&self) -> &[SocketAddr] {
        &self.nameservers
    }

    /// The transports used to reach configured name servers.
    pub fn transport_mode(&self) -> Transport {
        self.transport
    }

    /// The timeout of one DNS request.
    pub fn request_timeout(&self) -> Duration {
        self.timeout
    }

    /// The number of attempts of one query.
    pub fn request_attempts(&self) -> usize {
        self.attempts
    }

    /// The retry backoff (`initial`, `max`).
    pub fn retry(&self) -> (Duration, Duration) {
        (self.retry_initial, self.retry_max)
    }

    /// Which priority groups are published.
    pub fn priority_mode(&self) -> PriorityMode {
        self.priority
    }

    /// How targets become addresses.
    pub fn target_mode(&self) -> TargetMode {
        self.targets
    }

    /// Which address families targets are resolved to.
    pub fn family(&self) -> AddressFamily {
        self.address_family
    }

    /// The most SRV records used from one answer.
    pub fn target_limit(&self) -> usize {
        self.max_targets
    }

    /// Checks the configuration.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an empty name, a zero `min_refresh`, `min_refresh > max_refresh`,
    /// a zero timeout, zero attempts or zero `max_targets`.
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
        if self.timeout.is_zero() {
            return Err(Error::Config("timeout must be above zero".into()));
        }
        if self.attempts == 0 {
            return Err(Error::Config("attempts must be at least 1".into()));
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
        assert!(Config::new("_a._tcp.x").validate().is_ok());
        assert!(Config::new(" ").validate().is_err());
        let bounds = Config::new("_a._tcp.x")
            .refresh_bounds(Duration::from_secs(5), Duration::from_secs(1))
            .validate()
            .unwrap_err();
        assert!(
            bounds
                .to_string()
                .starts_with("dnssrv: invalid configuration")
        );
        assert!(Config::new("x").attempts(0).validate().is_err());
        assert!(Config::new("x").timeout(Duration::ZERO).validate().is_err());
        assert!(Config::new("x").max_targets(0).validate().is_err());
    }

    #[test]
    fn deserializes_with_defaults_and_enums() {
        let c: Config = serde_json::from_str(
            r#"{"name":"_a._tcp.x","priority":"all","targets":"keep_hostnames",
                "address_family":"ipv6","transport":"tcp","max_refresh":"2m"}"#,
        )
        .unwrap();
        assert_eq!(c.priority_mode(), PriorityMode::All);
        assert_eq!(c.target_mode(), TargetMode::KeepHostnames);
        assert_eq!(c.family(), AddressFamily::Ipv6);
        assert_eq!(c.transport_mode(), Transport::Tcp);
        assert_eq!(c.max_refresh(), Duration::from_secs(120));
        assert_eq!(c.min_refresh(), DEFAULT_MIN_REFRESH);
        assert!(serde_json::from_str::<Config>(r#"{"bogus":1}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"timeout":"fast"}"#).is_err());
    }
}
