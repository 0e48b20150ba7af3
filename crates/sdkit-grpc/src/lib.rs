//! # sdkit-grpc
//!
//! gRPC for sdkit: a tonic channel balanced over any registry, gRPC service-config policies,
//! and a server helper that registers itself.
//!
//! * [`Channel`]: a `tower::Service<http::Request<tonic::body::Body>>` that every
//!   tonic-generated client accepts, balanced over an [`Instancer`](sdkit_core::Instancer) —
//!   one lazily connected tonic channel per instance, made and dropped by sdkit's
//!   [`Endpointer`](sdkit_core::Endpointer); failed connections are skipped and reconnected in
//!   the background; connect failures are retried on another endpoint transparently.
//! * Policies chosen as gRPC-go chooses them: `pick_first`, `round_robin` (and sdkit's
//!   `random`), by name or by a [service config](service_config) (`loadBalancingConfig`,
//!   `methodConfig` timeouts and retry policies, `retryThrottling`).
//! * [`Config`]: TLS (rustls), a user [`Connector`], timeouts, backoff.
//! * [`Server`]: bind, register, serve; on shutdown deregister first, then drain.
//!
//! With the `sdkit` facade (feature `grpc`) a registry URL is enough:
//! `GreeterClient::new(sdkit::grpc::channel("etcd://127.0.0.1:2379/services/greeter")?)`.
//!
//! ```no_run
//! use std::time::Duration;
//! use sdkit_core::{FixedInstancer, Instance};
//! use sdkit_grpc::{Channel, Config};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let instancer = FixedInstancer::new(vec![
//!     Instance::from_addr("127.0.0.1:50051"),
//!     Instance::from_addr("127.0.0.1:50052"),
//! ]);
//! let channel = Channel::new(&instancer, Config::default().with_service_config(r#"{
//!     "loadBalancingConfig": [{"round_robin": {}}],
//!     "methodConfig": [{"name": [{}], "timeout": "2s",
//!         "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.01s", "maxBackoff": "0.1s",
//!                         "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]
//! }"#))?;
//! channel.ready(Duration::from_secs(1)).await?;
//! // let mut client = GreeterClient::new(channel);
//! // client.say_hello(HelloRequest { name: "sdkit".into() }).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod call;
pub mod channel;
pub mod config;
mod conn_state;
pub mod connector;
pub mod endpoint;
pub mod error;
mod inner;
mod picker;
mod reconnect;
mod replay;
mod request_hash;
pub mod server;
pub mod service_config;
mod throttle;

pub use call::Served;
pub use channel::Channel;
pub use config::Config;
pub use connector::{ConnectFailed, Connector};
pub use endpoint::GrpcEndpoint;
pub use error::Error;
pub use sdkit_core::lb::hash::RequestHash;
pub use server::Server;
pub use service_config::{LbPolicy, ServiceConfig, ServiceConfigError};

/// Re-exported: the TLS settings of [`Config::with_tls`].
pub use tonic::transport::ClientTlsConfig;
