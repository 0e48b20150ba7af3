//! The wire: SRV and A/AAAA queries through `hickory-resolver` 0.26.
//!
//! [`Client`] owns one resolver (configured name servers or the system configuration) and turns
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
use std::time::Instant;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::{Resolver, TokioResolver};

use crate::Error;
use crate::config::{AddressFamily, Config, Transport};

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

/// A resolver bound to one SRV name.
pub(crate) struct Client {
    resolver: TokioResolver,
    name: Name,
    family: AddressFamily,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
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
    /// Builds the resolver; no network I/O (reading `/etc/resolv.conf` aside).
    pub(crate) fn new(config: &Config) -> Result<Self, Error> {
        config.validate()?;
        let name = parse_name(config.name())?;
        let mut builder = if config.nameserver_addrs().is_empty() {
            let mut builder =
                TokioResolver::builder_tokio().map_err(|e| Error::SystemConfig(Box::new(e)))?;
            builder.options_mut().use_hosts_file = ResolveHosts::Auto;
            builder
        } else {
            let servers = config
                .nameserver_addrs()
                .iter()
                .map(|addr| name_server(*addr, config.transport_mode()))
                .collect();
            let mut builder = Resolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            );
            builder.options_mut().use_hosts_file = ResolveHosts::Never;
            builder
        };
        let options = builder.options_mut();
        options.timeout = config.request_timeout();
        options.attempts = config.request_attempts();
        let resolver = builder.build().map_err(|e| Error::Config(e.to_string()))?;
        Ok(Client {
            resolver,
            name,
            family: config.family(),
        })
    }

    /// The SRV name, as text without the trailing dot.
    pub(crate) fn name_text(&self) -> String {
        sdkit_core::instance::trim_trailing_dot(&self.name.to_ascii()).to_owned()
    }

    /// Forgets cached answers, so the next queries reach the server.
    pub(crate) fn clear_cache(&self) {
        self.resolver.clear_cache();
    }

    /// Queries the SRV records.
    pub(crate) async fn srv(&self) -> Result<SrvAnswer, Error> {
        let lookup = match self
            .resolver
            .lookup(self.name.clone(), RecordType::SRV)
            .await
        {
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
        match self.resolver.lookup(target.clone(), record_type).await {
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
