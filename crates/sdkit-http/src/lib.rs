//! # sdkit-http
//!
//! sdkit for reqwest users: call a discovered service by name.
//!
//! * [`EndpointFactory`] / [`Endpoint`]: a ready-made [`Factory`](sdkit_core::Factory) making
//!   one HTTP endpoint (a `tower::Service<http::Request<B>>`) per instance, filling in the
//!   scheme and authority from the instance (`https` uses the instance's host as TLS name).
//! * [`Client`]: requests to `http://<name>/path` go to an instance of the service registered as
//!   `<name>` (any [`Source`], such as an `sdkit::Target`, or an instancer), through sdkit's
//!   balancer and retry, with [safe retries](attempt) and per-attempt and total timeouts.
//! * [`NameResolver`]: the same as a `reqwest_middleware::Middleware`.
//! * Clear [`Error`]s: an unknown name or no instance in time names the service and its
//!   registry (redacted); no DNS lookup of the bare name, no hang.
//! * Outcomes (connect refused, timeouts, 5xx) are reported per endpoint so failure-aware
//!   balancers avoid a failing instance.
//!
//! ```
//! use std::time::Duration;
//! use sdkit_core::{FixedInstancer, Instance};
//! use sdkit_http::{Client, Config, Error};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let client = Client::new(Config::default().with_timeout(Duration::from_millis(200))).unwrap();
//! client.add_instancer("web", "static://(none)", FixedInstancer::new(vec![])).unwrap();
//! // A name nobody registered: a typed error, no DNS lookup.
//! let err = client.get("http://billing/invoices").await.unwrap_err();
//! assert!(matches!(err, Error::UnknownService { .. }));
//! assert_eq!(err.to_string(), "no target configured for service `billing` (registered: web)");
//! // A registered name without instances: a typed error after the caller's timeout.
//! let err = client.get("http://web/health").await.unwrap_err();
//! assert!(err.to_string().starts_with("service `web` (static://(none)): no instance ready within 200ms"));
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod attempt;
pub mod client;
pub mod config;
pub mod endpoint;
pub mod error;
mod feedback;
pub mod middleware;
pub mod registry;

pub use attempt::{Call, Served};
pub use client::Client;
pub use config::{Config, Scheme, UnknownNames};
pub use endpoint::{Endpoint, EndpointFactory};
pub use error::{AttemptError, AttemptFailure, Error};
pub use middleware::NameResolver;
pub use registry::{MakeBalancer, Source};

/// Re-exported: the reqwest this crate is built on (its `Request`, `Response`, `Body`).
pub use reqwest;
/// Re-exported: the reqwest-middleware the [`NameResolver`] plugs into.
pub use reqwest_middleware;
