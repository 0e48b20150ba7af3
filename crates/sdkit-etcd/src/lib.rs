//! # sdkit-etcd
//!
//! The etcd v3 backend of sdkit: an [`Instancer`] that lists and watches a key prefix and
//! publishes complete instance sets into the shared cache, and a [`Registrar`] that keeps one
//! instance under `<prefix>/<instance id>` on a kept-alive lease.
//!
//! Both survive what breaks other toolkits' etcd support: a member dying (calls retry on the
//! other endpoints, the watch is re-created from the last seen revision), a watch ending or going
//! silent (detected and re-created), a lease expiring during an outage (re-granted and the key
//! put again, forever), a compacted revision (the prefix is listed again). One [`Client`] can
//! be shared by many instancers and registrars: each watch and each keep-alive is its own
//! stream, so one failing never closes another.
//!
//! Key layout and values: see [`value`]. Construction never touches the network; the
//! connection is made (and retried) in the background.
//!
//! ```
//! use std::time::Duration;
//! use sdkit_etcd::{Config, InstancerConfig, TlsConfig};
//!
//! let config = Config::new(["10.0.0.1:2379", "10.0.0.2:2379", "10.0.0.3:2379"])
//!     .with_request_timeout(Duration::from_secs(2))
//!     .with_tls(TlsConfig::default().with_ca_file("/etc/etcd/ca.pem"));
//! assert!(config.validate().is_ok());
//! assert!(InstancerConfig::new("/services/web").validate().is_ok());
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
pub use config::{Config, InstancerConfig, RegistrarConfig, TlsConfig};
pub use error::Error;
pub use instancer::Instancer;
pub use registrar::Registrar;
pub use value::ValueError;
