//! [`Instancer`]: one appid of a [`Client`]'s long poll, mapped onto sdkit [`Instance`]s and
//! published into the core [`InstanceCache`].
//!
//! Mapping of each UP instance (instances of other zones are skipped when a zone filter is
//! set):
//!
//! * address: the first address of the requested scheme, without `scheme://` (and without any
//!   path); an instance without one is skipped with a debug log;
//! * identity: `<hostname>@<address>`;
//! * weight: `metadata.weight`, or [`DEFAULT_WEIGHT`] (10, as
//!   kratos) when absent, not a number or not positive;
//! * zone: the instance's zone; metadata: kept as is, plus `discovery.version` (when the
//!   instance has a version) and `discovery.hostname`.
//!
//! A registry failure publishes an error event (the last good set stays); an unknown appid
//! publishes an empty set.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use sdkit_core::{
    Instance, InstanceCache, Instancer as _, SourceError, Subscription, TaskInstancer,
};
use sdkit_discovery_proto::Instance as WireInstance;
use tracing::debug;

use crate::Error;
use crate::client::{AppState, AppWatch, Client};
use crate::config::{Config, DEFAULT_WEIGHT, InstancerConfig};

/// Metadata key holding the instance's version.
pub const META_VERSION: &str = "discovery.version";
/// Metadata key holding the instance's hostname.
pub const META_HOSTNAME: &str = "discovery.hostname";

/// Watches one appid of a discovery registry. See the [module docs](self).
///
/// ```
/// use sdkit_discovery::{Client, Config, InstancerConfig};
/// use sdkit_core::Instancer as _;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sdkit_discovery::Error> {
/// let client = Client::new(Config::default().with_nodes(["127.0.0.1:7171"]).with_env("dev"))?;
/// let instancer = client.instancer(InstancerConfig::new("demo.service").with_zone("sh001").with_scheme("grpc"))?;
/// let _subscription = instancer.subscribe();
/// instancer.stop();
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Instancer {
    task: TaskInstancer,
    config: InstancerConfig,
    /// Keeps the appid in the client's long poll; taken on stop.
    watch: Mutex<Option<AppWatch>>,
    /// The client, held so that the shared loop lives as long as the instancer (dropping every
    /// other handle of the client does not stop it).
    client: Client,
    /// Set when the instancer built its own client: stop shuts it down.
    owns_client: bool,
}

impl Instancer {
    /// An instancer sharing `client`'s long poll.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an empty appid or a malformed scheme.
    pub fn new(client: &Client, config: InstancerConfig) -> Result<Instancer, Error> {
        config.validate()?;
        let watch = client.watch(config.appid.clone());
        let mut rx = watch.receiver();
        let shutdown = client.inner().shutdown.clone();
        let mapping = config.clone();
        let task = TaskInstancer::spawn_service(
            "discovery",
            &config.appid,
            move |cache, token| async move {
                publish(&cache, &mapping, rx.borrow_and_update().clone());
                loop {
                    tokio::select! {
                        biased;
                        () = token.cancelled() => break,
                        () = shutdown.cancelled() => {
                            // The client was shut down: say so and end the subscriptions, rather
                            // than leaving subscribers waiting on a set that never changes again.
                            cache.error(SourceError::new(Error::Shutdown));
                            cache.close();
                            break;
                        }
                        changed = rx.changed() => {
                            if changed.is_err() {
                                break;
                            }
                            let state = rx.borrow_and_update().clone();
                            publish(&cache, &mapping, state);
                        }
                    }
                }
            },
        );
        Ok(Instancer {
            task,
            config,
            watch: Mutex::new(Some(watch)),
            client: client.clone(),
            owns_client: false,
        })
    }

    /// An instancer with a client of its own, built from `client` (stopping the instancer
    /// shuts that client down): what a one-service deployment or a URL target uses.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an unusable configuration, [`Error::NoRuntime`] outside Tokio.
    pub fn from_config(client: Config, config: InstancerConfig) -> Result<Instancer, Error> {
        let client = Client::new(client)?;
        let mut instancer = Instancer::new(&client, config)?;
        instancer.owns_client = true;
        Ok(instancer)
    }

    /// What this instancer watches.
    pub fn config(&self) -> &InstancerConfig {
        &self.config
    }

    /// The cache it publishes into.
    pub fn cache(&self) -> &InstanceCache {
        self.task.cache()
    }
}

impl sdkit_core::Instancer for Instancer {
    fn subscribe(&self) -> Subscription {
        self.task.subscribe()
    }

    fn stop(&self) {
        self.task.stop();
        // Out of the long poll at once (the loop re-issues its poll without this appid).
        drop(
            self.watch
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        if self.owns_client {
            self.client.shutdown();
        }
    }
}

impl Drop for Instancer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn publish(cache: &InstanceCache, config: &InstancerConfig, state: AppState) {
    match state {
        AppState::Pending => {}
        AppState::NotFound => {
            debug!(appid = %config.appid, "discovery: appid not found; no instances");
            cache.update(Vec::new());
        }
        AppState::Instances(instances) => {
            cache.update(map_instances(config, &instances));
        }
        AppState::Failed(error) => {
            cache.error(error);
        }
    }
}

/// Maps the UP wire instances onto sdkit instances per `config` (zone filter, scheme).
pub fn map_instances(config: &InstancerConfig, instances: &[WireInstance]) -> Vec<Instance> {
    let prefix = format!("{}://", config.scheme);
    let mut out = Vec::with_capacity(instances.len());
    for wire in instances {
        if let Some(zone) = &config.zone
            && &wire.zone != zone
        {
            continue;
        }
        let Some(addr) = wire
            .addrs
            .iter()
            .filter_map(|a| a.strip_prefix(&prefix))
            .map(|rest| rest.split(['/', '?']).next().unwrap_or_default())
            .find(|a| !a.is_empty())
        else {
            debug!(
                appid = %wire.appid,
                hostname = %wire.hostname,
                scheme = %config.scheme,
                "discovery: instance has no address of the requested scheme; skipped"
            );
            continue;
        };
        let weight = wire
            .metadata
            .get("weight")
            .and_then(|w| w.trim().parse::<i64>().ok())
            .filter(|w| *w > 0)
            .map_or(DEFAULT_WEIGHT, |w| u32::try_from(w).unwrap_or(u32::MAX));
        let mut metadata: BTreeMap<String, String> = wire.metadata.clone();
        if !wire.version.is_empty() {
            metadata.insert(META_VERSION.into(), wire.version.clone());
        }
        metadata.insert(META_HOSTNAME.into(), wire.hostname.clone());
        let mut instance = Instance::new(format!("{}@{addr}", wire.hostname), addr)
            .with_weight(weight)
            .with_metadata(metadata);
        if !wire.zone.is_empty() {
            instance = instance.with_zone(wire.zone.clone());
        }
        out.push(instance);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(json: &str) -> WireInstance {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn maps_scheme_weight_zone_and_metadata() {
        let a = wire(
            r#"{"zone":"sh001","hostname":"h1","addrs":["http://10.0.0.1:8000","grpc://10.0.0.1:9000/x"],"version":"v2","metadata":{"weight":"25","color":"red"},"status":1}"#,
        );
        let b = wire(
            r#"{"zone":"sh002","hostname":"h2","addrs":["grpc://10.0.0.2:9000"],"metadata":{"weight":"-3"},"status":1}"#,
        );
        let c = wire(
            r#"{"zone":"sh001","hostname":"h3","addrs":["http://10.0.0.3:8000"],"metadata":null,"status":1}"#,
        );
        let all = map_instances(
            &InstancerConfig::new("app"),
            &[a.clone(), b.clone(), c.clone()],
        );
        assert_eq!(all.len(), 2, "h3 has no grpc address");
        assert_eq!(all[0].id(), "h1@10.0.0.1:9000");
        assert_eq!(all[0].addr(), "10.0.0.1:9000");
        assert_eq!(all[0].weight(), 25);
        assert_eq!(all[0].zone(), Some("sh001"));
        assert_eq!(all[0].meta("color"), Some("red"));
        assert_eq!(all[0].meta(META_VERSION), Some("v2"));
        assert_eq!(all[1].weight(), DEFAULT_WEIGHT);
        let zoned = map_instances(
            &InstancerConfig::new("app")
                .with_zone("sh001")
                .with_scheme("http"),
            &[a, b, c],
        );
        let ids: Vec<_> = zoned.iter().map(|i| i.id()).collect();
        assert_eq!(ids, ["h1@10.0.0.1:8000", "h3@10.0.0.3:8000"]);
        assert_eq!(zoned[1].weight(), DEFAULT_WEIGHT);
    }

    #[test]
    fn comma_joined_addrs_are_split() {
        let a = wire(r#"{"hostname":"h","addrs":["http://h:1,grpc://h:2"],"status":1}"#);
        let v = map_instances(&InstancerConfig::new("app"), &[a]);
        assert_eq!(v[0].addr(), "h:2");
    }
}
