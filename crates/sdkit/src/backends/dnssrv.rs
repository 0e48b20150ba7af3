//! `dnssrv://_service._proto.name?nameserver=127.0.0.1:5353&…`

use std::net::{IpAddr, SocketAddr};

use sdkit_core::Instancer;
use sdkit_dnssrv::{AddressFamily, Config, InstancerConfig, PriorityMode, TargetMode, Transport};

use crate::error::{Error, TargetError};
use crate::url::{Query, RawUrl};

const FORM: &str = "dnssrv://_service._proto.domain[?nameserver=ip:port&priority=best|all]";
const KEYS: &str = "nameserver, transport, min_refresh, max_refresh, timeout, attempts, \
                    retry_initial, retry_max, priority, targets, family, max_targets";

#[derive(Clone)]
pub(crate) struct Spec {
    config: Config,
    watch: InstancerConfig,
}

fn one_of<T: Copy>(
    q: &mut Query,
    key: &'static str,
    choices: &[(&str, T)],
) -> Result<Option<T>, TargetError> {
    let Some(value) = q.take(key) else {
        return Ok(None);
    };
    choices
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, v)| Some(*v))
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            TargetError::new(key, format!("`{value}` is not one of {}", names.join(", ")))
        })
}

pub(crate) fn parse(raw: &RawUrl) -> Result<Spec, TargetError> {
    let [name] = raw.hosts.as_slice() else {
        return Err(TargetError::new("host", "exactly one SRV name").expected(FORM));
    };
    if !raw.path.is_empty() {
        return Err(TargetError::new("path", "DNS SRV targets have no path").expected(FORM));
    }
    let mut q = Query::new(raw.query.clone());
    let mut config = Config::default();
    let mut watch = InstancerConfig::new(name.clone());
    for ns in q.take_all("nameserver") {
        let addr = ns
            .parse::<SocketAddr>()
            .or_else(|_| {
                ns.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .map(|ip| SocketAddr::new(ip, 53))
            })
            .map_err(|_| {
                TargetError::new("nameserver", format!("`{ns}` is not ip or ip:port"))
                    .expected(FORM)
            })?;
        config = config.with_nameserver(addr);
    }
    if let Some(t) = one_of(
        &mut q,
        "transport",
        &[
            ("udp_and_tcp", Transport::UdpAndTcp),
            ("udp", Transport::Udp),
            ("tcp", Transport::Tcp),
        ],
    )? {
        config = config.with_transport(t);
    }
    let min = q
        .take_duration("min_refresh")?
        .unwrap_or(watch.min_refresh());
    let max = q
        .take_duration("max_refresh")?
        .unwrap_or(watch.max_refresh());
    watch = watch.with_refresh_bounds(min, max);
    if let Some(t) = q.take_duration("timeout")? {
        config = config.with_timeout(t);
    }
    if let Some(n) = q.take_parsed::<usize>("attempts", "a number")? {
        config = config.with_attempts(n);
    }
    let backoff = watch.backoff();
    let initial = q
        .take_duration("retry_initial")?
        .unwrap_or(backoff.initial());
    let max_backoff = q.take_duration("retry_max")?.unwrap_or(backoff.max());
    watch = watch.with_backoff(sdkit_core::Backoff::new(initial, max_backoff));
    if let Some(p) = one_of(
        &mut q,
        "priority",
        &[("best", PriorityMode::Best), ("all", PriorityMode::All)],
    )? {
        watch = watch.with_priority(p);
    }
    if let Some(t) = one_of(
        &mut q,
        "targets",
        &[
            ("resolve_ips", TargetMode::ResolveIps),
            ("keep_hostnames", TargetMode::KeepHostnames),
        ],
    )? {
        watch = watch.with_targets(t);
    }
    if let Some(f) = one_of(
        &mut q,
        "family",
        &[
            ("any", AddressFamily::Any),
            ("ipv4", AddressFamily::Ipv4),
            ("ipv6", AddressFamily::Ipv6),
        ],
    )? {
        watch = watch.with_address_family(f);
    }
    if let Some(n) = q.take_parsed::<usize>("max_targets", "a number")? {
        watch = watch.with_max_targets(n);
    }
    q.finish(KEYS)?;
    config
        .validate()
        .and_then(|()| watch.validate())
        .map_err(|e| TargetError::new("query", e.to_string()).expected(FORM))?;
    Ok(Spec { config, watch })
}

pub(crate) fn instancer(spec: &Spec) -> Result<Box<dyn Instancer>, Error> {
    sdkit_dnssrv::Instancer::from_config(spec.config.clone(), spec.watch.clone())
        .map(|i| Box::new(i) as Box<dyn Instancer>)
        .map_err(|e| Error::backend("dnssrv", e))
}
