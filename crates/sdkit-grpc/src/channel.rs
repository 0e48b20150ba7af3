//! [`Channel`]: a gRPC channel balanced by sdkit over any instancer.
//!
//! A `Channel` is a `tower::Service<http::Request<tonic::body::Body>>`, so every
//! tonic-generated client takes it as is (`GreeterClient::new(channel)`). Behind it:
//!
//! ```text
//! instancer ──► Endpointer ──► one lazily connected tonic channel per instance
//!                                  │ (connect failures and closed connections mark it not ready;
//!                                  │  it reconnects with backoff in the background)
//! call ──► method config (timeout, retry) ──► picker (pick_first | round_robin | random,
//!          skipping not-ready endpoints) ──► attempt ──► retry / transparent retry
//! ```
//!
//! Dropping the last clone of a channel stops its endpointer, closes every connection and ends
//! every task it started (the instancer too, when the channel owns it).

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use sdkit_core::registrar::BoxFuture;
use sdkit_core::{BoxError, Endpointer, Endpoints, Instancer, NoInstancesYet};
use tokio::sync::watch;
use tonic::body::Body;
use tower::Service;

use crate::call;
use crate::config::Config;
use crate::endpoint::{EndpointFactory, GrpcEndpoint};
use crate::error::Error;
use crate::inner::Inner;
use crate::picker::Picker;
use crate::service_config::{LbPolicy, ServiceConfig};
use crate::throttle::Throttle;

/// A balanced gRPC channel. Cheap to clone. See the [module docs](self).
///
/// ```no_run
/// use sdkit_core::{FixedInstancer, Instance};
/// use sdkit_grpc::{Channel, Config};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let instancer = FixedInstancer::new(vec![
///     Instance::from_addr("127.0.0.1:50051"),
///     Instance::from_addr("127.0.0.1:50052"),
/// ]);
/// let channel = Channel::new(&instancer, Config::default().with_lb("round_robin"))?;
/// // let mut client = GreeterClient::new(channel);
/// # let _ = channel; Ok(()) }
/// ```
#[derive(Clone)]
pub struct Channel {
    inner: Arc<Inner>,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("policy", &self.inner.policy.name())
            .field("endpoints", &self.inner.endpointer.endpoints().len())
            .finish()
    }
}

impl Channel {
    /// A channel over `instancer` (which the caller keeps and stops).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an unknown policy, [`Error::ServiceConfig`] for a malformed service
    /// config.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn new<I: Instancer + ?Sized>(instancer: &I, config: Config) -> Result<Channel, Error> {
        Self::build(instancer.subscribe(), None, config)
    }

    /// A channel that owns `instancer` and stops it when the channel's last clone is dropped.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn owning(instancer: Box<dyn Instancer>, config: Config) -> Result<Channel, Error> {
        let subscription = instancer.subscribe();
        Self::build(subscription, Some(instancer), config)
    }

    fn build(
        subscription: sdkit_core::Subscription,
        owned_instancer: Option<Box<dyn Instancer>>,
        config: Config,
    ) -> Result<Channel, Error> {
        let service_config = match config.service_config() {
            Some(json) => ServiceConfig::parse(json)?,
            None => ServiceConfig::default(),
        };
        let policy = match (service_config.lb_policy(), config.lb()) {
            (Some(policy), _) => policy.clone(),
            (None, Some(name)) => LbPolicy::from_name(name).ok_or_else(|| {
                Error::Config(format!(
                    "unknown balancing policy `{name}` (supported: {})",
                    LbPolicy::names().join(", ")
                ))
            })?,
            (None, None) => LbPolicy::RoundRobin,
        };
        let request_hash_header = match (
            service_config.request_hash_header(),
            config.request_hash_header(),
        ) {
            (Some(header), _) => Some(header.clone()),
            (None, Some(name)) => Some(
                crate::request_hash::header_name(name)
                    .map_err(|why| Error::Config(format!("request_hash_header: {why}")))?,
            ),
            (None, None) => None,
        };
        let throttle = service_config.retry_throttling().map(Throttle::new);
        let changed = Arc::new(watch::channel(0u64).0);
        let factory = EndpointFactory::new(config.clone(), Arc::clone(&changed));
        let endpointer = Endpointer::from_subscription(subscription, factory, Default::default());
        let picker = Picker::new(&policy, endpointer.endpoint_set());
        Ok(Channel {
            inner: Arc::new(Inner {
                endpointer,
                picker,
                policy,
                service_config,
                request_hash_header,
                throttle,
                changed,
                ready_timeout: config.ready_timeout(),
                retry_buffer: config.retry_buffer(),
                owned_instancer,
            }),
        })
    }

    /// Waits at most `timeout` for the first instance set (which may be empty).
    ///
    /// # Errors
    ///
    /// [`NoInstancesYet`] when the instancer published nothing in time.
    pub async fn ready(
        &self,
        timeout: Duration,
    ) -> Result<Arc<Endpoints<GrpcEndpoint>>, NoInstancesYet> {
        self.inner.endpointer.ready(timeout).await
    }

    /// The current endpoints.
    pub fn endpoints(&self) -> Arc<Endpoints<GrpcEndpoint>> {
        self.inner.endpointer.endpoints()
    }

    /// The balancing policy in use.
    pub fn policy(&self) -> &LbPolicy {
        &self.inner.policy
    }

    /// The parsed service config (empty when none was given).
    pub fn service_config(&self) -> &ServiceConfig {
        &self.inner.service_config
    }
}

impl Service<Request<Body>> for Channel {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Response<Body>, BoxError>>;

    /// Always ready: picking and waiting for a ready endpoint happen inside the call.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        Box::pin(call::run(Arc::clone(&self.inner), request))
    }
}
