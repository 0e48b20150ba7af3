//! # sdkit-consul
//!
//! The Consul backend of sdkit, on hyper 1 (no Consul API crate):
//!
//! * [`Instancer`] watches one service through blocking queries on
//!   `GET /v1/health/service/:name`, following Consul's rules for them (index reset when it goes
//!   backwards, no loop on index 0, a token-bucket rate limit, jittered backoff on errors, 429
//!   and 503, an HTTP timeout above `wait + wait/16`, stop cancels the in-flight query);
//! * [`Registrar`] registers one instance with the local agent with a TTL check (or an HTTP/TCP
//!   check), heartbeats it every TTL/2, registers again when the agent lost it, and deregisters
//!   on shutdown within a bounded time;
//! * [`Client`] is the small HTTP client both use (ACL token in `X-Consul-Token`, TLS through
//!   rustls with a custom CA and client certificates).
//!
//! Tokens never appear in `Debug`, `Display` or logs.
//!
//! ```
//! use std::time::Duration;
//! use sdkit_consul::{Config, InstancerConfig};
//!
//! let config = Config::new("127.0.0.1:8500").with_token("secret");
//! let watch = InstancerConfig::new("web")
//!     .with_tag("v1")
//!     .with_passing_only(true)
//!     .with_datacenter("dc1")
//!     .with_wait(Duration::from_secs(55));
//! assert_eq!(watch.effective_wait(), Duration::from_secs(55));
//! assert!(format!("{config:?}").contains("redacted"));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod client;
pub mod config;
pub mod error;
pub mod instancer;
pub mod registrar;
mod tls;
pub mod wire;

pub use client::Client;
pub use config::{
    CheckConfig, Config, InstancerConfig, RateLimit, RegistrarConfig, TlsConfig, Weights,
};
pub use error::Error;
pub use instancer::Instancer;
pub use registrar::Registrar;
