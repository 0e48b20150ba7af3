//! `discovery://node[,node…]/appid?env=dev&zone=sh001&region=…&scheme=grpc&…`

use std::time::Duration;

use sdkit_core::{Instance, Instancer, Registrar};
use sdkit_discovery::{Config, InstancerConfig, RegistrarConfig};

use super::env;
use crate::error::{Error, TargetError};
use crate::url::{Query, RawUrl};

const FORM: &str = "discovery://host:port[,host:port…]/appid?env=dev[&zone=…&region=…&scheme=grpc]";
/// The zone a registration uses when neither the URL, the instance nor `ZONE` gives one.
const DEFAULT_ZONE: &str = "local";
const KEYS: &str =
    "env, zone, region, hostname, scheme, only_zone, hold, renew, self_discovery, token";

#[derive(Clone)]
pub(crate) struct Spec {
    client: Config,
    watch: InstancerConfig,
    scheme: String,
    renew: Option<Duration>,
}

pub(crate) fn parse(raw: &RawUrl) -> Result<Spec, TargetError> {
    if raw.hosts.is_empty() {
        return Err(TargetError::new("host", "no discovery node").expected(FORM));
    }
    let appid = raw.path.trim_matches('/');
    if appid.is_empty() || appid.contains('/') {
        return Err(TargetError::new("path", "the path must be one appid").expected(FORM));
    }
    let mut q = Query::new(raw.query.clone());
    let mut client = Config {
        nodes: raw.hosts.clone(),
        ..Config::default()
    };
    client.env = q
        .take("env")
        .or_else(|| env("DEPLOY_ENV"))
        .ok_or_else(|| TargetError::new("env", "missing (or set DEPLOY_ENV)").expected(FORM))?;
    if let Some(zone) = q.take("zone").or_else(|| env("ZONE")) {
        client.zone = zone;
    }
    if let Some(region) = q.take("region").or_else(|| env("REGION")) {
        client.region = region;
    }
    if let Some(hostname) = q.take("hostname") {
        client.hostname = hostname;
    }
    if let Some(hold) = q.take_duration("hold")? {
        client.poll_hold = hold;
    }
    if let Some(on) = q.take_bool("self_discovery")? {
        client.self_discovery = on;
    }
    // Token: the query (redacted when the target is printed) or DISCOVERY_TOKEN.
    if let Some(token) = q.take("token").or_else(|| env("DISCOVERY_TOKEN")) {
        client = client.with_token(token);
    }
    let scheme = q.take("scheme").unwrap_or_else(|| "grpc".to_owned());
    let mut watch = InstancerConfig::new(appid).with_scheme(scheme.clone());
    if let Some(zone) = q.take("only_zone") {
        watch = watch.with_zone(zone);
    }
    let renew = q.take_duration("renew")?;
    q.finish(KEYS)?;
    client
        .validate()
        .map_err(|e| TargetError::new("query", e.to_string()).expected(FORM))?;
    watch
        .validate()
        .map_err(|e| TargetError::new("scheme", e.to_string()).expected(FORM))?;
    Ok(Spec {
        client,
        watch,
        scheme,
        renew,
    })
}

pub(crate) fn instancer(spec: &Spec) -> Result<Box<dyn Instancer>, Error> {
    sdkit_discovery::Instancer::from_config(spec.client.clone(), spec.watch.clone())
        .map(|i| Box::new(i) as Box<dyn Instancer>)
        .map_err(|e| Error::backend("discovery", e))
}

pub(crate) fn registrar(spec: &Spec, instance: Instance) -> Result<Box<dyn Registrar>, Error> {
    let mut client = spec.client.clone();
    // The registry keys instances by hostname: the instance's identity.
    client.hostname = instance.id().to_owned();
    if let Some(zone) = instance.zone() {
        client.zone = zone.to_owned();
    }
    if client.zone.is_empty() {
        client.zone = DEFAULT_ZONE.to_owned();
    }
    let mut config = RegistrarConfig::new(spec.watch.appid.clone()).with_addr(format!(
        "{}://{}",
        spec.scheme,
        instance.addr()
    ));
    // sdkit's default weight (1) is left out, so that readers apply the registry's own default
    // (10 in kratos and sdkit), as for instances registered by the Go clients.
    if instance.weight() != sdkit_core::instance::DEFAULT_WEIGHT {
        config = config.with_weight(instance.weight());
    }
    for (key, value) in instance.metadata() {
        config = if key == "version" {
            config.with_version(value)
        } else {
            config.with_meta(key, value)
        };
    }
    if let Some(renew) = spec.renew {
        config = config.with_renew_interval(renew);
    }
    sdkit_discovery::Registrar::from_config(client, config)
        .map(|r| Box::new(r) as Box<dyn Registrar>)
        .map_err(|e| Error::backend("discovery", e))
}
