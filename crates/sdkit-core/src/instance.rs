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

use std::net::SocketAddr;
use std::sync::Arc;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

pub mod json;
mod meta;

use meta::MetaMap;

/// The default weight of an instance when its registry says nothing.
pub const DEFAULT_WEIGHT: u32 = 1;

fn default_weight() -> u32 {
    DEFAULT_WEIGHT
}

/// One reachable copy of a service.
///
/// Strings are stored inline when short (up to 24 bytes: identities, addresses, zones and most
/// tags and metadata), so building, comparing and dropping large snapshots allocates little.
///
/// Instances are ordered by identity first (then by the remaining fields, so that the order is
/// total and consistent with `Eq`). Two instances with the same [`id`](Self::id) in one snapshot
/// are collapsed into one by the [`InstanceCache`](crate::InstanceCache).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Instance {
    id: CompactString,
    addr: CompactString,
    #[serde(default = "default_weight")]
    weight: u32,
    #[serde(default)]
    zone: Option<CompactString>,
    #[serde(default)]
    tags: Vec<CompactString>,
    #[serde(default)]
    metadata: MetaMap,
}

impl Instance {
    /// An instance with identity `id` reachable at `addr` (`host:port`, IPv6 hosts bracketed),
    /// weight [`DEFAULT_WEIGHT`], no zone, tags or metadata.
    pub fn new(id: impl AsRef<str>, addr: impl AsRef<str>) -> Self {
        Instance {
            id: CompactString::new(id),
            addr: CompactString::new(addr),
            weight: DEFAULT_WEIGHT,
            zone: None,
            tags: Vec::new(),
            metadata: MetaMap::default(),
        }
    }

    /// An instance whose identity is its address.
    pub fn from_addr(addr: impl AsRef<str>) -> Self {
        let addr = CompactString::new(addr);
        Instance::new(&addr, &addr)
    }

    /// An instance at `host` and `port`; see [`join_host_port`].
    pub fn from_host_port(id: impl AsRef<str>, host: &str, port: u16) -> Self {
        Instance::new(id, join_host_port(host, port))
    }

    /// Sets the weight (`0` is allowed and means "never picked by weighted balancers").
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Sets the zone.
    pub fn with_zone(mut self, zone: impl AsRef<str>) -> Self {
        self.zone = Some(CompactString::new(zone));
        self
    }

    /// Adds a tag.
    pub fn with_tag(mut self, tag: impl AsRef<str>) -> Self {
        self.tags.push(CompactString::new(tag));
        self
    }

    /// Replaces the tags.
    pub fn with_tags<I, T>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.tags = tags.into_iter().map(CompactString::new).collect();
        self
    }

    /// Sets one metadata entry (replacing an earlier value of `key`).
    ///
    /// Metadata is kept as one sorted array, so each call copies it: to set more than a handful
    /// of entries (say, a map decoded from a registry), pass them all to
    /// [`with_metadata`](Self::with_metadata), which sorts once.
    pub fn with_meta(mut self, key: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        self.metadata
            .insert(CompactString::new(key), CompactString::new(value));
        self
    }

    /// Replaces the metadata (any map or list of string pairs).
    pub fn with_metadata<I, K, V>(mut self, metadata: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.metadata = metadata
            .into_iter()
            .map(|(k, v)| (CompactString::new(k), CompactString::new(v)))
            .collect();
        self
    }

    /// The stable identity (a registry's instance ID, hostname, key or address).
    #[inline]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The address, `host:port` (IPv6 hosts bracketed) or a URL when a backend publishes one.
    #[inline]
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
    pub fn tags(&self) -> Tags<'_> {
        Tags(self.tags.iter())
    }

    /// String metadata, sorted by key.
    pub fn metadata(&self) -> Metadata<'_> {
        Metadata(self.metadata.entries().iter())
    }

    /// One metadata value.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key)
    }
}

/// One instance of a snapshot's shared, immutable instance list: what an
/// [`Endpoint`](crate::Endpoint) keeps. Carrying an endpoint over to a new snapshot then costs
/// one reference count on the new list, never a copy, an allocation or a field-by-field
/// comparison of the instance (its metadata and tags live on the heap: comparing 100 000 of them
/// on every update was most of the endpointer's update cost).
#[derive(Clone)]
pub(crate) struct SharedInstance {
    list: Arc<Vec<Instance>>,
    /// Always a valid index of `list` (checked when built).
    index: usize,
}

impl SharedInstance {
    /// The instance at `index` of `list`, or `None` when there is none.
    pub(crate) fn in_list(list: &Arc<Vec<Instance>>, index: usize) -> Option<Self> {
        (index < list.len()).then(|| SharedInstance {
            list: Arc::clone(list),
            index,
        })
    }

    /// A list of one, for an endpoint made without a snapshot.
    pub(crate) fn alone(instance: Instance) -> Self {
        SharedInstance {
            list: Arc::new(vec![instance]),
            index: 0,
        }
    }

    /// The instance.
    #[inline]
    pub(crate) fn get(&self) -> &Instance {
        &self.list[self.index]
    }

    /// `true` when this is the instance at `index` of `list` (the very same list, not an equal
    /// one).
    pub(crate) fn is_at(&self, list: &Arc<Vec<Instance>>, index: usize) -> bool {
        self.index == index && Arc::ptr_eq(&self.list, list)
    }
}

impl std::fmt::Debug for SharedInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

/// The tags of an [`Instance`], in registry order.
#[derive(Clone)]
pub struct Tags<'a>(std::slice::Iter<'a, CompactString>);

impl<'a> Iterator for Tags<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        self.0.next().map(CompactString::as_str)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for Tags<'_> {}

impl std::fmt::Debug for Tags<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

/// The metadata of an [`Instance`], sorted by key.
#[derive(Clone)]
pub struct Metadata<'a>(std::slice::Iter<'a, (CompactString, CompactString)>);

impl<'a> Iterator for Metadata<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        self.0.next().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for Metadata<'_> {}

impl std::fmt::Debug for Metadata<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.clone()).finish()
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

/// Splits `host:port` (IPv6 hosts bracketed) into the bare host and the port: the inverse of
/// [`join_host_port`]. `None` when there is no port, the port is not a number, the host is
/// empty, or an IPv6 host is not bracketed.
///
/// ```
/// use sdkit_core::instance::split_host_port;
/// assert_eq!(split_host_port("10.0.0.1:80"), Some(("10.0.0.1", 80)));
/// assert_eq!(split_host_port("[fe80::1]:80"), Some(("fe80::1", 80)));
/// assert_eq!(split_host_port("fe80::1:80"), None);
/// assert_eq!(split_host_port("web.local"), None);
/// assert_eq!(split_host_port(":80"), None);
/// ```
pub fn split_host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    (!host.is_empty()).then_some((host, port))
}

/// Why an address is not a valid `host:port` (see [`check_host_port`]). Its `Display` is the
/// reason alone (`has port 0`); callers name the address and the record around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadAddr {
    /// No `:` at all.
    #[error("is not host:port")]
    NotHostPort,
    /// The port is not a number in `0..=65535`.
    #[error("has no valid port")]
    BadPort,
    /// The port is 0.
    #[error("has port 0")]
    PortZero,
    /// A bracketed host that is not an IPv6 address (or a bracket left open).
    #[error("has a bad IPv6 address")]
    BadIpv6,
    /// An empty host, or one with a character outside letters, digits, `-`, `.` and `_`.
    #[error("has a bad host")]
    BadHost,
}

/// Checks that an address read from a registry is `host:port`: a non-zero port, and a DNS-ish
/// host (letters, digits, `-`, `.`, `_`) or a bracketed IPv6 address. What the etcd and
/// ZooKeeper backends require of the addresses in their values before they publish them.
///
/// ```
/// use sdkit_core::instance::{BadAddr, check_host_port};
/// assert_eq!(check_host_port("10.0.0.1:80"), Ok(()));
/// assert_eq!(check_host_port("[::1]:80"), Ok(()));
/// assert_eq!(check_host_port("web.local"), Err(BadAddr::NotHostPort));
/// assert_eq!(check_host_port("h:0"), Err(BadAddr::PortZero));
/// assert_eq!(check_host_port("[zz]:80"), Err(BadAddr::BadIpv6));
/// assert_eq!(check_host_port("a b:80"), Err(BadAddr::BadHost));
/// assert_eq!(format!("{}", BadAddr::PortZero), "has port 0");
/// ```
pub fn check_host_port(addr: &str) -> Result<(), BadAddr> {
    let (host, port) = addr.rsplit_once(':').ok_or(BadAddr::NotHostPort)?;
    match port.parse::<u16>() {
        Ok(0) => return Err(BadAddr::PortZero),
        Ok(_) => {}
        Err(_) => return Err(BadAddr::BadPort),
    }
    if let Some(inner) = host.strip_prefix('[') {
        return inner
            .strip_suffix(']')
            .and_then(|v6| v6.parse::<std::net::Ipv6Addr>().ok())
            .map(drop)
            .ok_or(BadAddr::BadIpv6);
    }
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if valid { Ok(()) } else { Err(BadAddr::BadHost) }
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
