//! # sdkit-zookeeper
//!
//! The ZooKeeper backend of sdkit, on the `zookeeper-client` crate: an [`Instancer`] that
//! watches the children of a service path and publishes complete instance sets, and a
//! [`Registrar`] that keeps one instance as an ephemeral sequential node under that path.
//!
//! Both survive what breaks other toolkits' ZooKeeper support: a server dying (the client fails
//! over to another member of the ensemble, keeping its session), a watched path that does not
//! exist yet (watched until it appears), a session expired by the ensemble (a new session; the
//! instancer reads again, the registrar re-creates its node), a node deleted behind the
//! registrar's back (re-created), and any failing request (retried with backoff, forever, while
//! the last good set stays published). One [`Client`] (one session) can be shared by many
//! instancers and registrars.
//!
//! Node layout and data: see [`value`]. Construction never touches the network. Needs a
//! ZooKeeper 3.6+ ensemble (persistent recursive watches).
//!
//! ```
//! use std::time::Duration;
//! use sdkit_core::Instance;
//! use sdkit_zookeeper::{Client, Config, InstancerConfig, RegistrarConfig};
//!
//! let config = Config::new(["10.0.0.1:2181", "10.0.0.2:2181", "10.0.0.3:2181"])
//!     .with_session_timeout(Duration::from_secs(10))
//!     .with_digest("svc", "s3cret");
//! let client = Client::new(config).unwrap();
//! let watch = InstancerConfig::new("/services/web");
//! let register = RegistrarConfig::new("/services/web", Instance::new("web-1", "10.0.0.7:8080"));
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
pub mod value;

pub use client::Client;
pub use config::{Config, InstancerConfig, RegistrarConfig};
pub use error::Error;
pub use instancer::Instancer;
pub use registrar::Registrar;
pub use value::ValueError;
