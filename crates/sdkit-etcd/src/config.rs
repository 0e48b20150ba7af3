//! Configuration of the etcd backend: [`Config`] (endpoints, timeouts, credentials, TLS, the
//! watch's timing), [`InstancerConfig`] (the prefix to watch) and [`RegistrarConfig`] (the key
//! and lease of one registration).
//!
//! Every option has a sane default and a builder method; the struct also deserializes with
//! serde (durations as `"500ms"`, `"10s"`, `"2m"` or a number of seconds), so the facade can
//! fill it from a URL such as `etcd://127.0.0.1:2379,127.0.0.1:22379/services/web/`.
//!
//! ```
//! use std::time::Duration;
//!
//! use sdkit_core::Instance;
//! use sdkit_etcd::{Config, InstancerConfig, RegistrarConfig};
//!
//! let config = Config::new(["127.0.0.1:2379", "127.0.0.1:22379"])
//!     .with_user("svc", "s3cret")
//!     .with_request_timeout(Duration::from_secs(2));
//! // The password never shows up in Debug output.
//! assert!(!format!("{config:?}").contains("s3cret"));
//! let watch = InstancerConfig::new("/services/web");
//! assert_eq!(watch.prefix_dir(), "/services/web/");
//! let registration = RegistrarConfig::new("/services/web", Instance::new("web-1", "10.0.0.1:80"))
//!     .with_ttl(Duration::from_secs(5));
//! assert_eq!(registration.ttl_secs(), 5);
//! ```

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use sdkit_core::{Backoff, Instance, Secret};
use serde::Deserialize;

use crate::error::Error;

/// TLS (rustls) settings: the CA that signs the etcd servers' certificates and, for mutual TLS,
/// the client's certificate and key. All are PEM files, read when the client connects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsConfig {
    /// PEM file of the CA certificate(s) to trust.
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client certificate (mutual TLS); needs [`key_file`](Self::key_file).
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client's private key.
    pub key_file: Option<PathBuf>,
    /// The server name to verify the certificates against (default: the endpoint's host).
    pub domain: Option<String>,
}

impl TlsConfig {
    /// TLS trusting the CA in `ca_file` (PEM).
    pub fn with_ca_file(mut self, ca_file: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(ca_file.into());
        self
    }

    /// Presents the client certificate `cert_file` with its key `key_file` (PEM).
    pub fn with_client_cert(
        mut self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        self.cert_file = Some(cert_file.into());
        self.key_file = Some(key_file.into());
        self
    }

    /// Verifies server certificates against `domain` instead of the endpoint host.
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }
}

/// Configuration of the etcd backend. See the [module docs](self).
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The etcd endpoints, `host:port` or `http(s)://host:port` (default `127.0.0.1:2379`).
    pub endpoints: Vec<String>,
    /// User name for etcd authentication.
    pub user: Option<String>,
    /// Password for etcd authentication (never printed).
    pub password: Option<Secret>,
    /// TLS settings; `None` = plain HTTP/2 (unless an endpoint says `https://`).
    pub tls: Option<TlsConfig>,
    /// Bound on establishing a TCP (and TLS) connection to one endpoint (default 3 s).
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    pub connect_timeout: Duration,
    /// Bound on each unary request: list, put, delete, lease calls (default 5 s).
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    pub request_timeout: Duration,
    /// HTTP/2 keep-alive ping interval, to notice a dead connection (default 5 s).
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    pub keepalive_interval: Duration,
    /// How long an HTTP/2 ping may go unanswered before the connection is dropped (default 3 s).
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    pub keepalive_timeout: Duration,
    /// After this long without any watch message the instancer asks etcd for a progress
    /// notification (default 10 s).
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    pub watch_progress_interval: Duration,
    /// How long the instancer waits for the answer to a progress request before it declares
    /// the watch dead and re-creates it (default 5 s).
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    pub watch_progress_timeout: Duration,
    /// Keys fetched per page when listing the prefix (default 1 000).
    pub list_page_size: i64,
    /// Values larger than this are skipped with a warning (default 64 KiB).
    pub max_value_size: usize,
    /// Largest gRPC message accepted from etcd (a list page or a watch response; default
    /// 16 MiB).
    pub max_message_size: usize,
    /// Most instances accepted under one prefix, across list pages and watch events (default
    /// 100 000); more is an error event, the last good set is kept and the prefix is listed
    /// again after the backoff.
    pub max_instances: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            endpoints: vec!["127.0.0.1:2379".to_owned()],
            user: None,
            password: None,
            tls: None,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(5),
            keepalive_timeout: Duration::from_secs(3),
            watch_progress_interval: Duration::from_secs(10),
            watch_progress_timeout: Duration::from_secs(5),
            list_page_size: 1000,
            max_value_size: 64 * 1024,
            max_message_size: 16 * 1024 * 1024,
            max_instances: 100_000,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("endpoints", &self.endpoints)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("tls", &self.tls)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("keepalive_interval", &self.keepalive_interval)
            .field("keepalive_timeout", &self.keepalive_timeout)
            .field("watch_progress_interval", &self.watch_progress_interval)
            .field("watch_progress_timeout", &self.watch_progress_timeout)
            .field("list_page_size", &self.list_page_size)
            .field("max_value_size", &self.max_value_size)
            .field("max_message_size", &self.max_message_size)
            .field("max_instances", &self.max_instances)
            .finish()
    }
}

impl Config {
    /// The defaults, talking to `endpoints`.
    pub fn new<I, S>(endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Config {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            ..Config::default()
        }
    }

    /// Sets the endpoints.
    pub fn with_endpoints<I, S>(mut self, endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.endpoints = endpoints.into_iter().map(Into::into).collect();
        self
    }

    /// Authenticates as `user` with `password`.
    pub fn with_user(mut self, user: impl Into<String>, password: impl Into<Secret>) -> Self {
        self.user = Some(user.into());
        self.password = Some(password.into());
        self
    }

    /// Uses TLS with `tls`.
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets the connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the per-request timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the HTTP/2 keep-alive ping interval and timeout.
    pub fn with_keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.keepalive_interval = interval;
        self.keepalive_timeout = timeout;
        self
    }

    /// Sets when the watch asks for a progress notification, and how long it waits for it.
    pub fn with_watch_progress(mut self, interval: Duration, timeout: Duration) -> Self {
        self.watch_progress_interval = interval;
        self.watch_progress_timeout = timeout;
        self
    }

    /// Sets the number of keys per list page.
    pub fn with_list_page_size(mut self, size: i64) -> Self {
        self.list_page_size = size;
        self
    }

    /// Sets the largest accepted value.
    pub fn with_max_value_size(mut self, size: usize) -> Self {
        self.max_value_size = size;
        self
    }

    /// Sets the largest accepted gRPC message.
    pub fn with_max_message_size(mut self, size: usize) -> Self {
        self.max_message_size = size;
        self
    }

    /// Sets the most instances accepted under one prefix.
    pub fn with_max_instances(mut self, max: usize) -> Self {
        self.max_instances = max;
        self
    }

    /// Checks the configuration without touching the network.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming what is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: &str| Err(Error::Config(what.to_owned()));
        if self.endpoints.is_empty() || self.endpoints.iter().any(|e| e.trim().is_empty()) {
            return bad("at least one non-empty endpoint is required");
        }
        if self.user.is_some() != self.password.is_some() {
            return bad("user and password go together");
        }
        if self.list_page_size <= 0 {
            return bad("list_page_size must be positive");
        }
        if self.max_message_size == 0 || self.max_value_size == 0 || self.max_instances == 0 {
            return bad("size limits must be positive");
        }
        for (name, d) in [
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
            ("keepalive_interval", self.keepalive_interval),
            ("keepalive_timeout", self.keepalive_timeout),
            ("watch_progress_interval", self.watch_progress_interval),
            ("watch_progress_timeout", self.watch_progress_timeout),
        ] {
            if d.is_zero() {
                return Err(Error::Config(format!("{name} must be positive")));
            }
        }
        if let Some(tls) = &self.tls
            && tls.cert_file.is_some() != tls.key_file.is_some()
        {
            return bad("a TLS client certificate needs its key (cert_file and key_file)");
        }
        Ok(())
    }
}

/// Checks that `prefix` names a directory below the root.
fn check_prefix(prefix: &str) -> Result<(), Error> {
    if prefix.trim_end_matches('/').is_empty() {
        return Err(Error::Config(
            "the prefix must name a directory below the root, e.g. /services/web".into(),
        ));
    }
    Ok(())
}

/// `prefix` as a directory, always ending in exactly one `/`.
fn directory(prefix: &str) -> String {
    format!("{}/", prefix.trim_end_matches('/'))
}

/// What one [`Instancer`](crate::Instancer) watches: a key prefix, matched as a directory
/// (`/services/web` watches `/services/web/…` and never `/services/webapp`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct InstancerConfig {
    /// The key prefix of the service (default `/services/default`).
    pub prefix: String,
    /// Delays of the watch loop after failures (default 100 ms doubling up to 5 s).
    pub backoff: Backoff,
}

impl Default for InstancerConfig {
    fn default() -> Self {
        InstancerConfig {
            prefix: "/services/default".to_owned(),
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
        }
    }
}

impl InstancerConfig {
    /// Watches `prefix` (a directory; a trailing `/` is optional).
    pub fn new(prefix: impl Into<String>) -> Self {
        InstancerConfig {
            prefix: prefix.into(),
            ..InstancerConfig::default()
        }
    }

    /// Sets the delays of the watch loop after failures.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The prefix as a directory, always ending in exactly one `/`.
    pub fn prefix_dir(&self) -> String {
        directory(&self.prefix)
    }

    /// Checks the prefix.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the prefix is the root.
    pub fn validate(&self) -> Result<(), Error> {
        check_prefix(&self.prefix)
    }
}

/// What one [`Registrar`](crate::Registrar) writes: `instance` under `<prefix>/<instance id>`,
/// on a lease of `ttl`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RegistrarConfig {
    /// The key prefix of the service.
    pub prefix: String,
    /// The instance to register (its id is the last key segment).
    pub instance: Instance,
    /// Lease TTL. etcd TTLs are whole seconds: this is rounded up to the next second, at least
    /// 1 s, and etcd may raise it to its minimum TTL (default 10 s).
    pub ttl: Duration,
    /// Bound on deregistration: deleting the key and revoking the lease (default 3 s).
    pub deregister_timeout: Duration,
    /// Delays after failures (default 100 ms doubling up to 5 s; additionally capped at a third
    /// of the TTL so that a lease is retried before it can lapse).
    pub backoff: Backoff,
}

impl RegistrarConfig {
    /// Registers `instance` under `prefix`, other settings default.
    pub fn new(prefix: impl Into<String>, instance: Instance) -> Self {
        RegistrarConfig {
            prefix: prefix.into(),
            instance,
            ttl: Duration::from_secs(10),
            deregister_timeout: Duration::from_secs(3),
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
        }
    }

    /// Sets the lease TTL (rounded up to whole seconds).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the deregistration bound.
    pub fn with_deregister_timeout(mut self, timeout: Duration) -> Self {
        self.deregister_timeout = timeout;
        self
    }

    /// Sets the delays after failures.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The lease TTL in whole seconds, as sent to etcd: rounded up, at least 1.
    pub fn ttl_secs(&self) -> i64 {
        let secs = self.ttl.as_secs() + u64::from(self.ttl.subsec_nanos() > 0);
        i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
    }

    /// The key written: `<prefix>/<instance id>`.
    pub fn key(&self) -> String {
        format!("{}{}", directory(&self.prefix), self.instance.id())
    }

    /// Checks the prefix, the instance id and the timings.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming what is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        check_prefix(&self.prefix)?;
        let id = self.instance.id();
        if id.is_empty() || id.contains('/') {
            return Err(Error::Config(format!(
                "instance id {id:?} must be non-empty and must not contain '/'"
            )));
        }
        if self.deregister_timeout.is_zero() {
            return Err(Error::Config("deregister_timeout must be positive".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_whole_seconds() {
        let r = || RegistrarConfig::new("/s", Instance::new("a", "h:1"));
        let c = r().with_ttl(Duration::from_millis(1500));
        assert_eq!(c.ttl_secs(), 2);
        let c = r().with_ttl(Duration::from_millis(10));
        assert_eq!(c.ttl_secs(), 1);
        let c = r().with_ttl(Duration::from_secs(10));
        assert_eq!(c.ttl_secs(), 10);
    }

    #[test]
    fn prefix_is_a_directory() {
        assert_eq!(InstancerConfig::new("/a/b").prefix_dir(), "/a/b/");
        assert_eq!(InstancerConfig::new("/a/b//").prefix_dir(), "/a/b/");
        assert!(InstancerConfig::new("/").validate().is_err());
    }

    #[test]
    fn deserializes_with_durations_and_hides_password() {
        let c: Config = serde_json::from_str(
            r#"{"endpoints":["127.0.0.1:1"],"user":"u","password":"hunter2",
                "request_timeout":"250ms","connect_timeout":1.5}"#,
        )
        .unwrap();
        assert_eq!(c.request_timeout, Duration::from_millis(250));
        assert_eq!(c.connect_timeout, Duration::from_millis(1500));
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("hunter2"));
        c.validate().unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(
            !format!(
                "{:?} {}",
                c.password.as_ref().unwrap(),
                c.password.as_ref().unwrap()
            )
            .contains("hunter2")
        );
    }

    #[test]
    fn rejects_bad_configs() {
        assert!(Config::new(Vec::<String>::new()).validate().is_err());
        let c = Config {
            user: Some("u".into()),
            ..Config::default()
        };
        assert!(c.validate().is_err());
        assert!(Config::default().with_list_page_size(0).validate().is_err());
        assert!(sdkit_core::duration::parse("3 parsecs").is_err());
        assert_eq!(
            sdkit_core::duration::parse("2m"),
            Ok(Duration::from_secs(120))
        );
    }
}
