//! The wire: SRV and A/AAAA queries through `hickory-resolver` 0.26.
//!
//! [`Client`] owns one resolver (configured name servers or the system configuration), shared by
//! every instancer built from it; a crate-private `Query` binds it to one SRV name and turns
//! its answers into plain data: [`SrvAnswer`] (records, glue addresses from the additional
//! section, and when the answer expires) and target address sets. "No such name" and "no
//! records" (NXDOMAIN / NODATA) are answers, not errors; every other failure is an
//! [`Error`].
//!
//! The resolver's response cache is cleared before each refresh: the instancer already
//! schedules refreshes at the answer's TTL, and a refresh forced earlier by the configured
//! maximum interval must reach the server rather than a cached answer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use hickory_resolver::Resolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

use crate::Error;
use crate::config::{AddressFamily, Config, Transport};

/// A resolver on the Tokio runtime.
type TokioResolver = Resolver<TokioRuntimeProvider>;

/// One SRV record as published by the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SrvRecord {
    /// The target as a DNS name (lower-cased, fully qualified).
    pub target: Name,
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
}

/// The answer to the SRV query.
#[derive(Debug)]
pub(crate) enum SrvAnswer {
    /// NXDOMAIN or no SRV records at the name; `valid_until` from the negative TTL when the
    /// server sent an SOA.
    Empty { valid_until: Option<Instant> },
    /// The SRV records, the A/AAAA records of the additional section by owner name (with the
    /// earliest expiry among them), and when the SRV answer expires.
    Records {
        records: Vec<SrvRecord>,
        glue: HashMap<Name, Vec<IpAddr>>,
        glue_valid_until: Option<Instant>,
        valid_until: Instant,
    },
}

/// Addresses of one target.
#[derive(Debug)]
pub(crate) struct Addresses {
    pub ips: Vec<IpAddr>,
    pub valid_until: Option<Instant>,
}

/// The DNS client: the resolvers of the configured name servers, shared (with their caches and
/// connections) by every [`Instancer`](crate::Instancer) built from it. Cheap to clone; building
/// it never touches the network (reading `/etc/resolv.conf` aside).
///
/// ```
/// use sdkit_dnssrv::{Client, Config};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sdkit_dnssrv::Error> {
/// let client = Client::new(Config::default().with_nameserver("127.0.0.1:5353".parse().unwrap()))?;
/// let shared = client.clone();
/// # drop(shared);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Resolvers>,
}

struct Resolvers {
    config: Config,
    resolver: TokioResolver,
    /// The same name servers over TCP only, when they are reached over UDP and TCP.
    tcp_resolver: Option<TokioResolver>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("dnssrv::Client")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// A client bound to one SRV name and address family: what each refresh queries through.
pub(crate) struct Query {
    client: Client,
    name: Name,
    family: AddressFamily,
}

impl std::fmt::Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("name", &self.name.to_ascii())
            .field("family", &self.family)
            .finish_non_exhaustive()
    }
}

/// Parses `text` as a fully qualified DNS name.
pub(crate) fn parse_name(text: &str) -> Result<Name, Error> {
    let mut name = Name::from_ascii(text.trim()).map_err(|e| Error::InvalidName {
        name: text.to_owned(),
        reason: e.to_string(),
    })?;
    if name.is_root() {
        return Err(Error::InvalidName {
            name: text.to_owned(),
            reason: "the root name has no SRV records".into(),
        });
    }
    name.set_fqdn(true);
    Ok(name)
}

fn connections(transport: Transport, port: u16) -> Vec<ConnectionConfig> {
    let mut list = match transport {
        Transport::UdpAndTcp => vec![ConnectionConfig::udp(), ConnectionConfig::tcp()],
        Transport::Udp => vec![ConnectionConfig::udp()],
        Transport::Tcp => vec![ConnectionConfig::tcp()],
    };
    for c in &mut list {
        c.port = port;
    }
    list
}

fn name_server(addr: SocketAddr, transport: Transport) -> NameServerConfig {
    NameServerConfig::new(addr.ip(), true, connections(transport, addr.port()))
}

impl Client {
    /// Builds the resolver (and a TCP-only twin for answers that lost glue to the UDP size
    /// limit); no network I/O (reading `/etc/resolv.conf` aside).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad configuration, [`Error::SystemConfig`] when no name server is
    /// configured and the system resolver configuration cannot be read.
    pub fn new(config: Config) -> Result<Self, Error> {
        config.validate()?;
        let (servers, mut options, hosts) = if config.nameservers().is_empty() {
            let (system, options) = hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| Error::SystemConfig(Box::new(e)))?;
            (system.name_servers().to_vec(), options, ResolveHosts::Auto)
        } else {
            let servers = config
                .nameservers()
                .iter()
                .map(|addr| name_server(*addr, config.transport()))
                .collect();
            (servers, ResolverOpts::default(), ResolveHosts::Never)
        };
        options.timeout = config.timeout();
        // hickory counts retries after the first try; ours counts tries.
        options.attempts = config.attempts().saturating_sub(1);
        options.use_hosts_file = hosts;
        let build = |servers: Vec<NameServerConfig>| {
            let mut builder = Resolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            );
            *builder.options_mut() = options.clone();
            builder.build().map_err(|e| Error::Config(e.to_string()))
        };
        let tcp_servers: Vec<NameServerConfig> = servers
            .iter()
            .filter_map(|server| {
                let tcp: Vec<ConnectionConfig> = server
                    .connections
                    .iter()
                    .filter(|c| matches!(c.protocol, ProtocolConfig::Tcp))
                    .cloned()
                    .collect();
                let has_udp = server
                    .connections
                    .iter()
                    .any(|c| matches!(c.protocol, ProtocolConfig::Udp));
                (has_udp && !tcp.is_empty()).then(|| NameServerConfig::new(server.ip, true, tcp))
            })
            .collect();
        let tcp_resolver = if tcp_servers.is_empty() {
            None
        } else {
            Some(build(tcp_servers)?)
        };
        Ok(Client {
            inner: Arc::new(Resolvers {
                resolver: build(servers)?,
                tcp_resolver,
                config,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }
}

impl Query {
    /// `client` asking for `name` in `family`.
    pub(crate) fn new(client: &Client, name: &str, family: AddressFamily) -> Result<Self, Error> {
        Ok(Query {
            client: client.clone(),
            name: parse_name(name)?,
            family,
        })
    }

    /// The SRV name, as text without the trailing dot.
    pub(crate) fn name_text(&self) -> String {
        sdkit_core::instance::trim_trailing_dot(&self.name.to_ascii()).to_owned()
    }

    /// Forgets cached answers, so the next queries reach the server.
    pub(crate) fn clear_cache(&self) {
        self.client.inner.resolver.clear_cache();
        if let Some(tcp_resolver) = &self.client.inner.tcp_resolver {
            tcp_resolver.clear_cache();
        }
    }

    /// `true` when the SRV query can be repeated over TCP only.
    pub(crate) fn can_retry_over_tcp(&self) -> bool {
        self.client.inner.tcp_resolver.is_some()
    }

    /// Queries the SRV records (over TCP only with `tcp`, when available).
    pub(crate) async fn srv(&self, tcp: bool) -> Result<SrvAnswer, Error> {
        let resolver = match (&self.client.inner.tcp_resolver, tcp) {
            (Some(tcp_resolver), true) => tcp_resolver,
            _ => &self.client.inner.resolver,
        };
        let lookup = match resolver.lookup(self.name.clone(), RecordType::SRV).await {
            Ok(lookup) => lookup,
            Err(e) if e.is_no_records_found() => {
                return Ok(SrvAnswer::Empty {
                    valid_until: negative_valid_until(&e),
                });
            }
            Err(e) => {
                return Err(Error::Lookup {
                    name: self.name_text(),
                    source: Box::new(e),
                });
            }
        };
        let records: Vec<SrvRecord> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(srv) => Some(SrvRecord {
                    target: srv.target.to_lowercase(),
                    port: srv.port,
                    priority: srv.priority,
                    weight: srv.weight,
                }),
                _ => None,
            })
            .collect();
        if records.is_empty() {
            // Only CNAMEs or other types: treat as "no records".
            return Ok(SrvAnswer::Empty {
                valid_until: Some(lookup.valid_until()),
            });
        }
        let (glue, glue_valid_until) = collect_glue(lookup.additionals(), self.family);
        Ok(SrvAnswer::Records {
            records,
            glue,
            glue_valid_until,
            valid_until: lookup.valid_until(),
        })
    }

    /// Looks up the addresses of `target` in the configured families. No such name or no
    /// records → an empty set.
    pub(crate) async fn addresses(&self, target: &Name) -> Result<Addresses, Error> {
        let (v4, v6) = match self.family {
            AddressFamily::Any => {
                tokio::join!(
                    self.lookup_family(target, RecordType::A),
                    self.lookup_family(target, RecordType::AAAA)
                )
            }
            AddressFamily::Ipv4 => (self.lookup_family(target, RecordType::A).await, Ok(None)),
            AddressFamily::Ipv6 => (Ok(None), self.lookup_family(target, RecordType::AAAA).await),
        };
        let mut out = Addresses {
            ips: Vec::new(),
            valid_until: None,
        };
        for part in [v4?, v6?].into_iter().flatten() {
            out.ips.extend(part.ips);
            out.valid_until = earliest(out.valid_until, part.valid_until);
        }
        Ok(out)
    }

    async fn lookup_family(
        &self,
        target: &Name,
        record_type: RecordType,
    ) -> Result<Option<Addresses>, Error> {
        match self
            .client
            .inner
            .resolver
            .lookup(target.clone(), record_type)
            .await
        {
            Ok(lookup) => Ok(Some(Addresses {
                ips: lookup
                    .answers()
                    .iter()
                    .filter_map(|r| ip_of(r, self.family))
                    .collect(),
                valid_until: Some(lookup.valid_until()),
            })),
            Err(e) if e.is_no_records_found() => Ok(Some(Addresses {
                ips: Vec::new(),
                valid_until: negative_valid_until(&e),
            })),
            Err(e) => Err(Error::TargetLookup {
                name: self.name_text(),
                target: sdkit_core::instance::trim_trailing_dot(&target.to_ascii()).to_owned(),
                source: Box::new(e),
            }),
        }
    }
}

fn negative_valid_until(e: &NetError) -> Option<Instant> {
    match e {
        NetError::Dns(hickory_resolver::net::DnsError::NoRecordsFound(no)) => no
            .negative_ttl
            .map(|ttl| Instant::now() + std::time::Duration::from_secs(u64::from(ttl))),
        _ => None,
    }
}

fn ip_of(record: &Record, family: AddressFamily) -> Option<IpAddr> {
    match (&record.data, family) {
        (RData::A(a), AddressFamily::Any | AddressFamily::Ipv4) => Some(IpAddr::V4(a.0)),
        (RData::AAAA(aaaa), AddressFamily::Any | AddressFamily::Ipv6) => Some(IpAddr::V6(aaaa.0)),
        _ => None,
    }
}

fn collect_glue(
    additionals: &[Record],
    family: AddressFamily,
) -> (HashMap<Name, Vec<IpAddr>>, Option<Instant>) {
    let mut glue: HashMap<Name, Vec<IpAddr>> = HashMap::new();
    let mut min_ttl: Option<u32> = None;
    for record in additionals {
        if let Some(ip) = ip_of(record, family) {
            glue.entry(record.name.to_lowercase()).or_default().push(ip);
            min_ttl = Some(min_ttl.map_or(record.ttl, |t| t.min(record.ttl)));
        }
    }
    let valid_until =
        min_ttl.map(|ttl| Instant::now() + std::time::Duration::from_secs(u64::from(ttl)));
    (glue, valid_until)
}

/// The earlier of two optional instants.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}
