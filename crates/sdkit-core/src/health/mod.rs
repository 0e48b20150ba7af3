//! Active health checks (opt-in): probe every endpoint on an interval and take the ones that
//! fail out of rotation, as an ejected endpoint is.
//!
//! * A [`Check`] probes one instance: [`TcpCheck`] (connect), [`HttpCheck`] (GET a path, expect a
//!   status), or your own — the gRPC health protocol is a `Check` the gRPC transport provides
//!   (`grpc.health.v1.Health/Check` needs HTTP/2 and protobuf, which sdkit-core does not carry).
//! * [`HealthConfig`]: interval with jitter, per-check timeout, and thresholds — an endpoint
//!   turns unhealthy after `unhealthy_threshold` failed checks in a row and healthy again after
//!   `healthy_threshold` passed ones. New endpoints start healthy.
//! * [`HealthChecker::spawn`] runs the checks for an [`EndpointSet`](crate::EndpointSet) in the
//!   background and sets each endpoint's `healthy` readiness bit; balancers skip unhealthy
//!   endpoints like ejected ones (panic threshold included). Health is keyed by instance
//!   identity: a registry update that keeps an instance keeps its health.
//!
//! ```no_run
//! use std::time::Duration;
//! use sdkit_core::health::{HealthChecker, HealthConfig, HttpCheck};
//! # fn demo(set: sdkit_core::EndpointSet<()>) {
//! let checker = HealthChecker::spawn(
//!     &set,
//!     HttpCheck::new("/healthz"),
//!     HealthConfig::default().with_interval(Duration::from_secs(2)),
//! );
//! // ... the checks run until `checker` is dropped.
//! # drop(checker);
//! # }
//! ```

mod checker;
mod checks;
mod config;
mod status;

pub use checker::HealthChecker;
pub use checks::{Check, HttpCheck, TcpCheck};
pub use config::HealthConfig;
pub use status::HealthStatus;
