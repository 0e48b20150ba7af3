//! # sdkit
//!
//! Service discovery for Rust, go-kit style: one pipeline,
//! `instancer → endpointer → balancer → retry`, and one registrar, whatever the registry.
//!
//! This facade is the one dependency a service needs:
//!
//! * everything of [`sdkit_core`] (instances, the cache, endpointer, balancers, retry, tower
//!   adapters), re-exported at the root;
//! * each backend behind a feature, all on by default: [`discovery`] (bilibili discovery),
//!   [`consul`], [`etcd`], [`dnssrv`];
//! * [`Target`]: one URL string picks the registry, so swapping Consul for etcd is a
//!   configuration change, not a code change.
//!
//! ```no_run
//! use std::time::Duration;
//! use sdkit::lb::RoundRobin;
//! use sdkit::retry::{Retry, RetryConfig};
//! use sdkit::{BoxError, Endpointer, Instance, Target};
//!
//! # #[tokio::main] async fn main() -> Result<(), BoxError> {
//! let target: Target = std::env::var("REGISTRY")?.parse()?; // e.g. etcd://127.0.0.1:2379/services/web
//! let instancer = target.instancer()?;
//! let endpointer = Endpointer::new(&instancer, |i: &Instance| Ok::<_, BoxError>(i.addr().to_owned()));
//! endpointer.ready(Duration::from_secs(5)).await?;
//! let retry = Retry::balanced(
//!     RoundRobin::new(endpointer.endpoint_set()),
//!     RetryConfig::new(3, Duration::from_secs(2)),
//! );
//! # let _ = retry;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod backends;
mod error;
#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(feature = "http")]
mod http_source;
mod target;
mod url;

pub use error::{Error, TargetError};
pub use target::Target;

pub use sdkit_core::{
    Backoff, BalancedService, BoxError, CancellationToken, Endpoint, EndpointSet, Endpointer,
    EndpointerOptions, Endpoints, Event, Factory, FixedInstancer, Instance, InstanceCache,
    Instancer, NoEndpoints, NoInstancesYet, Registrar, RegistrarError, Snapshot, SourceError,
    Subscription, TaskInstancer, backoff, cache, discover, duration, endpointer, event, instance,
    instancer, lb, registrar, retry, service,
};
pub use sdkit_core::{BoxFuture, FailureLoop, OwnedTask, Secret, secret, task};
pub use sdkit_core::{fail_fast, health, hedge, retry_budget};

/// The bilibili discovery backend.
#[cfg(feature = "discovery")]
pub use sdkit_discovery as discovery;

/// The Consul backend.
#[cfg(feature = "consul")]
pub use sdkit_consul as consul;

/// The etcd v3 backend.
#[cfg(feature = "etcd")]
pub use sdkit_etcd as etcd;

/// The DNS SRV backend.
#[cfg(feature = "dnssrv")]
pub use sdkit_dnssrv as dnssrv;

/// The ZooKeeper backend.
#[cfg(feature = "zookeeper")]
pub use sdkit_zookeeper as zookeeper;

/// The Eureka backend.
#[cfg(feature = "eureka")]
pub use sdkit_eureka as eureka;

/// The reqwest integration: HTTP endpoints per instance and a client that resolves service
/// names (`http://<name>/path`); a [`Target`] is a name's [`Source`](sdkit_http::Source).
#[cfg(feature = "http")]
pub use sdkit_http as http;
