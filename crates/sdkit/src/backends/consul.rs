//! `consul://agent:8500/service?tag=v1&passing=true&dc=dc1&token=…&…`

use sdkit_consul::{Config, InstancerConfig, RegistrarConfig, TlsConfig};
use sdkit_core::{Instance, Instancer, Registrar};

use super::{TlsFiles, env, split_host_port};
use crate::error::{Error, TargetError};
use crate::url::{Query, RawUrl};

const FORM: &str = "consul://host:port/service[?tag=…&passing=true&dc=…&token=…]";
const KEYS: &str = "tag, passing, filter, dc, stale, wait, zone_key, token, tls, ca, cert, key, \
                    ttl, deregister_after";

#[derive(Clone)]
pub(crate) struct Spec {
    client: Config,
    watch: InstancerConfig,
    ttl: Option<std::time::Duration>,
    deregister_after: Option<std::time::Duration>,
}

pub(crate) fn parse(raw: &RawUrl) -> Result<Spec, TargetError> {
    let [agent] = raw.hosts.as_slice() else {
        return Err(TargetError::new("host", "exactly one Consul agent").expected(FORM));
    };
    let service = raw.path.trim_matches('/');
    if service.is_empty() || service.contains('/') {
        return Err(TargetError::new("path", "the path must be one service name").expected(FORM));
    }
    let mut q = Query::new(raw.query.clone());
    let tls_on = q.take_bool("tls")?.unwrap_or(false);
    let files = TlsFiles::take(&mut q, FORM)?;
    let mut client = Config::new(if tls_on || files.any() {
        format!("https://{agent}")
    } else {
        agent.clone()
    });
    // Token: the query, a bare user-info (`consul://TOKEN@host`), or CONSUL_HTTP_TOKEN.
    if let Some(token) = q
        .take("token")
        .or_else(|| raw.user.clone())
        .or_else(|| env("CONSUL_HTTP_TOKEN"))
    {
        client = client.with_token(token);
    }
    if tls_on || files.any() {
        let mut tls = TlsConfig::default();
        if let Some(ca) = files.ca {
            tls = tls.with_ca_file(ca);
        }
        if let Some((cert, key)) = files.client {
            tls = tls.with_client_cert(cert, key);
        }
        client = client.with_tls(tls);
    }
    let mut watch = InstancerConfig::new(service);
    for tag in q.take_all("tag") {
        watch = watch.with_tag(tag);
    }
    if let Some(passing) = q.take_bool("passing")? {
        watch = watch.with_passing_only(passing);
    }
    if let Some(filter) = q.take("filter") {
        watch = watch.with_filter(filter);
    }
    if let Some(dc) = q.take("dc") {
        watch = watch.with_datacenter(dc);
    }
    if let Some(stale) = q.take_bool("stale")? {
        watch = watch.with_stale(stale);
    }
    if let Some(wait) = q.take_duration("wait")? {
        watch = watch.with_wait(wait);
    }
    if let Some(zone_key) = q.take("zone_key") {
        watch = watch.with_zone_meta_key(Some(zone_key));
    }
    let ttl = q.take_duration("ttl")?;
    let deregister_after = q.take_duration("deregister_after")?;
    q.finish(KEYS)?;
    Ok(Spec {
        client,
        watch,
        ttl,
        deregister_after,
    })
}

pub(crate) fn instancer(spec: &Spec) -> Result<Box<dyn Instancer>, Error> {
    sdkit_consul::Instancer::from_config(spec.client.clone(), spec.watch.clone())
        .map(|i| Box::new(i) as Box<dyn Instancer>)
        .map_err(|e| Error::backend("consul", e))
}

pub(crate) fn registrar(spec: &Spec, instance: Instance) -> Result<Box<dyn Registrar>, Error> {
    let (host, port) = split_host_port(instance.addr()).ok_or_else(|| {
        Error::backend(
            "consul",
            format!("instance address `{}` is not host:port", instance.addr()),
        )
    })?;
    let mut config = RegistrarConfig::new(spec.watch.service.clone(), port)
        .with_id(instance.id())
        .with_address(host)
        .with_weights(instance.weight(), instance.weight());
    for tag in instance.tags() {
        config = config.with_tag(tag);
    }
    for (key, value) in instance.metadata() {
        config = config.with_meta(key, value);
    }
    if let (Some(zone), Some(zone_key)) = (instance.zone(), spec.watch.zone_meta_key.as_ref()) {
        config = config.with_meta(zone_key.clone(), zone);
    }
    if let Some(ttl) = spec.ttl {
        config = config.with_ttl(ttl);
    }
    if let Some(after) = spec.deregister_after {
        config = config.with_deregister_critical_after(after);
    }
    sdkit_consul::Registrar::from_config(spec.client.clone(), config)
        .map(|r| Box::new(r) as Box<dyn Registrar>)
        .map_err(|e| Error::backend("consul", e))
}
