//! Configuration: the ensemble and the session ([`Config`]), one watched service path
//! ([`InstancerConfig`]) and one registration ([`RegistrarConfig`]).
//!
//! Every option has a default and a `with_x` setter; [`Config`] also deserializes with serde
//! (durations as `"500ms"`, `"10s"` or a number of seconds), so the facade can fill it from a
//! URL such as `zk://127.0.0.1:2181,127.0.0.1:2182/services/web?ttl=10s`.
//!
//! ```
//! use std::time::Duration;
//! use sdkit_zookeeper::Config;
//!
//! let config = Config::new(["10.0.0.1:2181", "10.0.0.2:2181", "10.0.0.3:2181"])
//!     .with_session_timeout(Duration::from_secs(6))
//!     .with_digest("svc", "s3cret");
//! assert!(config.validate().is_ok());
//! assert_eq!(config.connect_string(), "10.0.0.1:2181,10.0.0.2:2181,10.0.0.3:2181");
//! assert_eq!(config.digest_user(), Some("svc"));
//! // The password never shows up in Debug output.
//! assert!(!format!("{config:?}").contains("s3cret"));
//! ```

use std::fmt;
use std::time::Duration;

use sdkit_core::{Backoff, Instance};
use serde::Deserialize;

use crate::error::Error;
use sdkit_core::Secret;

/// Connection settings: the ensemble, the session, the credentials. See the
/// [module docs](self).
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    servers: Vec<String>,
    #[serde(deserialize_with = "sdkit_core::duration::deserialize", alias = "ttl")]
    session_timeout: Duration,
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    connect_timeout: Duration,
    #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
    request_timeout: Duration,
    user: Option<String>,
    password: Option<Secret>,
    max_value_size: usize,
    max_children: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            servers: vec!["127.0.0.1:2181".to_owned()],
            session_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            user: None,
            password: None,
            max_value_size: 64 * 1024,
            max_children: 100_000,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("servers", &self.servers)
            .field("session_timeout", &self.session_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("max_value_size", &self.max_value_size)
            .field("max_children", &self.max_children)
            .finish()
    }
}

impl Config {
    /// The defaults, talking to the ensemble `servers` (`host:port` each).
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

    /// Sets the servers of the ensemble; the client fails over between them.
    pub fn with_servers<I, S>(mut self, servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.servers = servers.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the session timeout asked of the servers (default 10 s; the servers clamp it to
    /// their `minSessionTimeout`..`maxSessionTimeout`, by default 2..20 ticks). An ephemeral node
    /// outlives a dead registrar by this long.
    pub fn with_session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// Sets the bound on establishing a session (default 5 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the bound on each request (default 5 s).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Authenticates with the `digest` scheme as `user:password`. Nodes the registrar creates
    /// then carry the ACL "creator: all, anyone: read".
    pub fn with_digest(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self.password = Some(Secret::new(password));
        self
    }

    /// Sets the largest accepted node value (default 64 KiB); larger ones are skipped.
    pub fn with_max_value_size(mut self, size: usize) -> Self {
        self.max_value_size = size;
        self
    }

    /// Sets the largest number of children read under one path (default 100 000); a longer
    /// list is an error event and the last good set is kept.
    pub fn with_max_children(mut self, max: usize) -> Self {
        self.max_children = max;
        self
    }

    /// The servers of the ensemble.
    pub fn servers(&self) -> &[String] {
        &self.servers
    }

    /// The connect string handed to the client: `host:port,host:port`.
    pub fn connect_string(&self) -> String {
        self.servers
            .iter()
            .map(|s| s.trim())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The session timeout asked for.
    pub fn session_timeout(&self) -> Duration {
        self.session_timeout
    }

    /// The bound on establishing a session.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The bound on each request.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The digest user, if any.
    pub fn digest_user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// `user:password` for the digest scheme (crate-private: the only place the password is
    /// read).
    pub(crate) fn digest_credentials(&self) -> Option<(String, Vec<u8>)> {
        let (user, password) = (self.user.as_ref()?, self.password.as_ref()?);
        Some((
            user.clone(),
            format!("{user}:{}", password.expose()).into_bytes(),
        ))
    }

    /// The largest accepted node value.
    pub fn max_value_size(&self) -> usize {
        self.max_value_size
    }

    /// The largest number of children read under one path.
    pub fn max_children(&self) -> usize {
        self.max_children
    }

    /// Checks the configuration without touching the network.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming what is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: &str| Err(Error::Config(what.to_owned()));
        if self.servers.is_empty() {
            return bad("at least one server is required");
        }
        for server in &self.servers {
            let server = server.trim();
            let port_ok = server
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok || server.contains(['/', ',', ' ']) {
                return Err(Error::Config(format!("server {server:?} is not host:port")));
            }
        }
        if self.user.is_some() != self.password.is_some() {
            return bad("a digest user and password go together");
        }
        if self.user.as_deref().is_some_and(|u| u.contains(':')) {
            return bad("a digest user name must not contain ':'");
        }
        for (name, d) in [
            ("session_timeout", self.session_timeout),
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
        ] {
            if d.is_zero() {
                return Err(Error::Config(format!("{name} must be positive")));
            }
        }
        if self.max_value_size == 0 || self.max_children == 0 {
            return bad("size limits must be positive");
        }
        Ok(())
    }
}

/// Checks that `path` is an absolute ZooKeeper path below the root, without a trailing `/`.
pub(crate) fn check_path(path: &str) -> Result<(), Error> {
    let ok = path.starts_with('/')
        && path.len() > 1
        && !path.ends_with('/')
        && path[1..]
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..");
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{path:?} is not an absolute node path such as /services/web"
        )))
    }
}

/// Normalises `path`: one leading `/`, no trailing `/`.
fn normalize(path: &str) -> String {
    format!("/{}", path.trim_matches('/'))
}

/// What one [`Instancer`](crate::Instancer) watches.
///
/// ```
/// use sdkit_zookeeper::InstancerConfig;
///
/// let config = InstancerConfig::new("/services/web/");
/// assert_eq!(config.path(), "/services/web");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct InstancerConfig {
    path: String,
    backoff: Backoff,
}

impl InstancerConfig {
    /// Watches the children of `path` (a trailing `/` is dropped).
    pub fn new(path: impl AsRef<str>) -> Self {
        InstancerConfig {
            path: normalize(path.as_ref()),
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
        }
    }

    /// Sets the retry timing after a failure (default 100 ms doubling to 5 s).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The watched path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The retry timing.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }
}

/// What one [`Registrar`](crate::Registrar) registers: an instance under a service path.
///
/// ```
/// use sdkit_core::Instance;
/// use sdkit_zookeeper::RegistrarConfig;
///
/// let config = RegistrarConfig::new("/services/web", Instance::new("web-1", "10.0.0.7:8080"));
/// assert_eq!(config.node_prefix(), "/services/web/web-1-");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RegistrarConfig {
    path: String,
    instance: Instance,
    backoff: Backoff,
    verify_interval: Duration,
    deregister_timeout: Duration,
}

impl RegistrarConfig {
    /// Registers `instance` as an ephemeral sequential child `<id>-<sequence>` of `path`.
    pub fn new(path: impl AsRef<str>, instance: Instance) -> Self {
        RegistrarConfig {
            path: normalize(path.as_ref()),
            instance,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
            verify_interval: Duration::from_secs(30),
            deregister_timeout: Duration::from_secs(5),
        }
    }

    /// Sets the retry timing after a failure (default 100 ms doubling to 5 s).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets how often the node is checked even when no watch event came (default 30 s; a
    /// deletion or a session expiry is noticed at once through the watch).
    pub fn with_verify_interval(mut self, interval: Duration) -> Self {
        self.verify_interval = interval;
        self
    }

    /// Sets the deregistration bound (default 5 s).
    pub fn with_deregister_timeout(mut self, timeout: Duration) -> Self {
        self.deregister_timeout = timeout;
        self
    }

    /// The service path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The registered instance.
    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    /// The retry timing.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// How often the node is checked without events.
    pub fn verify_interval(&self) -> Duration {
        self.verify_interval
    }

    /// The deregistration bound.
    pub fn deregister_timeout(&self) -> Duration {
        self.deregister_timeout
    }

    /// The path the sequential node is created with: `<path>/<id>-`.
    pub fn node_prefix(&self) -> String {
        format!("{}/{}-", self.path, self.instance.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserializes_with_durations_and_hides_password() {
        let c: Config = serde_json::from_str(
            r#"{"servers":["127.0.0.1:1","127.0.0.1:2"],"user":"u","password":"hunter2",
                "session_timeout":"3s","request_timeout":"250ms"}"#,
        )
        .unwrap();
        assert_eq!(c.session_timeout(), Duration::from_secs(3));
        assert_eq!(c.request_timeout(), Duration::from_millis(250));
        assert_eq!(c.connect_string(), "127.0.0.1:1,127.0.0.1:2");
        c.validate().unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert_eq!(
            c.digest_credentials().unwrap().1,
            b"u:hunter2".to_vec(),
            "the client gets the real credentials"
        );
    }

    #[test]
    fn rejects_bad_configs() {
        assert!(Config::new(Vec::<String>::new()).validate().is_err());
        assert!(Config::new(["nohost"]).validate().is_err());
        assert!(Config::new(["h:1/chroot"]).validate().is_err());
        assert!(
            Config::new(["h:1"])
                .with_digest("a:b", "p")
                .validate()
                .is_err()
        );
        assert!(
            Config::new(["h:1"])
                .with_session_timeout(Duration::ZERO)
                .validate()
                .is_err()
        );
        assert!(serde_json::from_str::<Config>(r#"{"bogus":1}"#).is_err());
    }

    #[test]
    fn paths() {
        assert_eq!(
            InstancerConfig::new("services/web/").path(),
            "/services/web"
        );
        assert!(check_path("/services/web").is_ok());
        for bad in ["/", "", "/a//b", "/a/../b", "a", "/a/"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }
}
