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
use sdkit_core::{BoxError, EndpointSet, Endpointer, Instancer};

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

/// One registered name.
pub(crate) struct Service {
    pub(crate) name: Arc<str>,
    pub(crate) registry: Arc<str>,
    pub(crate) endpointer: Endpointer<Endpoint>,
    pub(crate) balancer: Arc<dyn Balancer<Endpoint>>,
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
    ) -> Service {
        let endpointer = Endpointer::new(&instancer, factory);
        let balancer = make_balancer(endpointer.endpoint_set());
        Service {
            name: name.into(),
            registry: registry.into(),
            endpointer,
            balancer,
            instancer,
        }
    }

    /// Waits at most `timeout` for at least one endpoint.
    pub(crate) async fn ready(&self, timeout: Duration) -> Result<(), Error> {
        let set = self.endpointer.endpoint_set();
        if !set.load().is_empty() {
            return Ok(());
        }
        if tokio::time::timeout(timeout, set.non_empty()).await.is_ok() {
            return Ok(());
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

impl Drop for Service {
    fn drop(&mut self) {
        self.endpointer.stop();
        self.instancer.stop();
    }
}
