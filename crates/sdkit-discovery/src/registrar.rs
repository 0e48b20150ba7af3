//! [`Registrar`]: registers one instance with a discovery registry and keeps it alive, on the
//! core [`KeepAlive`] driver.
//!
//! * register: `POST /discovery/register` with repeated `addrs`, metadata as a JSON object
//!   string, status UP (or WAITING), region/zone/env/hostname from the client's
//!   [`Config`];
//! * renew every 30 s (configurable); a `-404` means the registry lost the instance (restart,
//!   eviction, another node) and registers it again;
//! * every failure (transport, timeout, any other code) rotates to the next node and is retried
//!   with capped, jittered backoff, forever;
//! * deregister stops renewing first, then `POST /discovery/cancel` — on the node that accepted
//!   the registration first, then on the node in use — within a bound; `-404` counts as done.
//!   Dropping the registrar deregisters in the background.

use std::sync::{Arc, Mutex, PoisonError};

use sdkit_core::registrar::{
    BoxFuture, KeepAlive, KeepAliveConfig, Registration, RegistrationStatus, Renewal,
};
use sdkit_core::{BoxError, RegistrarError};
use sdkit_discovery_proto::args::{CancelArgs, RegisterArgs, RenewArgs};
use sdkit_discovery_proto::{Code, Endpoint, Form, Status};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::Error;
use crate::client::{Client, code_error};
use crate::config::{Config, RegistrarConfig};

/// Registers one instance and keeps it alive. See the [module docs](self).
///
/// ```
/// use std::time::Duration;
/// use sdkit_discovery::{Client, Config, RegistrarConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sdkit_discovery::Error> {
/// let client = Client::new(Config::default().with_nodes(["127.0.0.1:7171"]).with_env("dev").with_zone("sh001"))?;
/// let registrar = client.registrar(
///     RegistrarConfig::new("demo.service")
///         .with_addr("grpc://10.0.0.1:9000")
///         .with_weight(20)
///         .with_renew_interval(Duration::from_secs(30)),
/// )?;
/// // Nothing is sent until `register()` (from `sdkit_core::Registrar`) is awaited.
/// drop(registrar);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Registrar {
    keep_alive: KeepAlive<Steps>,
}

impl Registrar {
    /// A registrar using `client`'s nodes and identity.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an empty appid, no address, a zero renew interval, or a client
    /// without a zone (the registry refuses registrations without one; failing here beats
    /// retrying a refused registration forever).
    pub fn new(client: &Client, config: RegistrarConfig) -> Result<Registrar, Error> {
        config.validate()?;
        if client.config().zone.is_empty() {
            return Err(Error::Config(
                "a zone is required to register (set the client's zone)".into(),
            ));
        }
        let keep_alive_config = KeepAliveConfig::new(config.renew_interval)
            .with_backoff(config.backoff)
            .with_deregister_timeout(config.deregister_timeout);
        let steps = Steps {
            client: client.clone(),
            config,
            registered_on: Mutex::new(None),
        };
        Ok(Registrar {
            keep_alive: KeepAlive::new(Arc::new(steps), keep_alive_config),
        })
    }

    /// A registrar with a client of its own, built from `client`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an unusable configuration, [`Error::NoRuntime`] outside Tokio.
    pub fn from_config(client: Config, config: RegistrarConfig) -> Result<Registrar, Error> {
        Registrar::new(&Client::new(client)?, config)
    }

    /// What this registrar registers.
    pub fn config(&self) -> &RegistrarConfig {
        &self.keep_alive.steps().config
    }

    /// Where the registration stands.
    pub fn status(&self) -> RegistrationStatus {
        self.keep_alive.status()
    }

    /// A receiver of status changes.
    pub fn watch_status(&self) -> watch::Receiver<RegistrationStatus> {
        self.keep_alive.watch_status()
    }

    /// The node that last accepted the registration.
    pub fn registered_on(&self) -> Option<String> {
        self.keep_alive.steps().registered_on()
    }
}

impl sdkit_core::Registrar for Registrar {
    fn register(&self) -> BoxFuture<'_, Result<(), RegistrarError>> {
        self.keep_alive.register()
    }

    fn deregister(&self) -> BoxFuture<'_, Result<(), RegistrarError>> {
        self.keep_alive.deregister()
    }
}

/// The three wire steps.
#[derive(Debug)]
struct Steps {
    client: Client,
    config: RegistrarConfig,
    registered_on: Mutex<Option<String>>,
}

impl Steps {
    fn registered_on(&self) -> Option<String> {
        self.registered_on
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_registered_on(&self, node: Option<String>) {
        *self
            .registered_on
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = node;
    }

    fn identity(&self) -> (&Config, &str) {
        (self.client.config(), &self.config.appid)
    }

    fn register_form(&self) -> Form {
        let (c, appid) = self.identity();
        RegisterArgs {
            region: c.region.clone(),
            zone: c.zone.clone(),
            env: c.env.clone(),
            appid: appid.to_owned(),
            hostname: c.hostname.clone(),
            status: if self.config.waiting {
                Status::Waiting.as_u32()
            } else {
                Status::Up.as_u32()
            },
            addrs: self.config.addrs.clone(),
            version: self.config.version.clone(),
            metadata: self.config.metadata.clone(),
            ..RegisterArgs::default()
        }
        .to_form()
    }

    fn renew_form(&self) -> Form {
        let (c, appid) = self.identity();
        RenewArgs {
            zone: c.zone.clone(),
            env: c.env.clone(),
            appid: appid.to_owned(),
            hostname: c.hostname.clone(),
            ..RenewArgs::default()
        }
        .to_form()
    }

    fn cancel_form(&self) -> Form {
        let (c, appid) = self.identity();
        CancelArgs {
            zone: c.zone.clone(),
            env: c.env.clone(),
            appid: appid.to_owned(),
            hostname: c.hostname.clone(),
            ..CancelArgs::default()
        }
        .to_form()
    }

    /// One write to the current node; an unexpected code rotates the node too.
    async fn write(
        &self,
        endpoint: Endpoint,
        form: &Form,
        ok: &[Code],
    ) -> Result<(String, Code), Error> {
        let inner = self.client.inner();
        let (node, reply) = inner
            .call_current::<serde_json::Value>(endpoint, form)
            .await?;
        if ok.contains(&reply.code) {
            inner.nodes().succeeded(&node);
            return Ok((node, reply.code));
        }
        inner.nodes().failed(&node);
        Err(code_error(&node, endpoint, reply.code, &reply.message))
    }

    /// One cancel to `node`.
    async fn cancel_on(&self, node: &str, form: &Form) -> Result<Code, Error> {
        let inner = self.client.inner();
        let reply = inner
            .call::<serde_json::Value>(node, Endpoint::Cancel, form, inner.config.request_timeout)
            .await?;
        match reply.code {
            Code::OK | Code::NOTHING_FOUND => Ok(reply.code),
            code => Err(code_error(node, Endpoint::Cancel, code, &reply.message)),
        }
    }
}

impl Registration for Steps {
    fn register(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move {
            let (node, _) = self
                .write(Endpoint::Register, &self.register_form(), &[Code::OK])
                .await?;
            debug!(appid = %self.config.appid, %node, "registered");
            self.set_registered_on(Some(node));
            Ok(())
        })
    }

    fn renew(&self) -> BoxFuture<'_, Result<Renewal, BoxError>> {
        Box::pin(async move {
            let (node, code) = self
                .write(
                    Endpoint::Renew,
                    &self.renew_form(),
                    &[Code::OK, Code::NOTHING_FOUND],
                )
                .await?;
            if code == Code::NOTHING_FOUND {
                warn!(appid = %self.config.appid, %node, "discovery: the registry lost the instance (-404); registering again");
                self.set_registered_on(None);
                return Ok(Renewal::Lost);
            }
            Ok(Renewal::Renewed)
        })
    }

    fn deregister(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move {
            let form = self.cancel_form();
            let mut backoff = self.config.backoff.with_jitter(0.5).start();
            // First the node that holds the registration, then whatever node is in use.
            let mut target = self.registered_on();
            loop {
                let node = target.take().unwrap_or_else(|| self.client.current_node());
                match self.cancel_on(&node, &form).await {
                    Ok(code) => {
                        debug!(appid = %self.config.appid, %node, %code, "deregistered");
                        self.set_registered_on(None);
                        return Ok(());
                    }
                    Err(error) => {
                        self.client.inner().nodes().failed(&node);
                        let delay = backoff.next_delay();
                        warn!(%error, ?delay, "discovery: cancel failed; retrying on the next node");
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        })
    }

    fn labels(&self) -> sdkit_core::metrics::Labels {
        sdkit_core::metrics::Labels::new(self.config.appid.as_str(), "discovery")
    }

    fn describe(&self) -> String {
        format!(
            "discovery {} on {}",
            self.config.appid,
            self.client.config().hostname
        )
    }
}
