//! One reachable copy of a service.
//!
//! Every backend maps its native record (a Consul service entry, an SRV record, a discovery
//! instance, an etcd value) onto an [`Instance`]: a stable identity, an address, and what
//! balancing needs (weight, zone, tags and string metadata).
//!
//! ```
//! use sdkit_core::Instance;
//!
//! let a = Instance::new("web-1", "10.0.0.1:8080").with_weight(5).with_zone("sh001");
//! assert_eq!(a.id(), "web-1");
//! assert_eq!(a.weight(), 5);
//!
//! // IPv6 hosts are bracketed when an address is built from host and port.
//! let b = Instance::from_host_port("web-2", "::1", 8080);
//! assert_eq!(b.addr(), "[::1]:8080");
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The default weight of an instance when its registry says nothing.
pub const DEFAULT_WEIGHT: u32 = 1;

fn default_weight() -> u32 {
    DEFAULT_WEIGHT
}

/// One reachable copy of a service.
///
/// Instances are ordered by identity first (then by the remaining fields, so that the order is
/// total and consistent with `Eq`). Two instances with the same [`id`](Self::id) in one snapshot
/// are collapsed into one by the [`InstanceCache`](crate::InstanceCache).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Instance {
    id: String,
    addr: String,
    #[serde(default = "default_weight")]
    weight: u32,
    #[serde(default)]
    zone: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

impl Instance {
    /// An instance with identity `id` reachable at `addr` (`host:port`, IPv6 hosts bracketed),
    /// weight [`DEFAULT_WEIGHT`], no zone, tags or metadata.
    pub fn new(id: impl Into<String>, addr: impl Into<String>) -> Self {
        Instance {
            id: id.into(),
            addr: addr.into(),
            weight: DEFAULT_WEIGHT,
            zone: None,
            tags: Vec::new(),
            metadata: BTreeMap::new(),
        }
    }

    /// An instance whose identity is its address.
    pub fn from_addr(addr: impl Into<String>) -> Self {
        let addr = addr.into();
        Instance::new(addr.clone(), addr)
    }

    /// An instance at `host` and `port`; see [`join_host_port`].
    pub fn from_host_port(id: impl Into<String>, host: &str, port: u16) -> Self {
        Instance::new(id, join_host_port(host, port))
    }

    /// Sets the weight (`0` is allowed and means "never picked by weighted balancers").
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Sets the zone.
    pub fn with_zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = Some(zone.into());
        self
    }

    /// Adds a tag.
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Replaces the tags.
    pub fn with_tags<I, T>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Sets one metadata entry.
    pub fn with_meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Replaces the metadata.
    pub fn with_metadata(mut self, metadata: BTreeMap<String, String>) -> Self {
        self.metadata = metadata;
        self
    }

    /// The stable identity (a registry's instance ID, hostname, key or address).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The address, `host:port` (IPv6 hosts bracketed) or a URL when a backend publishes one.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The address as a socket address, when it is a literal `ip:port`.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.addr.parse().ok()
    }

    /// The weight used by weighted balancers.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// The zone (availability zone, data centre), if the registry carries one.
    pub fn zone(&self) -> Option<&str> {
        self.zone.as_deref()
    }

    /// The tags, in registry order.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// String metadata.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// One metadata value.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }
}

/// Joins a host and a port into `host:port`, bracketing IPv6 literals (`[::1]:80`).
///
/// A host that is already bracketed is left as it is; a trailing dot of a fully qualified DNS
/// name is kept (use [`trim_trailing_dot`] first if the name should lose it).
///
/// ```
/// use sdkit_core::instance::join_host_port;
/// assert_eq!(join_host_port("10.0.0.1", 80), "10.0.0.1:80");
/// assert_eq!(join_host_port("fe80::1", 80), "[fe80::1]:80");
/// assert_eq!(join_host_port("[fe80::1]", 80), "[fe80::1]:80");
/// assert_eq!(join_host_port("web.local", 80), "web.local:80");
/// ```
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Removes the trailing dot of a fully qualified DNS name (`a.example.com.` → `a.example.com`).
pub fn trim_trailing_dot(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_identity_first() {
        let a = Instance::new("a", "10.0.0.9:1").with_weight(9);
        let b = Instance::new("b", "10.0.0.1:1");
        assert!(a < b);
    }

    #[test]
    fn serde_round_trip_and_defaults() {
        let i = Instance::new("x", "[::1]:80")
            .with_zone("z")
            .with_tag("t")
            .with_meta("k", "v");
        let json = serde_json::to_string(&i).unwrap();
        let back: Instance = serde_json::from_str(&json).unwrap();
        assert_eq!(back, i);
        let minimal: Instance = serde_json::from_str(r#"{"id":"a","addr":"h:1"}"#).unwrap();
        assert_eq!(minimal.weight(), DEFAULT_WEIGHT);
        assert!(minimal.zone().is_none());
    }

    #[test]
    fn ipv6_socket_addr() {
        let i = Instance::from_host_port("x", "::1", 9);
        assert_eq!(i.socket_addr(), Some("[::1]:9".parse().unwrap()));
        assert_eq!(trim_trailing_dot("a.b."), "a.b");
        assert_eq!(trim_trailing_dot("a.b"), "a.b");
    }
}
