//! # sdkit-core
//!
//! The core of sdkit, a go-kit-style service-discovery toolkit: the types every backend
//! publishes ([`Instance`], [`Event`], [`Snapshot`]), the shared [`InstanceCache`], the
//! [`Instancer`] and [`Registrar`] traits with the shared drivers backends build on
//! ([`TaskInstancer`], [`KeepAlive`](registrar::KeepAlive)), and the shared [`Backoff`].
//!
//! The pipeline is `instancer → endpointer → balancer → retry`; see the crate README.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod backoff;
pub mod cache;
pub mod error;
pub mod event;
pub mod instance;
pub mod instancer;
pub mod registrar;

pub use backoff::Backoff;
pub use cache::{InstanceCache, Subscription};
pub use error::{BoxError, NoEndpoints, NoInstancesYet, RegistrarError};
pub use event::{Event, Snapshot, SourceError};
pub use instance::Instance;
pub use instancer::{FixedInstancer, Instancer, TaskInstancer};
pub use registrar::Registrar;

/// Re-exported: the token backends' tasks watch for stop.
pub use tokio_util::sync::CancellationToken;
