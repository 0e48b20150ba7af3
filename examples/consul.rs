//! The Consul backend: a registrar (an agent service with a TTL check, heartbeated) and an
//! instancer (blocking queries on the service's passing instances) built from one `consul://`
//! target. Needs a Consul agent.
//!
//! It registers `web-1` for the service `web`, waits until the instancer sees it (its TTL check
//! starts passing), deregisters it, waits until it is gone, and exits.
//!
//! ```sh
//! consul agent -dev &                     # any Consul 1.5+; HTTP API on 127.0.0.1:8500
//! cargo run -p sdkit --example consul
//! # another agent, an ACL token, a shorter TTL (or set SDKIT_TARGET; CONSUL_HTTP_TOKEN works too):
//! cargo run -p sdkit --example consul -- 'consul://10.0.0.1:8500/web?token=…&ttl=5s&dc=dc1'
//! ```
//!
//! The target comes from the first argument, else `SDKIT_TARGET`, else
//! `consul://127.0.0.1:8500/web`. Tokens are shown as `***` when the target is printed and are
//! sent as the `X-Consul-Token` header, never in a URL. With the agent down, registration keeps
//! retrying: the example gives up after 10 s and says so. Logs: `RUST_LOG=sdkit_consul=debug`.

#[path = "common/mod.rs"]
mod common;

use sdkit::{BoxError, Instance};

const DEFAULT_TARGET: &str = "consul://127.0.0.1:8500/web";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    common::init_logs();
    let target = common::target_from_args(DEFAULT_TARGET)?;
    let instance = Instance::new("web-1", "127.0.0.1:8080")
        .with_weight(5)
        .with_zone("sh001")
        .with_tag("v1");
    common::register_watch_deregister(&target, instance, |i| i.id() == "web-1").await
}
