//! # sdkit-core
//!
//! The core of sdkit, a go-kit-style service-discovery toolkit. One pipeline,
//!
//! ```text
//! instancer → endpointer → balancer → retry
//! ```
//!
//! and one registrar, whatever the registry:
//!
//! * [`Instance`], [`Event`], [`Snapshot`]: what backends publish — complete snapshots, never
//!   deltas; an error keeps the last good set.
//! * [`InstanceCache`]: the shared core every backend publishes into (sorts, de-duplicates,
//!   latest-value fan-out that never blocks the publisher).
//! * [`Instancer`] (with [`TaskInstancer`] for backends and [`FixedInstancer`] for static sets)
//!   and [`Registrar`] (with the shared [`KeepAlive`](registrar::KeepAlive) driver).
//! * [`Endpoint`], [`Endpoints`], [`EndpointSet`] (data): one endpoint per instance with its
//!   shared [`EndpointState`](lb::EndpointState), immutable snapshots, the lock-free view
//!   [`lb`] balancers read; [`Endpointer`] (a task) keeps them in step with an instancer,
//!   making endpoints with a [`Factory`].
//! * [`lb`]: balancers and the feedback path (pick context, call guards, per-endpoint state).
//! * [`retry`]: attempts within a budget, backoff, a policy, every error kept.
//! * tower: [`BalancedService`], [`Retry`](retry::Retry) and [`RetryLayer`](retry::RetryLayer)
//!   are `tower::Service`s / `Layer`s; [`discover`](discover::discover) feeds
//!   `tower::balance`.
//!
//! ```
//! use std::time::Duration;
//! use sdkit_core::lb::RoundRobin;
//! use sdkit_core::retry::{Retry, RetryConfig};
//! use sdkit_core::{BoxError, Endpointer, FixedInstancer, Instance};
//! use tower::service_fn;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! // 1. An instancer: here a fixed set; in production a backend (discovery, Consul, etcd, DNS).
//! let instancer = FixedInstancer::new(vec![
//!     Instance::from_addr("10.0.0.1:8080"),
//!     Instance::from_addr("10.0.0.2:8080"),
//! ]);
//! // 2. An endpointer: one callable endpoint per instance (usually an HTTP or gRPC client).
//! let endpointer = Endpointer::new(&instancer, |instance: &Instance| {
//!     let addr = instance.addr().to_owned();
//!     Ok::<_, BoxError>(service_fn(move |path: &'static str| {
//!         let addr = addr.clone();
//!         async move { Ok::<_, BoxError>(format!("GET http://{addr}{path}")) }
//!     }))
//! });
//! endpointer.ready(Duration::from_secs(1)).await?;
//! // 3. A balancer and 4. a retry around it.
//! let retry = Retry::balanced(RoundRobin::new(endpointer.endpoint_set()), RetryConfig::default());
//! assert_eq!(retry.call("/health").await?, "GET http://10.0.0.1:8080/health");
//! assert_eq!(retry.call("/health").await?, "GET http://10.0.0.2:8080/health");
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod backoff;
pub mod cache;
pub mod discover;
pub mod duration;
pub mod endpoint;
pub mod endpoint_set;
pub mod endpointer;
pub mod error;
pub mod event;
pub mod fail_fast;
mod feedback;
pub mod health;
pub mod hedge;
pub mod instance;
pub mod instancer;
pub mod lb;
pub mod metrics;
pub mod registrar;
pub mod retry;
pub mod retry_budget;
pub mod secret;
pub mod service;
pub mod task;

pub use backoff::Backoff;
pub use cache::{InstanceCache, NotReached, Subscription};
pub use endpoint::{Endpoint, EndpointKey, Endpoints};
pub use endpoint_set::EndpointSet;
pub use endpointer::{Endpointer, EndpointerOptions, Factory};
pub use error::{BoxError, NoEndpoints, NoInstancesYet, RegistrarError};
pub use event::{Event, Snapshot, SourceError};
pub use instance::Instance;
pub use instancer::{FixedInstancer, Instancer, TaskInstancer};
pub use registrar::Registrar;
pub use secret::Secret;
pub use service::BalancedService;
pub use task::{BoxFuture, FailureLoop, OwnedTask};

/// Re-exported: the token backends' tasks watch for stop.
pub use tokio_util::sync::CancellationToken;
