//! `zk://[user:password@]host:port[,host:port…]/service/path?ttl=10s&…`

use sdkit_core::{Instance, Instancer, Registrar};
use sdkit_zookeeper::{Config, InstancerConfig, RegistrarConfig};

use crate::error::{Error, TargetError};
use crate::url::{Query, RawUrl};

const FORM: &str = "zk://[user:password@]host:port[,host:port…]/service/path[?ttl=10s]";
const KEYS: &str = "user, password, ttl, connect_timeout, request_timeout";

#[derive(Clone)]
pub(crate) struct Spec {
    config: Config,
    path: String,
}

pub(crate) fn parse(raw: &RawUrl) -> Result<Spec, TargetError> {
    if raw.hosts.is_empty() {
        return Err(TargetError::new("host", "no ZooKeeper server").expected(FORM));
    }
    let path = raw.path.trim_matches('/');
    if path.is_empty() {
        return Err(TargetError::new("path", "missing service path").expected(FORM));
    }
    let mut q = Query::new(raw.query.clone());
    let mut config = Config::new(raw.hosts.clone());
    let user = q.take("user").or_else(|| raw.user.clone());
    let password = q.take("password").or_else(|| raw.password.clone());
    match (user, password) {
        (Some(user), Some(password)) => config = config.with_digest(user, password),
        (None, None) => {}
        (Some(_), None) => {
            return Err(TargetError::new("password", "a user needs a password").expected(FORM));
        }
        (None, Some(_)) => {
            return Err(TargetError::new("user", "a password needs a user").expected(FORM));
        }
    }
    // The session timeout is how long an ephemeral node outlives its registrar: the TTL.
    if let Some(ttl) = q.take_duration("ttl")? {
        config = config.with_session_timeout(ttl);
    }
    if let Some(t) = q.take_duration("connect_timeout")? {
        config = config.with_connect_timeout(t);
    }
    if let Some(t) = q.take_duration("request_timeout")? {
        config = config.with_request_timeout(t);
    }
    q.finish(KEYS)?;
    config
        .validate()
        .map_err(|e| TargetError::new("host", e.to_string()).expected(FORM))?;
    Ok(Spec {
        config,
        path: format!("/{path}"),
    })
}

pub(crate) fn instancer(spec: &Spec) -> Result<Box<dyn Instancer>, Error> {
    sdkit_zookeeper::Instancer::from_config(spec.config.clone(), InstancerConfig::new(&spec.path))
        .map(|i| Box::new(i) as Box<dyn Instancer>)
        .map_err(|e| Error::backend("zk", e))
}

pub(crate) fn registrar(spec: &Spec, instance: Instance) -> Result<Box<dyn Registrar>, Error> {
    sdkit_zookeeper::Registrar::from_config(
        spec.config.clone(),
        RegistrarConfig::new(&spec.path, instance),
    )
    .map(|r| Box::new(r) as Box<dyn Registrar>)
    .map_err(|e| Error::backend("zk", e))
}

#[cfg(test)]
mod tests {
    use crate::Target;

    #[test]
    fn parses_ensembles_ttl_and_digest_and_hides_the_password() {
        let target: Target = "zk://svc:hunter2@127.0.0.1:2181,127.0.0.1:2182/services/web?ttl=6s"
            .parse()
            .unwrap();
        assert_eq!(target.scheme(), "zk");
        assert!(target.can_register());
        let shown = format!("{target} {target:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        for bad in [
            "zk:///services/web",
            "zk://127.0.0.1:2181",
            "zk://127.0.0.1:2181/",
            "zk://127.0.0.1/services/web",
            "zk://127.0.0.1:2181/services/web?bogus=1",
            "zk://svc@127.0.0.1:2181/services/web",
            "zk://127.0.0.1:2181/services/web?ttl=forever",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }
}
