//! What every clone of a [`Channel`](crate::Channel) and every call through it share: the
//! endpointer, the picker, the service config, the retry throttle. The channel builds it and
//! calls read it; it imports neither.

use std::sync::Arc;
use std::time::Duration;

use sdkit_core::{Endpointer, Instancer};
use tokio::sync::watch;

use crate::endpoint::GrpcEndpoint;
use crate::picker::Picker;
use crate::service_config::{LbPolicy, ServiceConfig};
use crate::throttle::Throttle;

/// The channel's shared parts.
pub(crate) struct Inner {
    pub(crate) endpointer: Endpointer<GrpcEndpoint>,
    pub(crate) picker: Picker,
    pub(crate) policy: LbPolicy,
    pub(crate) service_config: ServiceConfig,
    /// The header a call's hash key is read from (service config's, else the config's).
    pub(crate) request_hash_header: Option<http::HeaderName>,
    pub(crate) throttle: Option<Throttle>,
    pub(crate) changed: Arc<watch::Sender<u64>>,
    pub(crate) ready_timeout: Duration,
    pub(crate) retry_buffer: usize,
    /// Stopped when the channel goes (after the endpointer, which is dropped first).
    pub(crate) owned_instancer: Option<Box<dyn Instancer>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.endpointer.stop();
        if let Some(instancer) = &self.owned_instancer {
            instancer.stop();
        }
    }
}
