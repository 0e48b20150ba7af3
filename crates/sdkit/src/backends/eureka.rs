//! `eureka://[user:password@]host:port[,host:port…]/APP?poll=30s&status=UP&…`

use std::time::Duration;

use sdkit_core::{Instance, Instancer, Registrar};
use sdkit_eureka::{Config, InstancerConfig, RegistrarConfig};

use crate::error::{Error, TargetError};
use crate::url::{Query, RawUrl};

const FORM: &str = "eureka://[user:password@]host:port[,host:port…]/APP[?poll=30s&status=UP&delta=false&heartbeat=30s&lease=90s&base=/eureka]";
const KEYS: &str = "user, password, poll, status, delta, heartbeat, lease, base, request_timeout";

#[derive(Clone)]
pub(crate) struct Spec {
    config: Config,
    watch: InstancerConfig,
    lease: Option<(Duration, Duration)>,
}

pub(crate) fn parse(raw: &RawUrl) -> Result<Spec, TargetError> {
    if raw.hosts.is_empty() {
        return Err(TargetError::new("host", "no Eureka server").expected(FORM));
    }
    let app = raw.path.trim_matches('/');
    if app.is_empty() || app.contains('/') {
        return Err(
            TargetError::new("path", "the path must be one application name").expected(FORM),
        );
    }
    let mut q = Query::new(raw.query.clone());
    let base = q.take("base").unwrap_or_else(|| "/eureka".to_owned());
    let base = format!("/{}", base.trim_matches('/'));
    let mut config = Config::new(raw.hosts.iter().map(|h| format!("http://{h}{base}")));
    let user = q.take("user").or_else(|| raw.user.clone());
    let password = q.take("password").or_else(|| raw.password.clone());
    match (user, password) {
        (Some(user), Some(password)) => config = config.with_basic_auth(user, password),
        (None, None) => {}
        _ => {
            return Err(
                TargetError::new("user", "a user and a password go together").expected(FORM),
            );
        }
    }
    if let Some(t) = q.take_duration("request_timeout")? {
        config = config.with_request_timeout(t);
    }
    let mut watch = InstancerConfig::new(app);
    if let Some(poll) = q.take_duration("poll")? {
        watch = watch.with_poll_interval(poll);
    }
    let statuses = q.take_all("status");
    if !statuses.is_empty() {
        watch = watch.with_statuses(statuses);
    }
    if let Some(delta) = q.take_bool("delta")? {
        watch = watch.with_delta(delta, 10);
    }
    let heartbeat = q.take_duration("heartbeat")?;
    let lease = q.take_duration("lease")?;
    q.finish(KEYS)?;
    config
        .validate()
        .map_err(|e| TargetError::new("host", e.to_string()).expected(FORM))?;
    let lease = match (heartbeat, lease) {
        (None, None) => None,
        (h, l) => Some((
            h.unwrap_or(Duration::from_secs(30)),
            l.unwrap_or(Duration::from_secs(90)),
        )),
    };
    Ok(Spec {
        config,
        watch,
        lease,
    })
}

pub(crate) fn instancer(spec: &Spec) -> Result<Box<dyn Instancer>, Error> {
    sdkit_eureka::Instancer::from_config(spec.config.clone(), spec.watch.clone())
        .map(|i| Box::new(i) as Box<dyn Instancer>)
        .map_err(|e| Error::backend("eureka", e))
}

pub(crate) fn registrar(spec: &Spec, instance: Instance) -> Result<Box<dyn Registrar>, Error> {
    let mut config = RegistrarConfig::new(spec.watch.app(), instance);
    if let Some((heartbeat, lease)) = spec.lease {
        config = config.with_lease(heartbeat, lease);
    }
    sdkit_eureka::Registrar::from_config(spec.config.clone(), config)
        .map(|r| Box::new(r) as Box<dyn Registrar>)
        .map_err(|e| Error::backend("eureka", e))
}

#[cfg(test)]
mod tests {
    use crate::Target;

    #[test]
    fn parses_servers_options_and_hides_the_password() {
        let target: Target = "eureka://svc:hunter2@10.0.0.1:8761,10.0.0.2:8761/web?poll=5s&status=UP&status=STARTING&delta=true"
            .parse()
            .unwrap();
        assert_eq!(target.scheme(), "eureka");
        assert!(target.can_register());
        let shown = format!("{target} {target:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        for bad in [
            "eureka:///web",
            "eureka://h:8761",
            "eureka://h:8761/a/b",
            "eureka://h:8761/web?bogus=1",
            "eureka://h:8761/web?poll=soon",
            "eureka://svc@h:8761/web",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }
}
