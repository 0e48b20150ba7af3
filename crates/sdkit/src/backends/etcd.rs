//! `etcd://[user:password@]host:port[,host:port…]/prefix?ttl=10s&…`

use sdkit_core::{Instance, Instancer, Registrar};
use sdkit_etcd::{Config, InstancerConfig, RegistrarConfig, TlsConfig};

use super::{TlsFiles, env};
use crate::error::{Error, TargetError};
use crate::url::{Query, RawUrl};

const FORM: &str = "etcd://[user:password@]host:port[,host:port…]/key/prefix[?ttl=10s]";
const KEYS: &str = "user, password, ttl, ca, cert, key, domain, connect_timeout, request_timeout";

#[derive(Clone)]
pub(crate) struct Spec {
    config: Config,
    prefix: String,
    ttl: Option<std::time::Duration>,
}

pub(crate) fn parse(raw: &RawUrl) -> Result<Spec, TargetError> {
    if raw.hosts.is_empty() {
        return Err(TargetError::new("host", "no etcd endpoint").expected(FORM));
    }
    let prefix = raw.path.trim_matches('/');
    if prefix.is_empty() {
        return Err(TargetError::new("path", "missing key prefix").expected(FORM));
    }
    let mut q = Query::new(raw.query.clone());
    let prefix = format!("/{prefix}");
    let mut config = Config::new(raw.hosts.clone());
    let user = q.take("user").or_else(|| raw.user.clone()).or_else(|| {
        env("ETCDCTL_USER").map(|u| u.split(':').next().unwrap_or_default().to_owned())
    });
    let password = q
        .take("password")
        .or_else(|| raw.password.clone())
        .or_else(|| env("ETCDCTL_PASSWORD"))
        .or_else(|| env("ETCDCTL_USER").and_then(|u| u.split_once(':').map(|(_, p)| p.to_owned())));
    match (user, password) {
        (Some(user), Some(password)) => config = config.with_user(user, password),
        (None, None) => {}
        (Some(_), None) => {
            return Err(TargetError::new("password", "a user needs a password").expected(FORM));
        }
        (None, Some(_)) => {
            return Err(TargetError::new("user", "a password needs a user").expected(FORM));
        }
    }
    let ttl = q.take_duration("ttl")?;
    if let Some(t) = q.take_duration("connect_timeout")? {
        config = config.with_connect_timeout(t);
    }
    if let Some(t) = q.take_duration("request_timeout")? {
        config = config.with_request_timeout(t);
    }
    let files = TlsFiles::take(&mut q, FORM)?;
    let domain = q.take("domain");
    if files.any() || domain.is_some() {
        let mut tls = TlsConfig::default();
        if let Some(ca) = files.ca {
            tls = tls.with_ca_file(ca);
        }
        if let Some((cert, key)) = files.client {
            tls = tls.with_client_cert(cert, key);
        }
        if let Some(domain) = domain {
            tls = tls.with_domain(domain);
        }
        config = config.with_tls(tls);
    }
    q.finish(KEYS)?;
    config
        .validate()
        .map_err(|e| TargetError::new("query", e.to_string()).expected(FORM))?;
    Ok(Spec {
        config,
        prefix,
        ttl,
    })
}

pub(crate) fn instancer(spec: &Spec) -> Result<Box<dyn Instancer>, Error> {
    sdkit_etcd::Instancer::from_config(spec.config.clone(), InstancerConfig::new(&spec.prefix))
        .map(|i| Box::new(i) as Box<dyn Instancer>)
        .map_err(|e| Error::backend("etcd", e))
}

pub(crate) fn registrar(spec: &Spec, instance: Instance) -> Result<Box<dyn Registrar>, Error> {
    let mut registration = RegistrarConfig::new(&spec.prefix, instance);
    if let Some(ttl) = spec.ttl {
        registration = registration.with_ttl(ttl);
    }
    sdkit_etcd::Registrar::from_config(spec.config.clone(), registration)
        .map(|r| Box::new(r) as Box<dyn Registrar>)
        .map_err(|e| Error::backend("etcd", e))
}
