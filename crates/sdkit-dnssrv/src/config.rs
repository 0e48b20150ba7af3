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
//!         "min_refresh": "500ms", "timeout": 800}"#,
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

impl Config {
    /// Reads a `dnssrv://` target URL:
    /// `dnssrv://_http._tcp.web.example.com?nameserver=127.0.0.1:5353&min_refresh=1s`.
    ///
    /// Query parameters (all optional): `nameserver` (repeatable; `ip` or `ip:port`, IPv6 as
    /// `[::1]:53`; port 53 when omitted; none: the system resolver), `transport`
    /// (`udp_and_tcp`, `udp`, `tcp`), `min_refresh`, `max_refresh`, `timeout`, `retry_initial`,
    /// `retry_max` (durations as in [`sdkit_core::duration::parse`]), `attempts`, `priority` (`best`, `all`),
    /// `targets` (`resolve_ips`, `keep_hostnames`), `family` (`any`, `ipv4`, `ipv6`),
    /// `max_targets`.
    ///
    /// ```
    /// use sdkit_dnssrv::{Config, PriorityMode};
    ///
    /// let config = Config::from_url(
    ///     "dnssrv://_http._tcp.web.example.com?nameserver=127.0.0.1:5353&priority=all",
    /// ).unwrap();
    /// assert_eq!(config.name(), "_http._tcp.web.example.com");
    /// assert_eq!(config.nameserver_addrs(), ["127.0.0.1:5353".parse().unwrap()]);
    /// assert_eq!(config.priority_mode(), PriorityMode::All);
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the offending part: another scheme, no name, an unknown
    /// parameter or an unreadable value; or what [`validate`](Self::validate) rejects.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let rest = url
            .strip_prefix("dnssrv://")
            .ok_or_else(|| Error::Config(format!("not a dnssrv:// URL: {url:?}")))?;
        let (name, query) = rest.split_once('?').unwrap_or((rest, ""));
        let name = name.trim_end_matches('/');
        let mut config = Config::new(name);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            config = config.set_param(key, value)?;
        }
        config.validate()?;
        Ok(config)
    }

    fn set_param(mut self, key: &str, value: &str) -> Result<Self, Error> {
        let bad = |what: &str| Error::Config(format!("invalid {key} {value:?}: {what}"));
        let duration = || {
            sdkit_core::duration::parse(value)
                .ok()
                .ok_or_else(|| bad("expected e.g. 500ms, 2s"))
        };
        let number = || value.parse::<usize>().map_err(|e| bad(&e.to_string()));
        match key {
            "nameserver" => {
                let addr = value
                    .parse::<SocketAddr>()
                    .or_else(|_| {
                        value
                            .trim_start_matches('[')
                            .trim_end_matches(']')
                            .parse::<std::net::IpAddr>()
                            .map(|ip| SocketAddr::new(ip, 53))
                    })
                    .map_err(|_| bad("expected ip or ip:port"))?;
                self.nameservers.push(addr);
            }
            "transport" => {
                self.transport = match value {
                    "udp_and_tcp" => Transport::UdpAndTcp,
                    "udp" => Transport::Udp,
                    "tcp" => Transport::Tcp,
                    _ => return Err(bad("expected udp_and_tcp, udp or tcp")),
                }
            }
            "min_refresh" => self.min_refresh = duration()?,
            "max_refresh" => self.max_refresh = duration()?,
            "timeout" => self.timeout = duration()?,
            "retry_initial" => self.retry_initial = duration()?,
            "retry_max" => self.retry_max = duration()?,
            "attempts" => self.attempts = number()?,
            "max_targets" => self.max_targets = number()?,
            "priority" => {
                self.priority = match value {
                    "best" => PriorityMode::Best,
                    "all" => PriorityMode::All,
                    _ => return Err(bad("expected best or all")),
                }
            }
            "targets" => {
                self.targets = match value {
                    "resolve_ips" => TargetMode::ResolveIps,
                    "keep_hostnames" => TargetMode::KeepHostnames,
                    _ => return Err(bad("expected resolve_ips or keep_hostnames")),
                }
            }
            "family" | "address_family" => {
                self.address_family = match value {
                    "any" => AddressFamily::Any,
                    "ipv4" => AddressFamily::Ipv4,
                    "ipv6" => AddressFamily::Ipv6,
                    _ => return Err(bad("expected any, ipv4 or ipv6")),
                }
            }
            _ => {
                return Err(Error::Config(format!(
                    "unknown dnssrv URL parameter {key:?}"
                )));
            }
        }
        Ok(self)
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

    #[test]
    fn reads_urls() {
        let c = Config::from_url(
            "dnssrv://_a._tcp.x?nameserver=127.0.0.1:5353&nameserver=[::1]&nameserver=10.0.0.1\
             &transport=udp&min_refresh=2s&max_refresh=1m&timeout=300ms&attempts=1\
             &retry_initial=50ms&retry_max=5s&priority=all&targets=keep_hostnames&family=ipv6\
             &max_targets=7",
        )
        .unwrap();
        assert_eq!(c.name(), "_a._tcp.x");
        let ns: Vec<String> = c.nameserver_addrs().iter().map(|a| a.to_string()).collect();
        assert_eq!(ns, ["127.0.0.1:5353", "[::1]:53", "10.0.0.1:53"]);
        assert_eq!(c.transport_mode(), Transport::Udp);
        assert_eq!(c.min_refresh(), Duration::from_secs(2));
        assert_eq!(c.max_refresh(), Duration::from_secs(60));
        assert_eq!(c.request_timeout(), Duration::from_millis(300));
        assert_eq!(c.request_attempts(), 1);
        assert_eq!(
            c.retry(),
            (Duration::from_millis(50), Duration::from_secs(5))
        );
        assert_eq!(c.priority_mode(), PriorityMode::All);
        assert_eq!(c.target_mode(), TargetMode::KeepHostnames);
        assert_eq!(c.family(), AddressFamily::Ipv6);
        assert_eq!(c.target_limit(), 7);
        assert_eq!(
            Config::from_url("dnssrv://_a._tcp.x")
                .unwrap()
                .nameserver_addrs(),
            []
        );

        for bad in [
            "consul://_a._tcp.x",
            "dnssrv://",
            "dnssrv://_a._tcp.x?nameserver=nowhere",
            "dnssrv://_a._tcp.x?bogus=1",
            "dnssrv://_a._tcp.x?priority=worst",
            "dnssrv://_a._tcp.x?attempts=-1",
            "dnssrv://_a._tcp.x?min_refresh=0s",
        ] {
            let err = Config::from_url(bad).unwrap_err().to_string();
            assert!(
                err.starts_with("dnssrv: invalid configuration"),
                "{bad}: {err}"
            );
        }
    }
}
