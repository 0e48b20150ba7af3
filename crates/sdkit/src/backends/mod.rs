//! Per-scheme mapping from a parsed URL onto each backend's configuration.

#[cfg(feature = "consul")]
mod consul;
#[cfg(feature = "discovery")]
mod discovery;
#[cfg(feature = "dnssrv")]
mod dnssrv;
#[cfg(feature = "etcd")]
mod etcd;
#[cfg(feature = "eureka")]
mod eureka;
#[cfg(feature = "zookeeper")]
mod zookeeper;

use sdkit_core::{Instance, Instancer, Registrar};

use crate::error::{Error, TargetError};
use crate::url::{Query, RawUrl};

/// What a target builds.
#[derive(Clone)]
pub(crate) enum Spec {
    Static(Vec<Instance>),
    #[cfg(feature = "discovery")]
    Discovery(discovery::Spec),
    #[cfg(feature = "consul")]
    Consul(consul::Spec),
    #[cfg(feature = "etcd")]
    Etcd(etcd::Spec),
    #[cfg(feature = "dnssrv")]
    DnsSrv(dnssrv::Spec),
    #[cfg(feature = "zookeeper")]
    ZooKeeper(zookeeper::Spec),
    #[cfg(feature = "eureka")]
    Eureka(eureka::Spec),
}

impl Spec {
    pub fn scheme(&self) -> &'static str {
        match self {
            Spec::Static(_) => "static",
            #[cfg(feature = "discovery")]
            Spec::Discovery(_) => "discovery",
            #[cfg(feature = "consul")]
            Spec::Consul(_) => "consul",
            #[cfg(feature = "etcd")]
            Spec::Etcd(_) => "etcd",
            #[cfg(feature = "dnssrv")]
            Spec::DnsSrv(_) => "dnssrv",
            #[cfg(feature = "zookeeper")]
            Spec::ZooKeeper(_) => "zk",
            #[cfg(feature = "eureka")]
            Spec::Eureka(_) => "eureka",
        }
    }

    pub fn can_register(&self) -> bool {
        !matches!(self.scheme(), "static" | "dnssrv")
    }
}

const STATIC_FORM: &str = "static://host:port[,host:port…]";

pub(crate) fn parse(raw: &RawUrl) -> Result<Spec, TargetError> {
    match raw.scheme.as_str() {
        "static" => parse_static(raw),
        #[cfg(feature = "discovery")]
        "discovery" => discovery::parse(raw).map(Spec::Discovery),
        #[cfg(feature = "consul")]
        "consul" => consul::parse(raw).map(Spec::Consul),
        #[cfg(feature = "etcd")]
        "etcd" => etcd::parse(raw).map(Spec::Etcd),
        #[cfg(feature = "dnssrv")]
        "dnssrv" => dnssrv::parse(raw).map(Spec::DnsSrv),
        #[cfg(feature = "zookeeper")]
        "zk" => zookeeper::parse(raw).map(Spec::ZooKeeper),
        #[cfg(feature = "eureka")]
        "eureka" => eureka::parse(raw).map(Spec::Eureka),
        other => Err(TargetError::new(
            "scheme",
            format!("`{other}` is not a known registry (or its feature is off)"),
        )
        .expected("discovery://, consul://, etcd://, dnssrv:// or static://")),
    }
}

fn parse_static(raw: &RawUrl) -> Result<Spec, TargetError> {
    if raw.hosts.is_empty() {
        return Err(TargetError::new("host", "no address").expected(STATIC_FORM));
    }
    if !raw.path.is_empty() {
        return Err(TargetError::new("path", "static targets have no path").expected(STATIC_FORM));
    }
    Query::new(raw.query.clone()).finish("none")?;
    raw.hosts
        .iter()
        .map(|h| {
            split_host_port(h)
                .map(|_| Instance::from_addr(h.clone()))
                .ok_or_else(|| {
                    TargetError::new("host", format!("`{h}` is not host:port"))
                        .expected(STATIC_FORM)
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Spec::Static)
}

pub(crate) fn instancer(spec: &Spec) -> Result<Box<dyn Instancer>, Error> {
    match spec {
        Spec::Static(instances) => Ok(Box::new(sdkit_core::FixedInstancer::new(instances.clone()))),
        #[cfg(feature = "discovery")]
        Spec::Discovery(s) => discovery::instancer(s),
        #[cfg(feature = "consul")]
        Spec::Consul(s) => consul::instancer(s),
        #[cfg(feature = "etcd")]
        Spec::Etcd(s) => etcd::instancer(s),
        #[cfg(feature = "dnssrv")]
        Spec::DnsSrv(s) => dnssrv::instancer(s),
        #[cfg(feature = "zookeeper")]
        Spec::ZooKeeper(s) => zookeeper::instancer(s),
        #[cfg(feature = "eureka")]
        Spec::Eureka(s) => eureka::instancer(s),
    }
}

pub(crate) fn registrar(spec: &Spec, instance: Instance) -> Result<Box<dyn Registrar>, Error> {
    match spec {
        #[cfg(feature = "discovery")]
        Spec::Discovery(s) => discovery::registrar(s, instance),
        #[cfg(feature = "consul")]
        Spec::Consul(s) => consul::registrar(s, instance),
        #[cfg(feature = "etcd")]
        Spec::Etcd(s) => etcd::registrar(s, instance),
        #[cfg(feature = "zookeeper")]
        Spec::ZooKeeper(s) => zookeeper::registrar(s, instance),
        #[cfg(feature = "eureka")]
        Spec::Eureka(s) => eureka::registrar(s, instance),
        other => Err(Error::Unsupported {
            scheme: other.scheme(),
            what: "register instances",
        }),
    }
}

pub(crate) use sdkit_core::instance::split_host_port;

/// The TLS files of a target: `ca=…`, `cert=…&key=…` (the query keys every TLS-capable backend
/// shares), parsed once.
#[cfg(any(feature = "consul", feature = "etcd"))]
#[derive(Clone, Debug, Default)]
pub(crate) struct TlsFiles {
    /// `ca`: the CA certificate(s) to trust.
    pub ca: Option<String>,
    /// `cert` and `key`: the client certificate and its key (mutual TLS).
    pub client: Option<(String, String)>,
}

#[cfg(any(feature = "consul", feature = "etcd"))]
impl TlsFiles {
    /// Takes `ca`, `cert` and `key` from `q`; `cert` and `key` go together.
    pub fn take(q: &mut Query, form: &'static str) -> Result<TlsFiles, TargetError> {
        let ca = q.take("ca");
        let client = match (q.take("cert"), q.take("key")) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(TargetError::new("cert", "`cert` and `key` go together").expected(form));
            }
        };
        Ok(TlsFiles { ca, client })
    }

    /// `true` when any file was given.
    pub fn any(&self) -> bool {
        self.ca.is_some() || self.client.is_some()
    }
}

/// The value of an environment variable, if set and not empty.
pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
