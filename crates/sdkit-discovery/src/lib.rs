//! # sdkit-discovery
//!
//! The [bilibili discovery] backend of sdkit: a shared long-poll [`Client`], an
//! [`Instancer`] per watched appid and a [`Registrar`] per registered instance, correct where
//! the Go clients are not (see `docs/backends.md`, section "Discovery backend"):
//!
//! * building a client never touches the network; a new watch is answered at once through
//!   `fetchs` (an unknown appid resolves to "no instances" within one round trip) instead of
//!   parking in a 30 s long poll;
//! * one long poll carries every watched appid; `-304` re-polls on the same node; failures
//!   rotate nodes, reset cursors and back off; cursors are `i64`, echoed exactly, and advance
//!   on empty answers (no busy loop on WAITING-only apps);
//! * nodes are discovered through `infra.discovery` (dropping vanished ones, seeds kept as a
//!   fallback) and rotated every 30 minutes;
//! * registrars renew, re-register on `-404`, retry forever with node rotation, stop renewing
//!   before they cancel, and deregister when dropped.
//!
//! Everything on the wire comes from [`sdkit_discovery_proto`].
//!
//! ```
//! use std::time::Duration;
//! use sdkit_core::Instancer as _;
//! use sdkit_discovery::{Client, Config, InstancerConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sdkit_discovery::Error> {
//! let client = Client::new(Config::default()
//!     .with_nodes(["127.0.0.1:1", "127.0.0.2:1"]) // nothing listens there
//!     .with_env("dev")
//!     .with_zone("sh001")
//!     )?; // never blocks, never fails on an unreachable registry
//! let instancer = client.instancer(InstancerConfig::new("demo.service").with_scheme("grpc"))?;
//! // Every wait takes a deadline; an unreachable registry is an error event, never a hang.
//! match instancer.subscribe().ready(Duration::from_secs(5)).await {
//!     Ok(snapshot) => assert!(snapshot.error().unwrap().to_string().starts_with("discovery:")),
//!     Err(no_instances_yet) => println!("{no_instances_yet}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! [bilibili discovery]: https://github.com/bilibili/discovery
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod client;
pub mod config;
mod error;
pub mod instancer;
pub mod registrar;

pub use client::{AppState, AppWatch, Client};
pub use config::{Config, InstancerConfig, RegistrarConfig};
pub use error::Error;
pub use instancer::Instancer;
pub use registrar::Registrar;
pub use sdkit_discovery_proto as proto;
