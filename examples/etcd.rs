//! The etcd v3 backend: a registrar (a key on a lease, kept alive) and an instancer (a watch on
//! the service's key prefix) built from one `etcd://` target. Needs a running etcd.
//!
//! It registers `web-1` under `/services/web/`, waits until the instancer sees it, deregisters
//! it (the key is deleted and the lease revoked), waits until it is gone, and exits.
//!
//! ```sh
//! etcd --data-dir /tmp/etcd-demo &        # any etcd 3.4+; listens on 127.0.0.1:2379
//! cargo run -p sdkit --example etcd
//! # another cluster, credentials, a lease TTL (or set SDKIT_TARGET):
//! cargo run -p sdkit --example etcd -- 'etcd://user:pass@10.0.0.1:2379,10.0.0.2:2379/services/web?ttl=5s'
//! ```
//!
//! The target comes from the first argument, else `SDKIT_TARGET`, else
//! `etcd://127.0.0.1:2379/services/web`. Passwords are shown as `***` when the target is
//! printed. With etcd down, registration keeps retrying: the example gives up after 10 s and
//! says so. Logs: `RUST_LOG=sdkit_etcd=debug`.

#[path = "common/mod.rs"]
mod common;

use sdkit::{BoxError, Instance};

const DEFAULT_TARGET: &str = "etcd://127.0.0.1:2379/services/web";

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
