//! # sdkit-dnssrv
//!
//! The DNS SRV backend of sdkit: an [`Instancer`] that watches one SRV name
//! (`_http._tcp.web.example.com`) through [`hickory-resolver`](hickory_resolver) 0.26 and
//! publishes complete instance snapshots into the shared [`sdkit_core::InstanceCache`]. DNS is
//! read-only, so there is no registrar.
//!
//! What it does better than go-kit's `sd/dnssrv`:
//!
//! * refreshes when the answer's TTL expires (clamped to a configurable `[min, max]`), not on a
//!   fixed ticker;
//! * honours SRV priority (only the best usable group by default, or every group with the
//!   priority in metadata key [`priority`](META_PRIORITY)) and weight (→ [`Instance::weight`](sdkit_core::Instance::weight));
//! * skips a record with port 0 (Kubernetes' answer for unnamed ports) with a warning instead
//!   of failing the whole set;
//! * resolves targets to IP addresses (glue from the additional section, else A/AAAA lookups;
//!   or keeps host names), trims the trailing dot and brackets IPv6;
//! * NXDOMAIN / no records is an empty set; a transport failure is an error event that keeps
//!   the last good set, retried with capped, jittered backoff;
//! * stop is idempotent and cancels a lookup in flight.
//!
//! ```
//! use std::time::Duration;
//! use sdkit_dnssrv::{Config, InstancerConfig, PriorityMode};
//!
//! let config = Config::default().with_nameserver("10.0.0.53:53".parse().unwrap());
//! let watch = InstancerConfig::new("_http._tcp.web.example.com")
//!     .with_refresh_bounds(Duration::from_secs(1), Duration::from_secs(60))
//!     .with_priority(PriorityMode::Best);
//! assert!(config.validate().is_ok() && watch.validate().is_ok());
//! ```
//!
//! [`Client::resolve`] does one refresh on demand (a CLI `resolve`, a health check). The facade
//! crate `sdkit` builds a [`Config`] and an [`InstancerConfig`] from
//! `dnssrv://_http._tcp.web.example.com?nameserver=…`. See [`instancer`] for the
//! record-to-instance mapping and [`config`] for every option.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod client;
pub mod config;
pub mod error;
pub mod instancer;
pub mod resolve;

pub use client::Client;
pub use config::{AddressFamily, Config, InstancerConfig, PriorityMode, TargetMode, Transport};
pub use error::Error;
pub use instancer::Instancer;
pub use resolve::{META_PRIORITY, META_TARGET, Resolution};
