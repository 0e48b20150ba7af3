//! The Consul [`Registrar`]: registers one service instance with the local agent and keeps its
//! check alive, on the core [`KeepAlive`] driver.
//!
//! * register: `PUT /v1/agent/service/register?replace-existing-checks=true` with a TTL check
//!   (initially passing) and `DeregisterCriticalServiceAfter` (default 1 min), so an instance
//!   whose process died without deregistering leaves the catalog by itself;
//! * renew: `PUT /v1/agent/check/pass/service:<id>` every TTL/2; when the agent answers that
//!   it does not know the check (it restarted, or reaped the service), register again;
//! * an HTTP or TCP check may replace the TTL check: the agent probes the instance, and the
//!   registrar verifies every `verify_interval` (`GET /v1/agent/service/:id`) that the agent
//!   still knows the service, registering again when it does not;
//! * failures are retried forever with capped, jittered backoff;
//! * deregister: `PUT /v1/agent/service/deregister/:id` within a bounded time (an unknown
//!   service counts as done); dropping the registrar deregisters in the background.
//!
//! ```no_run
//! use std::time::Duration;
//! use sdkit_consul::{Config, Registrar, RegistrarConfig};
//! use sdkit_core::Registrar as _;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let registrar = Registrar::from_config(
//!     Config::new("127.0.0.1:8500"),
//!     RegistrarConfig::new("web", 8080).with_address("10.0.0.1").with_ttl(Duration::from_secs(10)),
//! )?;
//! registrar.register().await?;
//! // … serve …
//! registrar.deregister().await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;

use sdkit_core::registrar::{
    BoxFuture, KeepAlive, KeepAliveConfig, Registration, RegistrationStatus, Renewal,
};
use sdkit_core::{Backoff, BoxError, RegistrarError};

use crate::client::{CheckDefinition, CheckPass, Client, ServiceRegistration, ServiceWeights};
use crate::config::{CheckConfig, Config, RegistrarConfig};
use crate::error::Error;
use sdkit_core::duration::format as duration_text;

/// The wire steps of one Consul registration (what [`KeepAlive`] drives).
pub(crate) struct Steps {
    client: Client,
    body: ServiceRegistration,
    check_id: String,
    ttl: bool,
    /// Delays between deregistration attempts (the registrar's bound cuts them off).
    backoff: Backoff,
}

impl fmt::Debug for Steps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Steps")
            .field("service_id", &self.body.id)
            .field("check_id", &self.check_id)
            .finish_non_exhaustive()
    }
}

impl Steps {
    /// The steps for `config`, talking through `client`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an empty name, a zero passing weight or a zero TTL/interval.
    pub(crate) fn new(client: Client, config: &RegistrarConfig) -> Result<Self, Error> {
        if config.name.trim().is_empty() {
            return Err(Error::Config("registration needs a service name".into()));
        }
        if config.weights.passing == 0 {
            return Err(Error::Config("Weights.Passing must be at least 1".into()));
        }
        let service_id = config.service_id();
        let check_id = config.check_id();
        let mut check = CheckDefinition {
            check_id: check_id.clone(),
            name: format!("Service '{}' check", config.name),
            deregister_critical_service_after: duration_text(config.deregister_critical_after),
            ..CheckDefinition::default()
        };
        let ttl = match &config.check {
            CheckConfig::Ttl { ttl } => {
                if ttl.is_zero() {
                    return Err(Error::Config("the TTL must be above 0".into()));
                }
                check.ttl = Some(duration_text(*ttl));
                // Passing from the start: the registrar heartbeats before the TTL lapses.
                check.status = Some("passing".into());
                true
            }
            CheckConfig::Http {
                url,
                interval,
                timeout,
            } => {
                if interval.is_zero() {
                    return Err(Error::Config("the check interval must be above 0".into()));
                }
                check.http = Some(url.clone());
                check.interval = Some(duration_text(*interval));
                check.timeout = Some(duration_text(*timeout));
                false
            }
            CheckConfig::Tcp {
                address,
                interval,
                timeout,
            } => {
                if interval.is_zero() {
                    return Err(Error::Config("the check interval must be above 0".into()));
                }
                check.tcp = Some(address.clone());
                check.interval = Some(duration_text(*interval));
                check.timeout = Some(duration_text(*timeout));
                false
            }
        };
        Ok(Steps {
            client,
            body: ServiceRegistration {
                name: config.name.clone(),
                id: service_id,
                tags: config.tags.clone(),
                address: config.address.clone().unwrap_or_default(),
                port: config.port,
                meta: config.meta.clone(),
                weights: ServiceWeights {
                    passing: config.weights.passing,
                    warning: config.weights.warning,
                },
                check,
            },
            check_id,
            ttl,
            backoff: config.backoff,
        })
    }

    /// The registered service ID.
    pub(crate) fn service_id(&self) -> &str {
        &self.body.id
    }
}

impl Registration for Steps {
    fn register(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move {
            self.client.register(&self.body).await?;
            tracing::debug!(service_id = %self.body.id, "consul: registered");
            Ok(())
        })
    }

    fn renew(&self) -> BoxFuture<'_, Result<Renewal, BoxError>> {
        Box::pin(async move {
            let alive = if self.ttl {
                self.client.pass_check(&self.check_id).await? == CheckPass::Passed
            } else {
                self.client.service_exists(&self.body.id).await?
            };
            if !alive {
                tracing::warn!(service_id = %self.body.id, "consul: the agent lost the registration");
            }
            Ok(if alive {
                Renewal::Renewed
            } else {
                Renewal::Lost
            })
        })
    }

    /// Retried with backoff on transport failures, timeouts, 429 and 5xx answers, until it
    /// succeeds or the registrar's `deregister_timeout` (which bounds this whole future) ends it:
    /// one failed attempt must not leave the service registered until
    /// `DeregisterCriticalServiceAfter`. Other 4xx answers are final.
    fn deregister(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move {
            let mut backoff = self.backoff.start();
            loop {
                match self.client.deregister(&self.body.id).await {
                    Ok(known) => {
                        tracing::debug!(service_id = %self.body.id, known, "consul: deregistered");
                        return Ok(());
                    }
                    Err(error)
                        if error
                            .status()
                            .is_some_and(|status| status < 500 && status != 429) =>
                    {
                        return Err(error.into());
                    }
                    Err(error) => {
                        let delay = backoff.next_delay();
                        tracing::warn!(service_id = %self.body.id, %error, retry_in = ?delay, "consul: deregistration failed; retrying");
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        })
    }

    fn describe(&self) -> String {
        format!("consul service {}", self.service_id())
    }

    fn labels(&self) -> sdkit_core::metrics::Labels {
        sdkit_core::metrics::Labels::new(self.body.name.as_str(), "consul")
    }
}

/// Registers one instance with the local Consul agent and keeps it alive until deregistered or
/// dropped.
pub struct Registrar {
    inner: KeepAlive<Steps>,
}

impl fmt::Debug for Registrar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("consul::Registrar")
            .field("registration", self.inner.steps())
            .field("status", &self.inner.status())
            .finish()
    }
}

impl Registrar {
    /// A registrar for `config` through `client`; nothing happens until
    /// [`register`](sdkit_core::Registrar::register).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an empty name, a zero passing weight or a zero TTL/interval.
    pub fn new(client: &Client, config: RegistrarConfig) -> Result<Self, Error> {
        let steps = Arc::new(Steps::new(client.clone(), &config)?);
        let keep_alive = KeepAliveConfig::new(config.renew_interval())
            .with_backoff(config.backoff)
            .with_deregister_timeout(config.deregister_timeout);
        Ok(Registrar {
            inner: KeepAlive::new(steps, keep_alive),
        })
    }

    /// Builds a [`Client`] from `config` and a registrar for `registration`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad client configuration or registration.
    pub fn from_config(config: Config, registration: RegistrarConfig) -> Result<Self, Error> {
        Registrar::new(&Client::new(config)?, registration)
    }

    /// The registered service ID.
    pub fn service_id(&self) -> &str {
        self.inner.steps().service_id()
    }

    /// Where the registration stands.
    pub fn status(&self) -> RegistrationStatus {
        self.inner.status()
    }

    /// A receiver of status changes.
    pub fn watch_status(&self) -> tokio::sync::watch::Receiver<RegistrationStatus> {
        self.inner.watch_status()
    }
}

impl sdkit_core::Registrar for Registrar {
    fn register(&self) -> BoxFuture<'_, Result<(), RegistrarError>> {
        self.inner.register()
    }

    fn deregister(&self) -> BoxFuture<'_, Result<(), RegistrarError>> {
        self.inner.deregister()
    }
}
