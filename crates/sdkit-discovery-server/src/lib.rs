//! An embedded registry server speaking the [bilibili discovery] HTTP API.
//!
//! Existing discovery clients (bilibili's `naming` SDK, kratos v1/v2 `discovery`, the sdkit
//! client) work against it unchanged: the ten endpoints under `/discovery`, the urlencoded
//! forms with repeated keys, the `{code, message, ttl, data}` envelope, the long polls with
//! their cursors, leases with self-preservation. It fixes the reference's known bugs (see
//! `docs/discovery-server.md`) and bounds everything it reads from the network.
//!
//! A single node is the embedded default: replication between discovery nodes is not
//! implemented. Fleets that outgrow one node use an etcd or Consul cluster, or a discovery
//! cluster.
//!
//! Start with [`Server::builder`]; see [`Server`] for a runnable example.
//!
//! Modules: `config` (settings and defaults), `limits` (bounds), `registry` (data, cursors,
//! change topics, self-preservation, eviction), `http` (routing, forms, handlers, long
//! polls), `lease` (the periodic lease check), `server` (accept loop and shutdown).
//!
//! [bilibili discovery]: https://github.com/bilibili/discovery
#![deny(missing_docs)]

mod clock;
mod config;
mod error;
mod http;
mod lease;
mod limits;
mod registry;
mod server;

pub use config::{Config, Lease};
pub use error::{BuildError, ServeError};
pub use limits::Limits;
pub use sdkit_discovery_proto as proto;
pub use server::{Builder, Handle, Server, Stats};

#[doc(hidden)]
pub mod fuzz {
    //! Entry points for property tests and fuzzing: run a handler on a parsed form without a
    //! socket.

    use crate::Server;
    use sdkit_discovery_proto::{Endpoint, Form};
    use std::time::Duration;

    /// Runs `endpoint` on `form` and returns (HTTP status, body).
    pub async fn dispatch(
        server: &Server,
        endpoint: Endpoint,
        form: &Form,
        budget: Option<Duration>,
    ) -> (u16, Vec<u8>) {
        use http_body_util::BodyExt;
        let resp = crate::http::dispatch(&server.shared, endpoint, form, budget).await;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes().to_vec())
            .unwrap_or_default();
        (status, body)
    }
}
