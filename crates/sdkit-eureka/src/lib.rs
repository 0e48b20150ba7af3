//! # sdkit-eureka
//!
//! The Eureka backend of sdkit over hyper (Eureka's REST API, JSON): an [`Instancer`] that
//! polls one application — full fetches, or deltas with periodic full reconciliation — and
//! publishes only the instances whose status is `UP` (configurable), and a [`Registrar`] that
//! registers an instance, heartbeats it every 30 s, registers it again when the server answers
//! a heartbeat with 404, and deletes it on shutdown.
//!
//! Both keep going through failures: the servers are tried in turn, every failure is retried
//! with backoff, and the last good set stays published meanwhile. Construction never touches
//! the network. The JSON mapping is in [`wire`].
//!
//! ```
//! use std::time::Duration;
//! use sdkit_core::Instance;
//! use sdkit_eureka::{Client, Config, InstancerConfig, RegistrarConfig};
//!
//! let client = Client::new(Config::new(["10.0.0.1:8761", "10.0.0.2:8761"])).unwrap();
//! let watch = InstancerConfig::new("web").with_poll_interval(Duration::from_secs(30));
//! let register = RegistrarConfig::new("web", Instance::new("web-1", "10.0.0.7:8080"));
//! // Instancer::new(&client, watch) and Registrar::new(&client, register) inside a runtime.
//! # drop((client, watch, register));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod client;
pub mod config;
pub mod error;
pub mod instancer;
pub mod registrar;
pub mod wire;

pub use client::Client;
pub use config::{Config, InstancerConfig, RegistrarConfig};
pub use error::Error;
pub use instancer::Instancer;
pub use registrar::Registrar;
