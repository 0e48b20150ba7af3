//! Names: what each service name a request may use resolves to.
//!
//! A [`Source`] is anything that can build an instancer and describe its registry without
//! secrets — the facade's `sdkit::Target` is one (`discovery://…`, `etcd://…`, `consul://…`).
//! Each registered name owns its instancer, an [`Endpointer`] of [`Endpoint`]s and a balancer,
//! all dropped (and stopped) with the client.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sdkit_core::lb::{Balancer, RoundRobin};
use sdkit_core::retry::{Decision, Retry, RetryConfig};
use sdkit_core::{BalancedService, BoxError, EndpointSet, Endpointer, Instancer};

use crate::attempt::policy;
use crate::config::Config;
use crate::endpoint::{Endpoint, EndpointFactory};
use crate::error::Error;

/// Where a service's instances come from: an instancer, and a description of its registry
/// without secrets (shown in errors).
pub trait Source {
    /// The registry, redacted (no token or password): shown in errors and logs.
    fn registry(&self) -> String;

    /// Builds the instancer (must not touch the network; it watches in the background).
    ///
    /// # Errors
    ///
    /// When the backend refuses its configuration.
    fn instancer(&self) -> Result<Box<dyn Instancer>, BoxError>;
}

/// Builds the balancer of a service from its endpoint set (round-robin by default).
pub type MakeBalancer =
    Arc<dyn Fn(EndpointSet<Endpoint>) -> Arc<dyn Balancer<Endpoint>> + Send + Sync>;

pub(crate) fn round_robin() -> MakeBalancer {
    Arc::new(|set| Arc::new(RoundRobin::new(set)))
}

/// The retry every call of a service goes through.
pub(crate) type CallRetry =
    Retry<BalancedService<Arc<dyn Balancer<Endpoint>>, Endpoint>, fn(u32, &BoxError) -> Decision>;

/// One registered name.
pub(crate) struct Service {
    pub(crate) name: Arc<str>,
    pub(crate) registry: Arc<str>,
    pub(crate) endpointer: Endpointer<Endpoint>,
    pub(crate) balancer: Arc<dyn Balancer<Endpoint>>,
    /// The retry with the configuration's whole budget.
    pub(crate) retry: CallRetry,
    retry_config: RetryConfig,
    instancer: Box<dyn Instancer>,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Service {
    pub(crate) fn new(
        name: &str,
        registry: String,
        instancer: Box<dyn Instancer>,
        factory: EndpointFactory,
        make_balancer: &MakeBalancer,
        config: &Config,
    ) -> Service {
        let endpointer = Endpointer::new(&instancer, factory);
        let balancer = make_balancer(endpointer.endpoint_set());
        let retry_config = RetryConfig::new(config.max_attempts(), config.timeout())
            .with_backoff(config.backoff());
        Service {
            name: name.into(),
            registry: registry.into(),
            endpointer,
            retry: retry(&balancer, retry_config),
            balancer,
            retry_config,
            instancer,
        }
    }

    /// The retry for a call left with `budget` (after waiting for the first instance).
    pub(crate) fn retry_within(&self, budget: Duration) -> CallRetry {
        let mut config = self.retry_config;
        config.timeout = budget;
        retry(&self.balancer, config)
    }

    /// Waits at most `timeout` for at least one endpoint; `Ok(true)` when it had to wait.
    pub(crate) async fn ready(&self, timeout: Duration) -> Result<bool, Error> {
        let set = self.endpointer.endpoint_set();
        if !set.load().is_empty() {
            return Ok(false);
        }
        if tokio::time::timeout(timeout, set.non_empty()).await.is_ok() {
            return Ok(true);
        }
        Err(self.no_instances(timeout))
    }

    pub(crate) fn no_instances(&self, waited: Duration) -> Error {
        let endpoints = self.endpointer.endpoints();
        Error::NoInstances {
            service: self.name.to_string(),
            registry: self.registry.to_string(),
            waited,
            source_error: endpoints.error().map(ToString::to_string),
        }
    }
}

fn retry(balancer: &Arc<dyn Balancer<Endpoint>>, config: RetryConfig) -> CallRetry {
    let policy: fn(u32, &BoxError) -> Decision = policy;
    Retry::balanced(Arc::clone(balancer), config).with_policy(policy)
}

impl Drop for Service {
    fn drop(&mut self) {
        self.endpointer.stop();
        self.instancer.stop();
    }
}
