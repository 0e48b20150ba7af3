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
//! Modules, each depending only on those before it: `clock` (the server's clock),
//! `escape` (network strings in logs), `token`, `config`, `limits` (bounds), `budget`
//! (per-address counts), `body` and `answers` (shared serialised answers), `registry` (data,
//! cursors, change topics, self-preservation, eviction), `shared` (state of one server),
//! `http` (access control, routing, forms, handlers, long polls), `io` and `conn` (one
//! connection with its deadlines), `lease` (the periodic lease check), `server` (accept
//! loop, task ownership and shutdown), `builder`, `metrics` (the Prometheus exposition and
//! its own listener).
//!
//! [bilibili discovery]: https://github.com/bilibili/discovery
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod answers;
mod body;
mod budget;
mod builder;
mod clock;
mod config;
mod conn;
mod error;
mod escape;
mod http;
mod io;
mod lease;
mod limits;
mod metrics;
mod registry;
mod requests;
mod server;
mod shared;
mod token;

pub use builder::Builder;
pub use config::{Config, Lease};
pub use error::{BuildError, ServeError};
pub use limits::Limits;
pub use sdkit_discovery_proto as proto;
pub use server::{Handle, Server, Stats};
pub use token::Token;

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
        let resp = crate::http::dispatch(
            &server.shared,
            endpoint,
            form,
            budget,
            crate::http::Caller::local(),
        )
        .await;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes().to_vec())
            .unwrap_or_default();
        (status, body)
    }

    /// The largest app cursor, and the latest timestamp the server's clock accepts
    /// (now + skew): the first never passes the second.
    pub fn cursor_bounds(server: &Server) -> (i64, i64) {
        let registry = &server.shared.registry;
        (registry.max_cursor(), registry.clock.ceiling())
    }

    /// Bytes held by the shared long-poll answer table.
    pub fn answer_cache_bytes(server: &Server) -> usize {
        server.shared.answers.bytes()
    }
}
