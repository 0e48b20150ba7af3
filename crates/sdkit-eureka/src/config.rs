//! Configuration: the Eureka servers ([`Config`]), one watched application
//! ([`InstancerConfig`]) and one registration ([`RegistrarConfig`]).
//!
//! ```
//! use std::time::Duration;
//! use sdkit_eureka::{Config, InstancerConfig};
//!
//! let config = Config::new(["10.0.0.1:8761", "http://10.0.0.2:8761/eureka"])
//!     .with_basic_auth("svc", "s3cret");
//! assert_eq!(config.base_urls(), ["http://10.0.0.1:8761/eureka", "http://10.0.0.2:8761/eureka"]);
//! assert!(!format!("{config:?}").contains("s3cret"));
//!
//! let watch = InstancerConfig::new("web").with_poll_interval(Duration::from_secs(10));
//! assert_eq!(watch.app(), "WEB"); // Eureka application names are upper case
//! ```

use std::fmt;
use std::time::Duration;

use sdkit_core::{Backoff, Instance};
use serde::Deserialize;

use crate::error::Error;
use sdkit_core::Secret;

/// Connection settings: the servers (tried in turn), credentials, timeouts, bounds.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    servers: Vec<String>,
    user: Option<String>,
    password: Option<Secret>,
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    connect_timeout: Duration,
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    request_timeout: Duration,
    max_body_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            servers: vec!["127.0.0.1:8761".to_owned()],
            user: None,
            password: None,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("servers", &self.servers)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

impl Config {
    /// The defaults, talking to `servers`: `host:port` (meaning `http://host:port/eureka`) or a
    /// base URL such as `http://host:8761/eureka` or `http://host:8080/eureka/v2`.
    pub fn new<I, S>(servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Config {
            servers: servers.into_iter().map(Into::into).collect(),
            ..Config::default()
        }
    }

    /// Sends HTTP basic credentials (Spring Cloud's secured Eureka) with every request.
    pub fn with_basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self.password = Some(Secret::new(password));
        self
    }

    /// Sets the TCP connect bound (default 3 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the bound on each request (default 10 s).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the largest accepted response body (default 16 MiB).
    pub fn with_max_body_bytes(mut self, max: usize) -> Self {
        self.max_body_bytes = max;
        self
    }

    /// The servers' base URLs, normalised (`http://host:port/eureka`, no trailing `/`).
    pub fn base_urls(&self) -> Vec<String> {
        self.servers
            .iter()
            .map(|s| {
                let s = s.trim().trim_end_matches('/');
                if s.contains("://") {
                    s.to_owned()
                } else {
                    format!("http://{s}/eureka")
                }
            })
            .collect()
    }

    /// The basic-auth user, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    pub(crate) fn password(&self) -> Option<&Secret> {
        self.password.as_ref()
    }

    /// The TCP connect bound.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The bound on each request.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The largest accepted response body.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Checks the configuration without touching the network.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming what is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        if self.servers.is_empty() {
            return Err(Error::Config("at least one server is required".into()));
        }
        for url in self.base_urls() {
            let parsed: Result<http::Uri, _> = url.parse();
            match parsed {
                Ok(uri) if uri.scheme_str() == Some("http") && uri.authority().is_some() => {}
                Ok(uri) if uri.scheme_str() == Some("https") => {
                    return Err(Error::Config(format!(
                        "{url}: https is not supported yet (put a TLS-terminating proxy on loopback)"
                    )));
                }
                _ => return Err(Error::Config(format!("{url} is not an http:// URL"))),
            }
        }
        if self.user.is_some() != self.password.is_some() {
            return Err(Error::Config("a user and a password go together".into()));
        }
        if self.connect_timeout.is_zero() || self.request_timeout.is_zero() {
            return Err(Error::Config("timeouts must be positive".into()));
        }
        if self.max_body_bytes == 0 {
            return Err(Error::Config("max_body_bytes must be positive".into()));
        }
        Ok(())
    }
}

/// What one [`Instancer`](crate::Instancer) watches: one application.
#[derive(Clone, Debug, PartialEq)]
pub struct InstancerConfig {
    app: String,
    poll_interval: Duration,
    statuses: Vec<String>,
    delta: bool,
    full_fetch_every: u32,
    backoff: Backoff,
}

impl InstancerConfig {
    /// Watches application `app` (upper-cased, as Eureka names applications): polls every 30 s,
    /// publishes only `UP` instances, full fetches.
    pub fn new(app: impl AsRef<str>) -> Self {
        InstancerConfig {
            app: app.as_ref().to_ascii_uppercase(),
            poll_interval: Duration::from_secs(30),
            statuses: vec!["UP".to_owned()],
            delta: false,
            full_fetch_every: 10,
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(30)),
        }
    }

    /// Sets the polling interval (default 30 s, like Eureka's own clients).
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets which `status` values are published (default only `UP`; e.g. add `STARTING`).
    pub fn with_statuses<I, S>(mut self, statuses: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.statuses = statuses
            .into_iter()
            .map(|s| s.as_ref().to_ascii_uppercase())
            .collect();
        self
    }

    /// Polls `GET /apps/delta` between full fetches (default off); a full fetch still happens
    /// every `full_fetch_every` polls (default 10) to reconcile.
    pub fn with_delta(mut self, delta: bool, full_fetch_every: u32) -> Self {
        self.delta = delta;
        self.full_fetch_every = full_fetch_every.max(1);
        self
    }

    /// Sets the retry timing after a failure (default 250 ms doubling to 30 s).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The application name (upper case).
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The polling interval.
    pub fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// The published statuses.
    pub fn statuses(&self) -> &[String] {
        &self.statuses
    }

    /// Whether delta fetches are used, and how often a full fetch reconciles.
    pub fn delta(&self) -> (bool, u32) {
        (self.delta, self.full_fetch_every)
    }

    /// The retry timing.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }
}

/// What one [`Registrar`](crate::Registrar) registers: an instance of an application.
#[derive(Clone, Debug, PartialEq)]
pub struct RegistrarConfig {
    app: String,
    instance: Instance,
    heartbeat_interval: Duration,
    lease_duration: Duration,
    backoff: Backoff,
    deregister_timeout: Duration,
}

impl RegistrarConfig {
    /// Registers `instance` (its id becomes the `instanceId`, its address `ipAddr`/`hostName`
    /// and `port`) under application `app` (upper-cased).
    pub fn new(app: impl AsRef<str>, instance: Instance) -> Self {
        RegistrarConfig {
            app: app.as_ref().to_ascii_uppercase(),
            instance,
            heartbeat_interval: Duration::from_secs(30),
            lease_duration: Duration::from_secs(90),
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
            deregister_timeout: Duration::from_secs(5),
        }
    }

    /// Sets the heartbeat interval (default 30 s) and the lease duration announced in
    /// `leaseInfo.durationInSecs` (default 90 s).
    pub fn with_lease(mut self, heartbeat_interval: Duration, lease_duration: Duration) -> Self {
        self.heartbeat_interval = heartbeat_interval;
        self.lease_duration = lease_duration;
        self
    }

    /// Sets the retry timing after a failure (default 100 ms doubling to 10 s).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the deregistration bound (default 5 s).
    pub fn with_deregister_timeout(mut self, timeout: Duration) -> Self {
        self.deregister_timeout = timeout;
        self
    }

    /// The application name (upper case).
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The registered instance.
    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    /// The heartbeat interval.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }

    /// The announced lease duration.
    pub fn lease_duration(&self) -> Duration {
        self.lease_duration
    }

    /// The retry timing.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// The deregistration bound.
    pub fn deregister_timeout(&self) -> Duration {
        self.deregister_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_and_hides_the_password() {
        let c: Config = serde_json::from_str(
            r#"{"servers":["h:1"],"user":"u","password":"hunter2","request_timeout":"2s"}"#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.request_timeout(), Duration::from_secs(2));
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(Config::new(Vec::<String>::new()).validate().is_err());
        assert!(Config::new(["https://h:1/eureka"]).validate().is_err());
        assert!(Config::new(["ftp://h"]).validate().is_err());
        assert!(serde_json::from_str::<Config>(r#"{"bogus":1}"#).is_err());
    }
}
